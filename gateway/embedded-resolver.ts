/**
 * The Resolver that asks the policy app in the same process (`identgate serve
 * --policy file`): it calls the Hono app's `fetch` with a Request built for
 * `http://embedded` + the route, with no socket and no signature (the app runs in
 * embedded mode and trusts its caller). Answers are validated exactly like the
 * HTTP resolver's, by the shared dispatcher in gateway/resolver.ts, which also
 * batches: queries arriving while the app is busy, or in the same turn of the
 * event loop, go to ROUTES.batch in one call, which is what makes this cheap.
 *
 * @example
 * import { createApp } from '../worker/app.js';
 * const resolver = createEmbeddedResolver({ app: createApp({ store }) });
 * const { answer } = await resolver.resolve(request);
 */
import { MAX_BATCH, MAX_BODY_OCTETS } from '../protocol/wire.js';
import type { IdentAnswer } from '../protocol/reply.js';
import {
  createBatchingResolver,
  readCapped,
  ResolverFailure,
  tooLarge,
  type BatchListener,
  type Exchange,
  type FailureListener,
  type RecoveryListener,
  type Resolver,
} from './resolver.js';

/** Anything with a Fetch-API handler, like a Hono app. */
export interface FetchApp {
  fetch(request: Request): Response | Promise<Response>;
}

export interface EmbeddedResolverOptions {
  app: FetchApp;
  /** Each query is answered within this many milliseconds of resolve(), queueing included. */
  deadlineMs?: number;
  /** Most queries per batch call; defaults to MAX_BATCH, since a bigger batch costs nothing in-process. */
  maxBatch?: number;
  /** Calls to the app in flight at once; more only helps when the app awaits I/O. */
  concurrency?: number;
  fallback?: IdentAnswer;
  onFailure?: FailureListener;
  onRecover?: RecoveryListener;
  onBatch?: BatchListener;
  reportIntervalMs?: number;
}

const ORIGIN = 'http://embedded';
const JSON_HEADERS = { 'content-type': 'application/json' };

function mapAppError(error: unknown): ResolverFailure {
  if (error instanceof ResolverFailure) return error;
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return new ResolverFailure('app_error', `embedded policy app failed: ${message}`, { cause: error });
}

/**
 * A Resolver over an in-process Fetch-API app.
 *
 * @example
 * const resolver = createEmbeddedResolver({ app, deadlineMs: 300 });
 */
export function createEmbeddedResolver(options: EmbeddedResolverOptions): Resolver {
  const { app } = options;
  if (!app || typeof app.fetch !== 'function') {
    throw new TypeError('embedded resolver needs an app with a fetch(request) method');
  }

  const exchange: Exchange = async (path, body, signal) => {
    // No signal on the Request: an in-process app cannot be interrupted anyway, the
    // dispatcher answers at the deadline, and the signal costs on every call.
    const response = await app.fetch(new Request(ORIGIN + path, { method: 'POST', headers: JSON_HEADERS, body }));
    const length = Number(response.headers.get('content-length'));
    if (length > MAX_BODY_OCTETS) {
      await response.body?.cancel();
      throw tooLarge();
    }
    return { status: response.status, text: await readCapped(response.body as AsyncIterable<Uint8Array> | null, MAX_BODY_OCTETS, signal) };
  };

  return createBatchingResolver({
    ...options,
    exchange,
    maxBatch: options.maxBatch ?? MAX_BATCH,
    mapError: mapAppError,
    concurrency: options.concurrency ?? 1,
  });
}
