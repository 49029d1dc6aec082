/**
 * The claims API as a Hono app (routes and answers in docs/claims.md), served over a Unix socket by socket.ts.
 * Who is asking is the kernel's answer about the socket's peer (`peerUid`), never anything in the request;
 * a claim is recorded only once the owner lookup finds exactly that connection owned by that uid.
 *
 * @example
 * const app = createClaimsApp({ registry, owners, peerUid: (socket) => credentials(socket)?.uid ?? null });
 */
import type { Socket } from 'node:net';
import type { HttpBindings } from '@hono/node-server';
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { z } from 'zod';
import { describeIssues } from '../../protocol/issues.js';
import type { OwnerLookup } from '../owner/index.js';
import {
  canonicalAddress,
  CLAIMS_DEFAULTS,
  type ClaimRecord,
  type ClaimRegistry,
  type HoldRecord,
} from './registry.js';
import {
  ClaimRequestSchema,
  CLAIMS_ROUTES,
  MAX_CLAIMS_BODY_OCTETS,
  PendingRequestSchema,
  type ClaimInfo,
  type ClaimsErrorCode,
  type HoldInfo,
} from './schema.js';

export interface ClaimsAppOptions {
  registry: ClaimRegistry;
  owners: OwnerLookup;
  /** The uid of the process at the other end of the Unix socket (SO_PEERCRED); null when it cannot be had. */
  peerUid: (socket: Socket) => number | null;
  /** Live claims one uid may hold (for the 429 message). */
  claimsPerUid?: number;
  holdsPerUid?: number;
  /** Told about a fault answered 500 (a bug). */
  onError?: (error: unknown) => void;
}

type Env = { Bindings: HttpBindings; Variables: { uid: number } };

/** An answer other than 2xx: `{ error: { code, message } }`. */
class ClaimsRefusal extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: ClaimsErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ClaimsRefusal';
  }
}

function refuse(c: Context, status: ContentfulStatusCode, code: ClaimsErrorCode, message: string): Response {
  return c.json({ error: { code, message } }, status);
}

async function bodyOf<T>(c: Context, schema: z.ZodType<T>): Promise<T> {
  let value: unknown;
  try {
    value = JSON.parse(await c.req.text());
  } catch (error) {
    throw new ClaimsRefusal(400, 'invalid_json', `request body is not JSON: ${(error as Error).message}`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new ClaimsRefusal(400, 'invalid_request', describeIssues(parsed.error));
  return parsed.data;
}

function claimInfo(record: ClaimRecord): ClaimInfo {
  return {
    id: record.id,
    uid: record.uid,
    local: record.local,
    remote: record.remote,
    user: record.user,
    ...(record.ident !== undefined && { ident: record.ident }),
    createdAt: new Date(record.createdAt).toISOString(),
  };
}

function holdInfo(record: HoldRecord): HoldInfo {
  return {
    id: record.id,
    uid: record.uid,
    remote: record.remote,
    expiresAt: new Date(record.expiresAt).toISOString(),
  };
}

function describe(endpoint: { address: string; port: number }): string {
  return endpoint.address.includes(':')
    ? `[${endpoint.address}]:${endpoint.port}`
    : `${endpoint.address}:${endpoint.port}`;
}

export function createClaimsApp({
  registry,
  owners,
  peerUid,
  claimsPerUid = CLAIMS_DEFAULTS.claimsPerUid,
  holdsPerUid = CLAIMS_DEFAULTS.holdsPerUid,
  onError = () => {},
}: ClaimsAppOptions): Hono<Env> {
  const app = new Hono<Env>();

  app.use(async (c, next) => {
    const uid = peerUid(c.env.incoming.socket);
    if (uid === null)
      return refuse(
        c,
        503,
        'peer_credentials_unavailable',
        'the gateway cannot tell which user is asking (the sock_diag addon is not built: npm run build)',
      );
    c.set('uid', uid);
    await next();
  });
  app.use(
    bodyLimit({
      maxSize: MAX_CLAIMS_BODY_OCTETS,
      onError: (c) => refuse(c, 413, 'body_too_large', `request body is larger than ${MAX_CLAIMS_BODY_OCTETS} octets`),
    }),
  );

  app.post(CLAIMS_ROUTES.claims, async (c) => {
    const uid = c.get('uid');
    const input = await bodyOf(c, ClaimRequestSchema);
    if (owners.method === 'off')
      return refuse(c, 503, 'owner_lookup_off', 'owner lookup is off, so no claim can be checked (--owner-lookup)');
    const local = canonicalAddress(input.local.address)!;
    const remote = canonicalAddress(input.remote.address)!;
    if (local.includes(':') !== remote.includes(':'))
      throw new ClaimsRefusal(400, 'invalid_request', 'remote.address: not the same address family as local.address');
    const ends = `${describe(input.local)} -> ${describe(input.remote)}`;
    const owner = await owners.lookup({
      localAddress: local,
      localPort: input.local.port,
      remoteAddress: remote,
      remotePort: input.remote.port,
    });
    if (owner === null) return refuse(c, 403, 'no_connection', `no open TCP connection ${ends} on this host`);
    if (owner.uid !== uid) return refuse(c, 403, 'not_owner', `the connection ${ends} is not owned by your uid ${uid}`);
    const added = registry.add(uid, input);
    if (!added.ok)
      return refuse(c, 429, 'too_many_claims', `uid ${uid} holds ${claimsPerUid} claims already (the most allowed)`);
    return c.json(claimInfo(added.claim), 201);
  });

  app.get(CLAIMS_ROUTES.claims, (c) => c.json({ claims: registry.list(c.get('uid')).map(claimInfo) }));

  app.delete(CLAIMS_ROUTES.claims, (c) => c.json({ released: registry.releaseAll(c.get('uid')) }));

  app.delete(`${CLAIMS_ROUTES.claims}/:id`, (c) => {
    const id = c.req.param('id');
    if (!registry.release(c.get('uid'), id)) return refuse(c, 404, 'not_found', `you hold no claim ${id}`);
    return c.json({ released: 1 });
  });

  app.post(CLAIMS_ROUTES.pending, async (c) => {
    const uid = c.get('uid');
    const input = await bodyOf(c, PendingRequestSchema);
    const held = registry.hold(uid, input.remote, input.ttlMs);
    if (!held.ok)
      return refuse(
        c,
        429,
        'too_many_holds',
        `uid ${uid} holds ${holdsPerUid} pending holds already (the most allowed)`,
      );
    return c.json(holdInfo(held.hold), 201);
  });

  app.delete(`${CLAIMS_ROUTES.pending}/:id`, (c) => {
    const id = c.req.param('id');
    if (!registry.releaseHold(c.get('uid'), id)) return refuse(c, 404, 'not_found', `you hold no pending hold ${id}`);
    return c.json({ released: 1 });
  });

  app.notFound((c) => refuse(c, 404, 'not_found', `no route ${c.req.method} ${c.req.path}`));
  app.onError((error, c) => {
    if (error instanceof ClaimsRefusal) return refuse(c, error.status, error.code, error.message);
    onError(error);
    return refuse(c, 500, 'internal_error', 'internal error; see the gateway log');
  });
  return app;
}
