/**
 * The Resolver that asks the policy app in this process (`identgate serve --policy`): typed requests and answers
 * through `app.inProcess` when the app offers it (synchronously when the policy is loaded), else its fetch().
 *
 * @example
 * import { createApp } from '../../worker/app.js';
 * const resolver = createEmbeddedResolver({ app: createApp({ store }) });
 * const { answer } = await resolver.resolve(request);
 */
import { MAX_BATCH, MAX_BODY_OCTETS } from '../../protocol/wire.js';
import type { InProcessLookups } from '../../worker/in-process.js';
import { BatchingDispatcher } from './dispatcher.js';
import {
  ResolverConfigError,
  ResolverFailure,
  type Exchange,
  type InProcessLookup,
  type Resolver,
  type SharedResolverOptions,
} from './types.js';
import { exchangeTransport, inProcessTransport, readCapped, tooLarge } from './wire.js';

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

  const transport = lookup
    ? inProcessTransport(lookup, mapAppError, inProcess?.lookupNow?.bind(inProcess))
    : exchangeTransport(exchange, mapAppError);
  return new BatchingDispatcher(transport, {
    ...options,
    maxBatch: options.maxBatch ?? MAX_BATCH,
    concurrency: options.concurrency ?? 1,
  });
}
