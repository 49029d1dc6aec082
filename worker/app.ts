/**
 * The policy worker as a Hono app, the same in every runtime: Cloudflare Workers
 * (worker/workers-entry.ts), Node (worker/node.ts) and in-process inside the
 * gateway. It turns untrusted JSON into typed values with the wire schemas
 * (protocol/wire.ts), asks the policy engine for a decision, logs the
 * decisions of each request as one entry (unless told not to) and answers. In 'embedded' mode the app also
 * offers `inProcess.lookup(requests)`: the batch route without HTTP, for the
 * gateway's embedded resolver, where a Request, a Response and two JSON texts
 * per call would cost more than the decisions; its requests are the gateway's
 * own typed values, trusted as such (the wire schemas parse what comes from
 * the network). In 'service' mode every lookup carries an HMAC
 * signature (protocol/signature.ts), checked before the body is parsed, and a
 * signature seen before within the clock-skew window is refused — in this isolate
 * or process only (replicas do not share what they have seen). Admin routes need
 * a bearer token that is not one of the signing secrets. Every error is
 * `{ error: { code, message } }` with a stable code; docs/wire.md lists them.
 *
 * @example
 * const app = createApp({ store: createMemoryStore(), secrets: ['s3cret'], mode: 'service' });
 * const body = JSON.stringify(lookupRequest);
 * const res = await app.request('/v1/ident', {
 *   method: 'POST',
 *   body,
 *   headers: await signatureHeaders(['s3cret'], 'POST', '/v1/ident', body),
 * });
 * await res.json(); // { v: 1, id, answer: { type: 'ERROR', error: 'HIDDEN-USER' }, rule: 'default' }
 */
import { Hono, type Context } from 'hono';
import { z } from 'zod';
import {
  BatchRequestSchema,
  LookupRequestSchema,
  MAX_BATCH,
  MAX_BODY_OCTETS,
  OwnerSchema,
  ROUTES,
  WIRE_VERSION,
  describeIssues,
  type LookupAnswer,
  type LookupRequest,
} from '../protocol/wire.js';
import { MAX_CLOCK_SKEW_SECONDS, SIGNATURE_HEADER, TIMESTAMP_HEADER, verifySignature } from '../protocol/signature.js';
import type { IdentAnswer } from '../protocol/reply.js';
import { decide, explain, parsePolicy, redactPolicy } from './policy/index.js';
import { PolicyStoreError, type PolicySnapshot, type PolicyStore } from './stores/store.js';

export interface AppDeps {
  store: PolicyStore;
  /** HMAC secrets; all are accepted (rotation). A function is asked on every request. */
  secrets: readonly string[] | (() => readonly string[]);
  /** Bearer tokens for the admin routes. None: the admin routes answer 503 not_configured. */
  adminTokens?: readonly string[] | (() => readonly string[]);
  /** 'service' (default): lookups must be signed. 'embedded': called in-process, no signature. */
  mode?: 'embedded' | 'service';
  log?: (entry: Record<string, unknown>) => void;
  /** Log each request's decisions, one entry per request (default true); false skips building the entries when nobody reads them. */
  logDecisions?: boolean;
  /** Clock in milliseconds since the epoch. */
  now?: () => number;
}

/** Most signatures remembered for replay protection; beyond it the oldest are forgotten. */
export const MAX_REMEMBERED_SIGNATURES = 100_000;

/** The lookup routes for a caller in the same process: no Request, no JSON text, no signature. */
export interface InProcessLookups {
  /**
   * Answers 1 to MAX_BATCH requests in order, from one policy snapshot, as
   * POST ROUTES.batch does. The requests are typed values built in this
   * process, not JSON from outside, so they are trusted as typed and not run
   * through LookupRequestSchema again (the schema is the network boundary's
   * parser). Rejects with RequestRejected (status 400 invalid_request when
   * there are none or more than MAX_BATCH, 503 when no policy is available).
   *
   * @example
   * const [answer] = await app.inProcess!.lookup([lookupRequest]);
   */
  lookup(requests: readonly LookupRequest[]): Promise<LookupAnswer[]>;
  /**
   * The same answers synchronously when the store holds its policy without
   * waiting (PolicyStore.peek), else undefined: the caller then uses lookup().
   * Throws what lookup() rejects with.
   *
   * @example
   * const answers = app.inProcess!.lookupNow([lookupRequest]) ?? (await app.inProcess!.lookup([lookupRequest]));
   */
  lookupNow?(requests: readonly LookupRequest[]): LookupAnswer[] | undefined;
}

/** The Hono app, plus in-process lookups in 'embedded' mode. */
export type PolicyApp = Hono & { readonly inProcess: InProcessLookups | undefined };

/** A request the app refuses; onError turns it into the wire error body. */
export class RequestRejected extends Error {
  readonly status: 400 | 401 | 404 | 405 | 413 | 503;
  readonly code: string;
  constructor(status: RequestRejected['status'], code: string, message: string) {
    super(message);
    this.name = 'RequestRejected';
    this.status = status;
    this.code = code;
  }
}

/** An explain query: a lookup request whose `v`, `id` and `owner` may be left out. */
const ExplainRequestSchema = LookupRequestSchema.extend({
  v: z.literal(WIRE_VERSION).optional(),
  id: z.string().min(1).max(128).optional(),
  owner: OwnerSchema.optional(),
});

function resolve(list: readonly string[] | (() => readonly string[]) | undefined): readonly string[] {
  const values = typeof list === 'function' ? list() : (list ?? []);
  return values.filter((value) => value.length > 0);
}

/** Reads a body of at most `limit` octets: refused by Content-Length first, then by what actually arrives. */
async function readBody(request: Request, limit: number): Promise<string> {
  const declared = request.headers.get('content-length');
  const tooLarge = () => new RequestRejected(413, 'body_too_large', `request body is larger than ${limit} octets`);
  if (declared !== null && Number(declared) > limit) throw tooLarge();
  if (!request.body) return '';
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge();
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes);
}

function parseJson(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch (error) {
    throw new RequestRejected(
      400,
      'invalid_json',
      `request body is not JSON: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}

function parseWith<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (!result.success) throw new RequestRejected(400, 'invalid_request', describeIssues(result.error));
  return result.data;
}

const encoder = new TextEncoder();

async function digest(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', encoder.encode(text)));
}

/** Compares digests so the time taken says nothing about where the strings differ. */
async function constantTimeIncludes(candidates: readonly string[], presented: string): Promise<boolean> {
  const mine = await digest(presented);
  let found = 0;
  for (const candidate of candidates) {
    const theirs = await digest(candidate);
    let diff = 0;
    for (let i = 0; i < mine.length; i++) diff |= (mine[i] ?? 0) ^ (theirs[i] ?? 0);
    found |= diff === 0 ? 1 : 0;
  }
  return found === 1;
}

/** What redactPolicy puts in place of the pseudonym key. */
const REDACTED = '[redacted]';

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function summarize(answer: IdentAnswer): Record<string, string> {
  return answer.type === 'USERID' ? { type: 'USERID', userId: answer.userId } : { type: 'ERROR', error: answer.error };
}

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
 * Builds the policy worker's Hono app.
 *
 * @example
 * const app = createApp({ store: createMemoryStore(), secrets: [], mode: 'embedded' });
 * const res = await app.fetch(new Request('http://worker/v1/ident', { method: 'POST', body }));
 */
export function createApp(deps: AppDeps): PolicyApp {
  const mode = deps.mode ?? 'service';
  const log = deps.log ?? (() => {});
  const logDecisions = deps.log !== undefined && deps.logDecisions !== false;
  const now = deps.now ?? Date.now;
  const replay = createReplayGuard(MAX_CLOCK_SKEW_SECONDS, MAX_REMEMBERED_SIGNATURES);
  const app = new Hono();

  async function current(): Promise<PolicySnapshot> {
    try {
      return await deps.store.current();
    } catch (error) {
      if (error instanceof PolicyStoreError) {
        log({ msg: 'policy_unavailable', error: error.message });
        throw new RequestRejected(503, 'policy_unavailable', 'no valid policy is available; see the worker log');
      }
      throw error;
    }
  }

  /** Reads a lookup body, checking the signature first in service mode. */
  async function readLookup(c: Context): Promise<unknown> {
    const secrets = mode === 'service' ? resolve(deps.secrets) : [];
    if (mode === 'service' && secrets.length === 0) {
      throw new RequestRejected(503, 'not_configured', 'no signing secret is configured; lookups are refused');
    }
    const body = await readBody(c.req.raw, MAX_BODY_OCTETS);
    if (mode === 'service') {
      const nowSeconds = Math.floor(now() / 1000);
      const timestamp = c.req.header(TIMESTAMP_HEADER);
      const signature = c.req.header(SIGNATURE_HEADER);
      const verdict = await verifySignature(
        secrets,
        { method: c.req.method, path: c.req.path, body, timestamp, signature },
        nowSeconds,
      );
      if (!verdict.ok) throw new RequestRejected(401, verdict.code, verdict.message);
      if (!replay.admit(signature ?? '', Number(timestamp), nowSeconds)) {
        throw new RequestRejected(
          401,
          'replayed_signature',
          'this signature was already used; sign every request afresh',
        );
      }
    }
    return parseJson(body);
  }

  /**
   * Decides every request from one policy version, answers in their order,
   * and logs the decisions as one entry: a log call costs more than a decision
   * (on Workers each call is a log event; under wrangler dev it crosses two
   * processes), so a batch of 64 queries costs one call, not 64.
   */
  function answerAll(snapshot: PolicySnapshot, requests: readonly LookupRequest[]): LookupAnswer[] {
    const answers: LookupAnswer[] = [];
    // Built only when logged: this runs for every embedded query.
    const decisions: Record<string, unknown>[] | undefined = logDecisions ? [] : undefined;
    for (const request of requests) {
      const decision = decide(snapshot.compiled, request);
      answers.push({ v: WIRE_VERSION, id: request.id, answer: decision.answer, rule: decision.rule });
      if (decisions) {
        decisions.push({
          id: request.id,
          gateway: request.gateway,
          rule: decision.rule,
          answer: summarize(decision.answer),
          serverPort: request.query.serverPort,
          clientPort: request.query.clientPort,
          localAddress: request.connection.localAddress,
          remoteAddress: request.connection.remoteAddress,
        });
      }
    }
    if (decisions) log({ msg: 'decisions', policyVersion: snapshot.version, count: decisions.length, decisions });
    return answers;
  }

  function checkBatchSize<T>(requests: readonly T[]): readonly T[] {
    if (requests.length < 1 || requests.length > MAX_BATCH) {
      throw new RequestRejected(
        400,
        'invalid_request',
        `a batch holds 1 to ${MAX_BATCH} requests, got ${requests.length}`,
      );
    }
    return requests;
  }

  async function requireAdmin(c: Context): Promise<void> {
    const tokens = resolve(deps.adminTokens);
    if (tokens.length === 0)
      throw new RequestRejected(503, 'not_configured', 'no admin token is configured; the admin API is off');
    const match = /^Bearer +(\S+) *$/i.exec(c.req.header('authorization') ?? '');
    if (!match?.[1] || !(await constantTimeIncludes(tokens, match[1]))) {
      c.header('WWW-Authenticate', 'Bearer');
      throw new RequestRejected(
        401,
        'unauthorized',
        'a valid "Authorization: Bearer <admin token>" header is required',
      );
    }
  }

  app.post(ROUTES.lookup, async (c) => {
    const request = parseWith(LookupRequestSchema, await readLookup(c));
    return c.json(answerAll(await current(), [request])[0]);
  });

  /** One policy version for the whole batch; answers keep the requests' order. */
  async function answerBatch(requests: readonly LookupRequest[]): Promise<LookupAnswer[]> {
    return answerAll(await current(), requests);
  }

  app.post(ROUTES.batch, async (c) => {
    const batch = parseWith(BatchRequestSchema, await readLookup(c));
    return c.json({ v: WIRE_VERSION, answers: await answerBatch(batch.requests) });
  });

  app.get(ROUTES.policy, async (c) => {
    await requireAdmin(c);
    const snapshot = await current();
    c.header('ETag', `"${snapshot.version}"`);
    // The pseudonym key is a secret: shown as "[redacted]" (PUT keeps the current key for that value).
    return c.json({ v: WIRE_VERSION, version: snapshot.version, policy: redactPolicy(snapshot.policy) });
  });

  app.put(ROUTES.policy, async (c) => {
    await requireAdmin(c);
    const json = parseJson(await readBody(c.req.raw, MAX_BODY_OCTETS));
    if (isObject(json) && json.key === REDACTED) {
      // A policy fetched with GET and edited: keep the key it was shown without.
      const currentKey = (await current()).policy.key;
      if (currentKey === undefined) delete json.key;
      else json.key = currentKey;
    }
    let policy;
    try {
      policy = parsePolicy(json);
    } catch (error) {
      if ((error as { code?: unknown }).code === 'ERR_POLICY_INVALID') {
        throw new RequestRejected(400, 'invalid_policy', (error as Error).message);
      }
      throw error;
    }
    const { version } = await deps.store.replace(policy);
    log({ msg: 'policy_replaced', version });
    return c.json({ v: WIRE_VERSION, version });
  });

  app.post(ROUTES.explain, async (c) => {
    await requireAdmin(c);
    const query = parseWith(ExplainRequestSchema, parseJson(await readBody(c.req.raw, MAX_BODY_OCTETS)));
    const request: LookupRequest = { ...query, v: WIRE_VERSION, id: query.id ?? 'explain', owner: query.owner ?? null };
    const snapshot = await current();
    const explanation = explain(snapshot.compiled, request);
    return c.json({ v: WIRE_VERSION, version: snapshot.version, ...explanation });
  });

  app.get(ROUTES.health, (c) => {
    const configured = mode === 'embedded' || resolve(deps.secrets).length > 0;
    return c.json({ status: 'ok', mode, configured });
  });

  const allowed: Record<string, string> = {
    [ROUTES.lookup]: 'POST',
    [ROUTES.batch]: 'POST',
    [ROUTES.policy]: 'GET, HEAD, PUT',
    [ROUTES.explain]: 'POST',
    [ROUTES.health]: 'GET, HEAD',
  };
  for (const [path, methods] of Object.entries(allowed)) {
    app.all(path, (c) => {
      c.header('Allow', methods);
      return c.json(
        { error: { code: 'method_not_allowed', message: `${c.req.method} is not allowed on ${path}; use ${methods}` } },
        405,
      );
    });
  }

  app.notFound((c) => c.json({ error: { code: 'not_found', message: `no route ${c.req.method} ${c.req.path}` } }, 404));

  app.onError((error, c) => {
    if (error instanceof RequestRejected) {
      if (error.status === 401 || error.status === 503) log({ msg: 'rejected', path: c.req.path, code: error.code });
      return c.json({ error: { code: error.code, message: error.message } }, error.status);
    }
    log({ msg: 'internal_error', path: c.req.path, error: error instanceof Error ? error.message : String(error) });
    return c.json({ error: { code: 'internal_error', message: 'the worker failed; see its log' } }, 500);
  });

  const inProcess: InProcessLookups | undefined =
    mode === 'embedded'
      ? {
          lookup: async (requests) => answerBatch(checkBatchSize(requests)),
          lookupNow: (requests) => {
            const snapshot = deps.store.peek?.();
            return snapshot === undefined ? undefined : answerAll(snapshot, checkBatchSize(requests));
          },
        }
      : undefined;
  return Object.assign(app, { inProcess });
}
