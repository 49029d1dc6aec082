/**
 * The Resolver that asks the policy app in the same process (`identgate serve
 * --policy file`), with no socket and no signature (the app runs in embedded
 * mode and trusts its caller). The app from worker/app.ts createApp in
 * embedded mode offers `inProcess.lookup`, the batch route without HTTP: the
 * requests go in as the typed objects the gateway built (no JSON, so no
 * schema pass) and typed answers come back, which the dispatcher checks for ids, order and
 * the RFC 1413 reply rules but does not parse again. Any other Fetch-API app
 * is called through `fetch` with a Request for `http://embedded` + the route,
 * and its answers are validated exactly like the HTTP resolver's. Either way
 * the shared dispatcher in gateway/resolver/resolver.ts batches: queries arriving while
 * the app is busy, or in the same turn of the event loop, go in one call. When
 * the app can decide at once (`inProcess.lookupNow`: its policy is loaded),
 * `resolveNow` answers synchronously, with no queue, timer or promise: the
 * common case of `identgate serve --policy`.
 *
 * @example
 * import { createApp } from '../../worker/app.js';
 * const resolver = createEmbeddedResolver({ app: createApp({ store }) });
 * const { answer } = await resolver.resolve(request);
 */
import { MAX_BATCH, MAX_BODY_OCTETS } from '../../protocol/wire.js';
import type { InProcessLookups } from '../../worker/in-process.js';
import {
  createBatchingResolver,
  readCapped,
  ResolverConfigError,
  ResolverFailure,
  tooLarge,
  type Exchange,
  type InProcessLookup,
  type Resolver,
  type SharedResolverOptions,
} from './resolver.js';

/** Anything with a Fetch-API handler, like a Hono app. */
export interface FetchApp {
  fetch(request: Request): Response | Promise<Response>;
  /** Lookups without HTTP (createApp in embedded mode); used instead of fetch when present. */
  readonly inProcess?: InProcessLookups | undefined;
}

export interface EmbeddedResolverOptions extends SharedResolverOptions {
  app: FetchApp;
  /** Calls to the app in flight at once; more only helps when the app awaits I/O. maxBatch defaults to MAX_BATCH here: a bigger batch costs nothing in-process. */
  concurrency?: number;
}

const ORIGIN = 'http://embedded';
const JSON_HEADERS = { 'content-type': 'application/json' };

function mapAppError(error: unknown): ResolverFailure {
  if (error instanceof ResolverFailure) return error;
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  // The app's RequestRejected carries the HTTP status it would have answered (400 for a bad request).
  const status = (error as { status?: unknown } | null)?.status;
  return new ResolverFailure('app_error', `embedded policy app failed: ${message}`, {
    cause: error,
    status: typeof status === 'number' ? status : undefined,
  });
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
    throw new ResolverConfigError('embedded resolver needs an app with a fetch(request) method');
  }

  const inProcess = app.inProcess;
  const lookup: InProcessLookup | undefined = inProcess ? (requests) => inProcess.lookup(requests) : undefined;

  const exchange: Exchange = async (path, body, signal) => {
    // No signal on the Request: an in-process app cannot be interrupted anyway, the
    // dispatcher answers at the deadline, and the signal costs on every call.
    const response = await app.fetch(new Request(ORIGIN + path, { method: 'POST', headers: JSON_HEADERS, body }));
    const length = Number(response.headers.get('content-length'));
    if (length > MAX_BODY_OCTETS) {
      await response.body?.cancel();
      throw tooLarge();
    }
    return {
      status: response.status,
      text: await readCapped(response.body as AsyncIterable<Uint8Array> | null, MAX_BODY_OCTETS, signal),
    };
  };

  return createBatchingResolver({
    ...options,
    ...(lookup ? { lookup } : { exchange }),
    lookupNow: inProcess?.lookupNow?.bind(inProcess),
    maxBatch: options.maxBatch ?? MAX_BATCH,
    mapError: mapAppError,
    concurrency: options.concurrency ?? 1,
  });
}
