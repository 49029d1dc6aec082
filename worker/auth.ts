/**
 * Who may call the worker: gateways sign every lookup (protocol/signature.ts, checked with
 * replay protection), admins present a bearer token (hono/bearer-auth, compared in constant time).
 */
import type { Context, MiddlewareHandler } from 'hono';
import { bearerAuth } from 'hono/bearer-auth';
import { every } from 'hono/combine';
import { timingSafeEqual } from 'hono/utils/buffer';
import { MAX_CLOCK_SKEW_SECONDS, SIGNATURE_HEADER, TIMESTAMP_HEADER, verifySignature } from '../protocol/signature.js';
import { errorResponse, RequestRejected } from './http.js';
import type { Service } from './service.js';
import { gatewayVersionOf, signingKeyOf, type Caller } from './audit/record.js';

const callers = new WeakMap<Request, Caller>();
const UNSIGNED: Caller = { signingKey: null, gatewayVersion: null };

/** Who signed this lookup (after `signed` let it through): the key and the gateway's version, for the audit trail. */
export function callerOf(c: Context): Caller {
  return callers.get(c.req.raw) ?? UNSIGNED;
}

/** Most signatures remembered for replay protection; beyond it the oldest are forgotten. */
export const MAX_REMEMBERED_SIGNATURES = 100_000;

/** Remembers signatures until their timestamp leaves the skew window. */
function createReplayGuard(windowSeconds: number, maxEntries: number) {
  const seen = new Map<string, number>();
  let sweptAt = 0;
  return {
    /** True when the signature is new (and now remembered), false for a repeat. */
    admit(signature: string, timestamp: number, nowSeconds: number): boolean {
      if (nowSeconds !== sweptAt) {
        sweptAt = nowSeconds;
        for (const [key, expires] of seen) if (expires < nowSeconds) seen.delete(key);
      }
      if (seen.has(signature)) return false;
      seen.set(signature, timestamp + windowSeconds);
      // Oldest first: Map keeps insertion order.
      for (const key of seen.keys()) {
        if (seen.size <= maxEntries) break;
        seen.delete(key);
      }
      return true;
    },
  };
}

/**
 * Lookup routes: in service mode 503 without a signing secret, then (after the body limit,
 * which must come between) 401 unless the body is signed by a configured secret and not replayed —
 * seen in this isolate or process only; replicas do not share what they have seen.
 */
export function gatewayAuth(service: Service): { configured: MiddlewareHandler; signed: MiddlewareHandler } {
  const replay = createReplayGuard(MAX_CLOCK_SKEW_SECONDS, MAX_REMEMBERED_SIGNATURES);
  if (service.mode === 'embedded') {
    const pass: MiddlewareHandler = (_c, next) => next();
    return { configured: pass, signed: pass };
  }
  return {
    configured: async (_c, next) => {
      if (service.secrets().length === 0) {
        throw new RequestRejected(503, 'not_configured', 'no signing secret is configured; lookups are refused');
      }
      await next();
    },
    signed: async (c, next) => {
      const nowSeconds = Math.floor(service.now() / 1000);
      const timestamp = c.req.header(TIMESTAMP_HEADER);
      const signature = c.req.header(SIGNATURE_HEADER);
      const body = await c.req.text();
      const verdict = await verifySignature(
        service.secrets(),
        { method: c.req.method, path: c.req.path, body, timestamp, signature },
        nowSeconds,
        MAX_CLOCK_SKEW_SECONDS,
        service.hmac,
      );
      if (!verdict.ok) throw new RequestRejected(401, verdict.code, verdict.message);
      if (!replay.admit(signature ?? '', Number(timestamp), nowSeconds)) {
        throw new RequestRejected(
          401,
          'replayed_signature',
          'this signature was already used; sign every request afresh',
        );
      }
      if (service.audit) {
        callers.set(c.req.raw, {
          signingKey: await signingKeyOf(service.secrets(), verdict.secretIndex),
          gatewayVersion: gatewayVersionOf(c.req.header('user-agent')),
        });
      }
      await next();
    },
  };
}

const UNAUTHORIZED = 'a valid "Authorization: Bearer <admin token>" header is required';

/**
 * Admin routes: 503 not_configured without an admin token, else Hono's bearerAuth against every
 * configured token; a missing, malformed or wrong token is 401 unauthorized with `WWW-Authenticate: Bearer`.
 */
export function adminAuth(service: Service): MiddlewareHandler {
  const refuse = (c: Context) => {
    service.log({ msg: 'rejected', path: c.req.path, code: 'unauthorized' });
    return errorResponse(401, 'unauthorized', UNAUTHORIZED, { 'WWW-Authenticate': 'Bearer' });
  };
  const configured: MiddlewareHandler = async (_c, next) => {
    if (service.adminTokens().length === 0) {
      throw new RequestRejected(503, 'not_configured', 'no admin token is configured; the admin API is off');
    }
    await next();
  };
  const bearer = bearerAuth({
    // Every token is compared, so the time taken says nothing about which one (if any) matched.
    verifyToken: async (token) => {
      let found = false;
      for (const candidate of service.adminTokens()) found = (await timingSafeEqual(candidate, token)) || found;
      return found;
    },
    noAuthenticationHeader: { message: refuse },
    invalidAuthenticationHeader: { message: refuse },
    invalidToken: { message: refuse },
  });
  return every(configured, bearer);
}
