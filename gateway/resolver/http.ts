/**
 * The Resolver that asks a policy worker over HTTP (Workers, wrangler dev, identgate worker): an undici Pool of
 * keep-alive connections, every request signed with the first secret (node:crypto's HMAC, synchronous and cheap).
 *
 * @example
 * const resolver = createHttpResolver({
 *   upstream: 'https://identgate.example.workers.dev',
 *   secrets: [secret],
 *   onFailure: (cause, detail, count) => log.warn({ cause, count }, detail),
 * });
 * const { answer } = await resolver.resolve(request);
 * await resolver.close();
 */
import { createHmac } from 'node:crypto';
import { Pool } from 'undici';
import { MAX_BODY_OCTETS } from '../../protocol/wire.js';
import { signedHeaders, signedText } from '../../protocol/signature.js';
import { errnoCode, errnoMessage } from '../describe.js';
import { BatchingDispatcher, checkCommonOptions } from './dispatcher.js';
import { userAgent } from '../version.js';
import {
  RESOLVER_DEFAULTS,
  ResolverConfigError,
  ResolverFailure,
  type Exchange,
  type FailureCause,
  type Resolver,
  type SharedResolverOptions,
  type StaleListener,
} from './types.js';
import { exchangeTransport, readCapped, tooLarge } from './wire.js';
import { LastGoodPolicy, type LastGoodOptions } from './last-good.js';

export interface HttpResolverOptions extends SharedResolverOptions {
  /** The worker's base URL (http: or https:); routes are appended to its path. */
  upstream: string | URL;
  /** Shared secrets; the first one signs. */
  secrets: readonly string[];
  /** Most connections (and requests in flight) to the worker. */
  connections?: number;
  /** Keep the worker's policy and answer from it when the worker fails (docs/wire.md "Last-good policy"). */
  lastGood?: Omit<LastGoodOptions, 'exchange' | 'mapError'>;
  /** Queries the last-good policy answered, by the cause of the worker's failure. */
  onStale?: StaleListener;
}

/** The HTTP resolver, with its last-good policy when it keeps one (polling once its start() is called). */
export interface HttpResolver extends Resolver {
  readonly lastGood: LastGoodPolicy | undefined;
}

function parseUpstream(upstream: string | URL): URL {
  let url: URL;
  try {
    url = new URL(upstream);
  } catch {
    throw new ResolverConfigError(
      `upstream "${String(upstream)}" is not a URL: pass the worker's base URL, e.g. http://127.0.0.1:8787`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ResolverConfigError(`upstream "${url.href}" must be an http:// or https:// URL`);
  }
  if (url.username || url.password) {
    throw new ResolverConfigError(
      `upstream "${url.protocol}//${url.host}" must not carry credentials: requests are signed with --secret-file`,
    );
  }
  if (url.search || url.hash) {
    throw new ResolverConfigError(`upstream "${url.href}" must not have a query or fragment`);
  }
  return url;
}

const TIMEOUT_CODES = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ETIMEDOUT',
  'UND_ERR_ABORTED',
]);
const RESET_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'ECONNABORTED',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);

/**
 * Maps an undici or socket error to a ResolverFailure.
 *
 * @example
 * mapHttpError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' })).reason // 'refused'
 */
export function mapHttpError(error: unknown): ResolverFailure {
  if (error instanceof ResolverFailure) return error;
  const code = errnoCode(error);
  const detail = errnoMessage(error);
  let reason: FailureCause = 'network';
  if (code === 'ECONNREFUSED') reason = 'refused';
  else if (code && RESET_CODES.has(code)) reason = 'reset';
  else if ((code && TIMEOUT_CODES.has(code)) || (error instanceof Error && error.name === 'AbortError'))
    reason = 'timeout';
  return new ResolverFailure(reason, `worker request failed: ${detail}`, { cause: error });
}

/**
 * A Resolver that POSTs signed JSON to the worker.
 *
 * @example
 * const resolver = createHttpResolver({ upstream: 'http://127.0.0.1:8787', secrets: ['s3cret'], deadlineMs: 500 });
 */
export function createHttpResolver(options: HttpResolverOptions): HttpResolver {
  const url = parseUpstream(options.upstream);
  const secrets = options.secrets;
  if (
    !Array.isArray(secrets) ||
    secrets.length === 0 ||
    secrets.some((secret) => typeof secret !== 'string' || secret.length === 0)
  ) {
    throw new ResolverConfigError('no secret configured: pass --secret-file');
  }
  const { deadlineMs } = checkCommonOptions(options);
  const connections = options.connections ?? RESOLVER_DEFAULTS.connections;
  if (!Number.isInteger(connections) || connections < 1 || connections > 1024) {
    throw new ResolverConfigError(`connections must be an integer from 1 to 1024, got ${String(connections)}`);
  }
  const basePath = url.pathname.replace(/\/+$/, '');

  const pool = new Pool(url.origin, {
    connections,
    pipelining: 1,
    connectTimeout: deadlineMs,
    headersTimeout: deadlineMs,
    bodyTimeout: deadlineMs,
    keepAliveTimeout: 30_000,
  });

  // The worker keeps the version in its fleet list (GET /v1/gateways).
  const agent = userAgent();
  const exchange: Exchange = async (route, body, signal) => {
    const path = basePath + route;
    const timestamp = String(Math.floor(Date.now() / 1000));
    const mac = createHmac('sha256', secrets[0]!)
      .update(signedText(timestamp, 'POST', path, body))
      .digest('hex');
    const headers = {
      'content-type': 'application/json',
      accept: 'application/json',
      'user-agent': agent,
      ...signedHeaders(timestamp, mac),
    };
    signal.throwIfAborted();
    const response = await pool.request({ path, method: 'POST', headers, body, signal });
    const length = Number(response.headers['content-length']);
    if (length > MAX_BODY_OCTETS) {
      response.body.destroy();
      throw tooLarge();
    }
    const text = await readCapped(response.body, MAX_BODY_OCTETS, signal);
    return { status: response.statusCode, text };
  };

  const lastGood = options.lastGood && new LastGoodPolicy({ ...options.lastGood, exchange, mapError: mapHttpError });
  const close = async () => {
    lastGood?.close();
    await pool.close();
  };
  const transport = { ...exchangeTransport(exchange, mapHttpError), close };
  const dispatcher = new BatchingDispatcher(transport, { ...options, concurrency: connections, lastGood });
  return Object.assign(dispatcher, { lastGood });
}
