/**
 * The resolvers' vocabulary: the Resolver interface the pipeline asks, the transport a dispatcher drives, the
 * failure causes, the defaults and the errors. How resolvers batch, time out and report is in docs/wire.md.
 */
import { ConfigError, IdentgateError } from '../../protocol/errors.js';
import type { IdentAnswer } from '../../protocol/reply.js';
import type { LookupAnswer, LookupRequest } from '../../protocol/wire.js';

/** Answers lookups; implemented over HTTP and in-process. */
export interface Resolver {
  /** Never rejects: every failure becomes the fallback answer within the deadline. */
  resolve(request: LookupRequest): Promise<LookupAnswer>;
  /**
   * The answer at once, when this resolver can decide without waiting (the
   * embedded policy, loaded); undefined otherwise, and then resolve() is the
   * way. Never throws.
   */
  resolveNow?(request: LookupRequest): LookupAnswer | undefined;
  /** Answers every waiting query with the fallback and releases connections. Later resolves get the fallback. */
  close(): Promise<void>;
}

/** Why a query was answered with the fallback instead of the worker's answer. */
export type FailureCause =
  /** The worker's port refused the TCP connection. */
  | 'refused'
  /** The connection was reset or closed before the whole answer arrived. */
  | 'reset'
  /** Any other network error (DNS, unreachable host, TLS). */
  | 'network'
  /** No answer within the deadline (queued or in flight). */
  | 'timeout'
  /** The worker answered with a status other than 2xx (and not 401/403). */
  | 'http_status'
  /** The worker answered 401 or 403: the shared secret does not match. */
  | 'auth'
  /** The answer body is not JSON. */
  | 'invalid_json'
  /** The answer is JSON but not a LookupAnswer / BatchAnswer. */
  | 'schema_mismatch'
  /** The answer ids are not those of the requests, in order. */
  | 'id_mismatch'
  /** An answer breaks an RFC 1413 reply rule (e.g. a user id with CR). */
  | 'invalid_answer'
  /** The answer body is larger than MAX_BODY_OCTETS. */
  | 'body_too_large'
  /** The worker answered 400 and the request breaks LookupRequestSchema (a gateway bug). */
  | 'invalid_request'
  /** The app threw (embedded resolver only). */
  | 'app_error';

export type FailureListener = (cause: FailureCause, detail: string, count: number) => void;
export type RecoveryListener = (failures: number, downMs: number) => void;
export type BatchListener = (size: number, latencyMs: number) => void;
/** Every fallback answer, not throttled like onFailure (for counters): its cause and how many queries got it. */
export type FallbackListener = (cause: FailureCause, count: number) => void;
/** Queries the worker failed to answer that the last-good policy answered instead (for counters and the log). */
export type StaleListener = (cause: FailureCause, count: number) => void;

/** The answer used when the worker cannot be asked: RFC 1413 §6 UNKNOWN-ERROR. */
export const DEFAULT_FALLBACK: IdentAnswer = Object.freeze({ type: 'ERROR', error: 'UNKNOWN-ERROR' });

/** The resolvers' defaults, in one place (the CLI's --deadline, --upstream-connections and --batch-hold use them). */
export const RESOLVER_DEFAULTS = {
  /** Each query is answered within this, queueing included. */
  deadlineMs: 1_000,
  /** Queries per exchange at most (the embedded resolver uses MAX_BATCH). */
  maxBatch: 64,
  /** While an exchange is in flight, how long a partial batch waits before a parallel exchange takes it. */
  holdMs: 20,
  /** Exchanges in flight at once; for the HTTP resolver, connections to the worker. */
  connections: 4,
  /** Least time between two onFailure calls within one failure episode. */
  reportIntervalMs: 10_000,
} as const;

/** The `rule` of every fallback answer. */
export const FALLBACK_RULE = '(fallback)';

/** One failed exchange with the worker; `reason` says why. Callers branch on `reason`, never on message text. */
export class ResolverFailure extends IdentgateError {
  readonly code = 'ERR_RESOLVER_FAILURE';
  /** The status the worker answered with, when it answered one (400 makes the dispatcher look for bad requests). */
  readonly status: number | undefined;
  constructor(
    readonly reason: FailureCause,
    message: string,
    options?: { cause?: unknown; status?: number },
  ) {
    super(message, options);
    this.status = options?.status;
  }
}

/** A resolver option is unusable (a ConfigError); the message is one line naming the option and what to do. */
export class ResolverConfigError extends ConfigError {
  override readonly code = 'ERR_RESOLVER_CONFIG';
}

/** What a transport got back: the status and the body, already read with the size cap. */
export interface ExchangeReply {
  readonly status: number;
  readonly text: string;
}

/**
 * Sends one body to one route and returns the reply. Rejects with a
 * ResolverFailure (or any error, mapped by the caller's `mapError`) and must
 * stop promptly when `signal` aborts.
 */
export type Exchange = (path: string, body: string, signal: AbortSignal) => Promise<ExchangeReply>;

/**
 * Asks a policy app in this process about requests and returns its answers,
 * typed and in order. Rejects with a ResolverFailure (or any error, mapped by
 * the caller's `mapError`); one with status 400 makes the dispatcher look for
 * the requests that break the wire schema.
 */
export type InProcessLookup = (requests: readonly LookupRequest[]) => Promise<readonly LookupAnswer[]>;

/**
 * How a dispatcher reaches the policy: one `ask` per batch of requests. Made by exchangeTransport (JSON over a route,
 * answers schema-checked) or inProcessTransport (typed answers from an app in this process) in wire.ts.
 */
export interface PolicyTransport {
  /** One answer per request, in order, checked; rejects otherwise (with anything `mapError` understands). */
  ask(requests: readonly LookupRequest[], signal: AbortSignal | undefined): Promise<readonly LookupAnswer[]>;
  /**
   * The same answers synchronously when the policy can decide at once, else undefined; may throw. Makes
   * resolveNow() available: no queue, no batch, no timer (an in-process decision is a pure function of a policy).
   */
  askNow?(requests: readonly LookupRequest[]): readonly LookupAnswer[] | undefined;
  /** ask() stops when its signal aborts: the dispatcher then gives each exchange one, cut at its deadline. */
  readonly abortable: boolean;
  /** Turns what ask() rejected with into a ResolverFailure; ResolverFailure instances pass through. */
  mapError(error: unknown): ResolverFailure;
  /** Releases connections; called by close() after waiting queries have been answered. */
  close?(): Promise<void>;
}

/** The options every resolver takes, whatever it talks to. */
export interface SharedResolverOptions {
  deadlineMs?: number;
  maxBatch?: number;
  /** While an exchange is in flight, how long a partial batch waits before a parallel exchange takes it. */
  holdMs?: number;
  fallback?: IdentAnswer;
  onFailure?: FailureListener;
  onRecover?: RecoveryListener;
  onFallback?: FallbackListener;
  /** Called after every successful exchange with the number of queries it answered. */
  onBatch?: BatchListener;
  /** Least time between two onFailure calls within one failure episode. */
  reportIntervalMs?: number;
}
