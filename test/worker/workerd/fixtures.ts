/**
 * Shared test values for the worker's tests, in Node and inside workerd: a small
 * policy with one rule per kind of outcome, lookup requests built from a few
 * facts, and signed request construction. Pure (no node: imports) so both test
 * projects can load it.
 *
 * @example
 * const body = JSON.stringify(lookupRequest({ id: 'q1', remoteAddress: '192.0.2.7' }));
 * const request = await signedRequest(['test-secret-new'], '/v1/ident', body);
 */
import { signatureHeaders } from '../../../protocol/signature.js';
import type { Claim, Container, LookupRequest, Nat } from '../../../protocol/wire.js';

/**
 * hide-root: uid 0 is hidden; apps-*: the actions for apps (issue 13) on ports 7001..7003 only;
 * lan: queriers in 192.0.2.0/24 learn the owner's name; assigned: gateway assign-gw answers the
 * admin-assigned ident (docs/audit.md), else NO-USER; otherwise NO-USER.
 */
export const TEST_POLICY = {
  version: 1,
  rules: [
    { name: 'hide-root', match: { ownerUid: 0 }, action: { error: 'HIDDEN-USER' } },
    {
      name: 'apps-claim',
      match: { serverPort: 7001, claimed: true },
      action: { claim: { ident: { pattern: 'znc-*' } } },
    },
    {
      name: 'apps-forward',
      match: { serverPort: 7002 },
      action: { forward: { port: 9001 }, accept: { maxLength: 10 }, fallback: { error: 'HIDDEN-USER' } },
    },
    { name: 'apps-userfile', match: { serverPort: 7003 }, action: { userFile: { files: ['.oidentd.conf'] } } },
    { name: 'lan', match: { clientAddress: '192.0.2.0/24' }, action: { reveal: 'name' } },
    { name: 'assigned', match: { gateway: 'assign-gw' }, action: { assigned: { otherwise: { error: 'NO-USER' } } } },
  ],
  default: { action: { error: 'NO-USER' } },
} as const;

export interface RequestFacts {
  id?: string;
  remoteAddress?: string;
  uid?: number;
  userName?: string | null;
  owner?: null;
  serverPort?: number;
  clientPort?: number;
  gateway?: string;
  /** Sent only when given (a gateway without the claims API leaves the field out). */
  claim?: Claim;
  /** Sent only when given (a gateway without a NAT lookup leaves them out). */
  nat?: Nat;
  container?: Container;
}

/** A valid lookup request: by default alice (uid 1000) asked about by 192.0.2.7. */
export function lookupRequest(facts: RequestFacts = {}): LookupRequest {
  return {
    v: 1,
    id: facts.id ?? 'q-1',
    gateway: facts.gateway ?? 'test-gw',
    query: { serverPort: facts.serverPort ?? 6193, clientPort: facts.clientPort ?? 23 },
    connection: {
      localAddress: '198.51.100.1',
      localPort: 113,
      remoteAddress: facts.remoteAddress ?? '192.0.2.7',
      remotePort: 40000,
    },
    owner:
      facts.owner === null
        ? null
        : { uid: facts.uid ?? 1000, userName: facts.userName === undefined ? 'alice' : facts.userName },
    ...(facts.claim !== undefined && { claim: facts.claim }),
    ...(facts.nat !== undefined && { nat: facts.nat }),
    ...(facts.container !== undefined && { container: facts.container }),
  };
}

/** A POST to `path` on http://worker, signed with the first of `secrets` (no signature when `secrets` is empty). */
export async function signedRequest(
  secrets: readonly string[],
  path: string,
  body: string,
  nowSeconds?: number,
): Promise<Request> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (secrets.length > 0) Object.assign(headers, await signatureHeaders(secrets, 'POST', path, body, nowSeconds));
  return new Request(`http://worker${path}`, { method: 'POST', headers, body });
}

/** A request to an admin route with `Authorization: Bearer <token>` (none when token is undefined). */
export function adminRequest(method: string, path: string, token: string | undefined, body?: string): Request {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  return new Request(`http://worker${path}`, { method, headers, ...(body === undefined ? {} : { body }) });
}
