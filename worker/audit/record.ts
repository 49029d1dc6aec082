/**
 * What one decision leaves in the audit trail: the request's facts, the answer,
 * the rule and policy version, the time, and who asked — the gateway, the key
 * that signed its request (signingKeyOf) and its identgate version (from its
 * User-Agent, gatewayVersionOf).
 *
 * @example
 * const record = auditRecordOf(request, decision, { at: Date.now(), policyVersion, signingKey, gatewayVersion });
 */
import type { IdentAnswer } from '../../protocol/reply.js';
import type { LookupRequest } from '../../protocol/wire.js';
import type { AuditRecord } from '../stores/audit.js';

/** Who asked: the key that signed the request and the gateway's version. */
export interface Caller {
  readonly signingKey: string | null;
  readonly gatewayVersion: string | null;
}

export interface RequestContext extends Caller {
  readonly at: number;
  readonly policyVersion: string;
}

/**
 * @example
 * auditRecordOf(request, { answer, rule: 'lan' }, context).owner // { uid: 1000, userName: 'alice' }
 */
export function auditRecordOf(
  request: LookupRequest,
  decision: { readonly answer: IdentAnswer; readonly rule: string },
  context: RequestContext,
): AuditRecord {
  return {
    at: context.at,
    gateway: request.gateway,
    signingKey: context.signingKey,
    gatewayVersion: context.gatewayVersion,
    requestId: request.id,
    query: request.query,
    connection: request.connection,
    owner: request.owner,
    claim: request.claim ?? null,
    answer: decision.answer,
    rule: decision.rule,
    policyVersion: context.policyVersion,
  };
}

const fingerprints = new Map<string, string>();

/**
 * Names the key that signed a request without revealing it: its position
 * among the configured secrets and the first 8 hex digits of its SHA-256,
 * e.g. "k0:3f1c0a9b" (the position alone would name a different key after a
 * rotation). When signatures carry key ids (one per gateway), this is where
 * the recorded name changes to the key id.
 *
 * @example
 * await signingKeyOf(['new-secret…', 'old-secret…'], 1) // "k1:9e107d9d"
 */
export async function signingKeyOf(secrets: readonly string[], index: number): Promise<string> {
  const secret = secrets[index] ?? '';
  let fingerprint = fingerprints.get(secret);
  if (fingerprint === undefined) {
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(secret)));
    fingerprint = Array.from(digest.subarray(0, 4), (byte) => byte.toString(16).padStart(2, '0')).join('');
    if (fingerprints.size > 64) fingerprints.clear();
    fingerprints.set(secret, fingerprint);
  }
  return `k${index}:${fingerprint}`;
}

/**
 * The identgate version in a gateway's User-Agent ("identgate/0.1.0 ..."), else null.
 *
 * @example
 * gatewayVersionOf('identgate/0.1.0 (node v20.20.2)') // "0.1.0"
 */
export function gatewayVersionOf(userAgent: string | undefined | null): string | null {
  const match = /(?:^|\s)identgate\/([0-9A-Za-z.+-]{1,32})/.exec(userAgent ?? '');
  return match?.[1] ?? null;
}
