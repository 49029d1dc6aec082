/**
 * The gateway's side of the wire contract: a Resolver turns one LookupRequest
 * into a LookupAnswer from the policy worker, and never rejects. Everything the
 * HTTP resolver (gateway/http-resolver.ts) and the in-process resolver
 * (gateway/embedded-resolver.ts) have in common lives here, in one place: the
 * micro-batching dispatcher with its deadline, building request bodies, reading
 * answer bodies with a size cap, validating answers (schema, ids and order, the
 * RFC 1413 reply rules), mapping every failure to one FailureCause, and
 * reporting failures once per episode instead of once per query.
 *
 * Transports: an `exchange` sends JSON text to a route and gets text back (HTTP,
 * or an app's fetch); the dispatcher builds the body and checks the answer
 * against the wire schemas, since the text comes from outside. An in-process
 * `lookup` hands the requests to the policy app in this process and gets typed
 * answers back; those are checked only for what the types do not promise (one
 * answer per request with its id, in order, and the RFC 1413 reply rules), and
 * no AbortController is made, since nothing in-process can be interrupted.
 *
 * Batching: queries wait in a FIFO queue; a flush is scheduled with setImmediate
 * (no fixed delay: it runs after the current I/O callbacks), and takes up to
 * `maxBatch` queries per exchange. Batch first, then parallel: with no exchange
 * in flight the waiting queries go at once; while one is in flight, another
 * starts only for a full batch (`maxBatch` waiting) or once the oldest waiting
 * query has waited `holdMs`, and never beyond `concurrency` exchanges. So a
 * worker that costs per request (Workers bill requests; wrangler dev and workerd
 * spend milliseconds of CPU on each) gets few, large requests, latency grows by
 * at most `holdMs`, and a stalled exchange cannot hold the rest for longer.
 * One waiting query goes to ROUTES.lookup, several to ROUTES.batch.
 *
 * Deadline: each query is answered within `deadlineMs` of resolve(), queueing
 * included. A query still queued at its deadline gets the fallback at once; an
 * exchange is aborted at the deadline of the oldest query it carries, and all its
 * queries get the fallback.
 *
 * Requests are trusted on the hot path (the gateway builds them from typed
 * values); only when the worker answers 400 are they checked against
 * LookupRequestSchema, so a malformed one gets the fallback ('invalid_request')
 * and the rest of its batch is sent again.
 *
 * Failure reports: the first failure after a success (or since start) calls
 * onFailure(cause, detail, count) at once; while failures continue, further
 * failures are counted and reported at most once per `reportIntervalMs` (on the
 * next failure after the interval, so no timer runs); the first success after a
 * failure calls onRecover(failures, downMs) with the episode's total. `count`
 * is always the number of queries answered with the fallback. There is no
 * circuit breaker: the next queued query always tries the worker again, and the
 * bounded number of exchanges in flight (with batching) bounds the load on a
 * failing worker, so recovery is immediate once it answers.
 *
 * @example
 * const resolver = createBatchingResolver({
 *   exchange: async (path, body, signal) => ({ status: 200, text: await send(path, body, signal) }),
 *   deadlineMs: 1000,
 *   onFailure: (cause, detail, count) => log.warn({ cause, count }, detail),
 * });
 * const { answer, rule } = await resolver.resolve(request);
 */
import { describeIssues } from '../../protocol/issues.js';
import {
  BatchAnswerSchema,
  LookupAnswerSchema,
  LookupRequestSchema,
  MAX_BATCH,
  MAX_BODY_OCTETS,
  ROUTES,
  WIRE_VERSION,
  WireErrorSchema,
  type LookupAnswer,
  type LookupRequest,
} from '../../protocol/wire.js';
import { ConfigError, IdentgateError } from '../../protocol/errors.js';
import { replyRuleViolation, type IdentAnswer } from '../../protocol/reply.js';
import type { z } from 'zod';

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

export interface BatchingResolverOptions {
  /** The transport, one of: JSON text over a route (answers are schema-checked)... */
  exchange?: Exchange;
  /** ...or typed answers from an app in this process (see InProcessLookup). */
  lookup?: InProcessLookup;
  /**
   * With `lookup`: the same answers synchronously when the app can decide at
   * once, else undefined. Makes resolveNow() available: no queue, no batch, no
   * timer (an in-process decision is a pure function of a loaded policy).
   */
  lookupNow?: (requests: readonly LookupRequest[]) => readonly LookupAnswer[] | undefined;
  /** Turns a transport error into a ResolverFailure; ResolverFailure instances pass through. */
  mapError?: (error: unknown) => ResolverFailure;
  /** Called by close() after waiting queries have been answered. */
  closeTransport?: () => Promise<void>;
  deadlineMs?: number;
  maxBatch?: number;
  /** Exchanges in flight at once. */
  concurrency?: number;
  /** While an exchange is in flight, how long a partial batch waits before a parallel exchange takes it; 20 ms. */
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

/** The options every resolver takes, whatever it talks to. */
export type SharedResolverOptions = Pick<
  BatchingResolverOptions,
  | 'deadlineMs'
  | 'maxBatch'
  | 'holdMs'
  | 'fallback'
  | 'onFailure'
  | 'onRecover'
  | 'onFallback'
  | 'onBatch'
  | 'reportIntervalMs'
>;

/** Validated common options, with defaults applied. */
export interface CommonOptions {
  deadlineMs: number;
  maxBatch: number;
  holdMs: number;
  fallback: IdentAnswer;
}

/**
 * Checks the options both resolvers share and applies defaults; throws ResolverConfigError.
 *
 * @example
 * const { deadlineMs, maxBatch, fallback } = checkCommonOptions({ deadlineMs: 500 });
 */
export function checkCommonOptions(options: {
  deadlineMs?: number;
  maxBatch?: number;
  holdMs?: number;
  fallback?: IdentAnswer;
}): CommonOptions {
  const deadlineMs = options.deadlineMs ?? RESOLVER_DEFAULTS.deadlineMs;
  if (!Number.isFinite(deadlineMs) || deadlineMs <= 0 || deadlineMs > 2_147_483_647) {
    throw new ResolverConfigError(`deadline must be a positive number of milliseconds, got ${String(deadlineMs)}`);
  }
  const maxBatch = options.maxBatch ?? RESOLVER_DEFAULTS.maxBatch;
  if (!Number.isInteger(maxBatch) || maxBatch < 1 || maxBatch > MAX_BATCH) {
    throw new ResolverConfigError(`max batch must be an integer from 1 to ${MAX_BATCH}, got ${String(maxBatch)}`);
  }
  const holdMs = options.holdMs ?? RESOLVER_DEFAULTS.holdMs;
  if (!Number.isFinite(holdMs) || holdMs < 0) {
    throw new ResolverConfigError(`batch hold must be a non-negative number of milliseconds, got ${String(holdMs)}`);
  }
  const fallback = options.fallback ?? DEFAULT_FALLBACK;
  const violation = replyRuleViolation(fallback);
  if (violation) throw new ResolverConfigError(`fallback answer is not a valid RFC 1413 reply: ${violation}`);
  return { deadlineMs, maxBatch, holdMs, fallback };
}

/**
 * The fallback LookupAnswer for one request.
 *
 * @example
 * fallbackAnswer(request, DEFAULT_FALLBACK)
 * // { v: 1, id: request.id, answer: { type: 'ERROR', error: 'UNKNOWN-ERROR' }, rule: '(fallback)' }
 */
export function fallbackAnswer(request: Pick<LookupRequest, 'id'>, fallback: IdentAnswer): LookupAnswer {
  return { v: WIRE_VERSION, id: request.id, answer: fallback, rule: FALLBACK_RULE };
}

/**
 * The route and JSON body for a group of requests: ROUTES.lookup for one, ROUTES.batch for several.
 *
 * @example
 * buildExchange([request]) // { path: '/v1/ident', body: '{"v":1,"id":...}' }
 */
export function buildExchange(requests: readonly LookupRequest[]): { path: string; body: string } {
  if (requests.length === 1) return { path: ROUTES.lookup, body: JSON.stringify(requests[0]) };
  return { path: ROUTES.batch, body: JSON.stringify({ v: WIRE_VERSION, requests }) };
}

function isRuleIssue(error: z.ZodError): boolean {
  // Token and reply-rule refinements (protocol/wire.ts AnswerSchema) raise "custom"
  // issues; every structural problem raises another code.
  return error.issues.length > 0 && error.issues.every((issue) => issue.code === 'custom');
}

/**
 * Turns the worker's reply to `requests` into one answer per request, in order,
 * or throws ResolverFailure naming what was wrong.
 *
 * @example
 * const answers = parseExchangeReply({ status: 200, text }, [request]); // [LookupAnswer]
 */
export function parseExchangeReply(reply: ExchangeReply, requests: readonly LookupRequest[]): LookupAnswer[] {
  if (reply.status < 200 || reply.status > 299) {
    const reason: FailureCause = reply.status === 401 || reply.status === 403 ? 'auth' : 'http_status';
    throw new ResolverFailure(reason, `worker answered HTTP ${reply.status}${describeWireError(reply.text)}`, {
      status: reply.status,
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(reply.text);
  } catch (error) {
    throw new ResolverFailure('invalid_json', `worker answer is not JSON: ${(error as Error).message}`);
  }
  const batch = requests.length > 1;
  const parsed = batch ? BatchAnswerSchema.safeParse(json) : LookupAnswerSchema.safeParse(json);
  if (!parsed.success) {
    const reason: FailureCause = isRuleIssue(parsed.error) ? 'invalid_answer' : 'schema_mismatch';
    const what =
      reason === 'invalid_answer'
        ? 'breaks an RFC 1413 reply rule'
        : `is not a ${batch ? 'BatchAnswer' : 'LookupAnswer'}`;
    throw new ResolverFailure(reason, `worker answer ${what}: ${describeIssues(parsed.error)}`);
  }
  const answers = batch ? (parsed.data as z.infer<typeof BatchAnswerSchema>).answers : [parsed.data as LookupAnswer];
  checkIds(answers, requests);
  return answers;
}

function checkIds(answers: readonly LookupAnswer[], requests: readonly LookupRequest[]): void {
  if (answers.length !== requests.length) {
    throw new ResolverFailure('id_mismatch', `worker sent ${answers.length} answers for ${requests.length} requests`);
  }
  for (let i = 0; i < answers.length; i++) {
    const expected = requests[i]!.id;
    const received = String(answers[i]!.id);
    if (received !== expected) {
      throw new ResolverFailure(
        'id_mismatch',
        `answer ${i} has id "${received.slice(0, 64)}" but request ${i} has id "${expected}"`,
      );
    }
  }
}

/**
 * Checks typed answers from an app in this process: one per request, with its
 * id, in order, each obeying the RFC 1413 reply rules. Their shape is the app's
 * own types' promise, so the wire schema is not run again. Throws ResolverFailure.
 *
 * @example
 * checkInProcessAnswers(await app.inProcess.lookup(requests), requests);
 */
export function checkInProcessAnswers(answers: readonly LookupAnswer[], requests: readonly LookupRequest[]): void {
  checkIds(answers, requests);
  for (let i = 0; i < answers.length; i++) {
    const violation = replyRuleViolation(answers[i]!.answer);
    if (violation)
      throw new ResolverFailure('invalid_answer', `app answer ${i} breaks an RFC 1413 reply rule: ${violation}`);
  }
}

function describeWireError(text: string): string {
  try {
    const parsed = WireErrorSchema.safeParse(JSON.parse(text));
    if (parsed.success) return `: ${parsed.data.error.code}: ${parsed.data.error.message.slice(0, 200)}`;
  } catch {
    // Not a WireError body; the status says enough.
  }
  return '';
}

/**
 * Reads a body (Node Readable or web ReadableStream, both async-iterable) as
 * UTF-8, giving up as soon as it exceeds `maxOctets` or `signal` aborts.
 *
 * @example
 * const text = await readCapped(response.body, MAX_BODY_OCTETS);
 */
export async function readCapped(
  body: AsyncIterable<Uint8Array> | null,
  maxOctets = MAX_BODY_OCTETS,
  signal?: AbortSignal,
): Promise<string> {
  if (!body) return '';
  const chunks: Uint8Array[] = [];
  let octets = 0;
  for await (const chunk of body) {
    signal?.throwIfAborted();
    octets += chunk.byteLength;
    // Leaving the loop early makes for-await call return(), which destroys the stream.
    if (octets > maxOctets) throw tooLarge(maxOctets);
    chunks.push(chunk);
  }
  if (chunks.length === 1)
    return Buffer.from(chunks[0]!.buffer, chunks[0]!.byteOffset, chunks[0]!.byteLength).toString('utf8');
  return Buffer.concat(chunks, octets).toString('utf8');
}

/** The ResolverFailure for a body over the cap. */
export function tooLarge(maxOctets = MAX_BODY_OCTETS): ResolverFailure {
  return new ResolverFailure('body_too_large', `worker answer is larger than ${maxOctets} octets`);
}

/**
 * Counts failures per episode and calls the listeners sparingly (see the module comment).
 *
 * @example
 * const reporter = new FailureReporter({ onFailure, onRecover });
 * reporter.failure('refused', 'connect ECONNREFUSED 127.0.0.1:8787', 3);
 * reporter.success();
 */
export class FailureReporter {
  #failing = false;
  #episodeStart = 0;
  #episodeFailures = 0;
  #unreported = 0;
  #lastReportAt = 0;
  readonly #onFailure: FailureListener | undefined;
  readonly #onRecover: RecoveryListener | undefined;
  readonly #intervalMs: number;

  constructor(options: { onFailure?: FailureListener; onRecover?: RecoveryListener; reportIntervalMs?: number }) {
    this.#onFailure = options.onFailure;
    this.#onRecover = options.onRecover;
    this.#intervalMs = options.reportIntervalMs ?? RESOLVER_DEFAULTS.reportIntervalMs;
  }

  failure(cause: FailureCause, detail: string, count: number): void {
    const now = performance.now();
    if (!this.#failing) {
      this.#failing = true;
      this.#episodeStart = now;
      this.#episodeFailures = count;
      this.#unreported = 0;
      this.#lastReportAt = now;
      this.#emit(cause, detail, count);
      return;
    }
    this.#episodeFailures += count;
    this.#unreported += count;
    if (now - this.#lastReportAt >= this.#intervalMs) {
      const unreported = this.#unreported;
      this.#unreported = 0;
      this.#lastReportAt = now;
      this.#emit(cause, detail, unreported);
    }
  }

  success(): void {
    if (!this.#failing) return;
    this.#failing = false;
    const failures = this.#episodeFailures;
    this.#episodeFailures = 0;
    this.#unreported = 0;
    try {
      this.#onRecover?.(failures, performance.now() - this.#episodeStart);
    } catch {
      // A listener's bug must not turn into a rejected resolve().
    }
  }

  #emit(cause: FailureCause, detail: string, count: number): void {
    try {
      this.#onFailure?.(cause, detail, count);
    } catch {
      // A listener's bug must not turn into a rejected resolve().
    }
  }
}

interface Pending {
  readonly request: LookupRequest;
  readonly deadlineAt: number;
  readonly resolve: (answer: LookupAnswer) => void;
  done: boolean;
}

function defaultMapError(error: unknown): ResolverFailure {
  if (error instanceof ResolverFailure) return error;
  return new ResolverFailure('network', error instanceof Error ? error.message : String(error), { cause: error });
}

/**
 * The dispatcher both resolvers are built on: queue, micro-batching, deadline,
 * validation and failure reporting around one transport.
 *
 * @example
 * const resolver = createBatchingResolver({ exchange, deadlineMs: 300, concurrency: 4 });
 */
export function createBatchingResolver(options: BatchingResolverOptions): Resolver {
  const { deadlineMs, maxBatch, holdMs, fallback } = checkCommonOptions(options);
  const concurrency = options.concurrency ?? RESOLVER_DEFAULTS.connections;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new ResolverConfigError(`connections must be a positive integer, got ${String(concurrency)}`);
  }
  const { exchange, lookup, onBatch, onFallback } = options;
  if ((exchange === undefined) === (lookup === undefined)) {
    throw new ResolverConfigError('a resolver needs exactly one transport: exchange or lookup');
  }
  const mapError = options.mapError ?? defaultMapError;
  const reporter = new FailureReporter(options);

  const queue: Pending[] = [];
  const inFlight = new Set<{ batch: Pending[]; controller: AbortController | undefined }>();
  let flushScheduled = false;
  let queueTimer: NodeJS.Timeout | undefined;
  let queueTimerAt = Infinity;
  let holdTimer: NodeJS.Timeout | undefined;
  let closed = false;

  function settle(batch: readonly Pending[], answers: readonly LookupAnswer[] | undefined): number {
    let settled = 0;
    for (let i = 0; i < batch.length; i++) {
      const pending = batch[i]!;
      if (pending.done) continue;
      pending.done = true;
      settled++;
      pending.resolve(answers ? answers[i]! : fallbackAnswer(pending.request, fallback));
    }
    return settled;
  }

  function fail(batch: readonly Pending[], failure: ResolverFailure): void {
    const count = settle(batch, undefined);
    if (count === 0 || closed) return;
    try {
      onFallback?.(failure.reason, count);
    } catch {
      // A listener's bug must not turn into a rejected resolve().
    }
    reporter.failure(failure.reason, failure.message, count);
  }

  function scheduleFlush(): void {
    if (flushScheduled || closed) return;
    flushScheduled = true;
    setImmediate(flush);
  }

  function armQueueTimer(): void {
    const head = queue[0];
    if (!head) {
      if (queueTimer) clearTimeout(queueTimer);
      queueTimer = undefined;
      queueTimerAt = Infinity;
      return;
    }
    if (queueTimer && queueTimerAt <= head.deadlineAt) return;
    if (queueTimer) clearTimeout(queueTimer);
    queueTimerAt = head.deadlineAt;
    queueTimer = setTimeout(expireQueued, Math.max(0, head.deadlineAt - performance.now()));
  }

  function expireQueued(): void {
    queueTimer = undefined;
    queueTimerAt = Infinity;
    // A timer may fire a fraction of a millisecond early; 1 ms of slack avoids re-arming for nothing.
    const now = performance.now() + 1;
    let expired = 0;
    while (expired < queue.length && queue[expired]!.deadlineAt <= now) expired++;
    if (expired > 0) {
      const batch = queue.splice(0, expired);
      fail(
        batch,
        new ResolverFailure(
          'timeout',
          `queued for ${deadlineMs} ms: all ${concurrency} exchanges with the worker were busy`,
        ),
      );
    }
    armQueueTimer();
  }

  function flush(): void {
    flushScheduled = false;
    while (queue.length > 0 && inFlight.size < concurrency && !closed) {
      if (inFlight.size > 0 && queue.length < maxBatch) {
        // Batch first: a partial batch waits for the exchange in flight, up to holdMs.
        const heldFor = performance.now() - (queue[0]!.deadlineAt - deadlineMs);
        if (heldFor < holdMs) {
          holdTimer ??= setTimeout(() => {
            holdTimer = undefined;
            flush();
          }, holdMs - heldFor);
          break;
        }
      }
      const batch = queue.splice(0, maxBatch);
      void send(batch);
    }
    if (queue.length === 0 && holdTimer) {
      clearTimeout(holdTimer);
      holdTimer = undefined;
    }
    armQueueTimer();
  }

  /**
   * Requests are not checked against the schema on the hot path (the gateway
   * builds them from typed values). When the worker rejects an exchange as a bad
   * request, the culprits are found here: they get the fallback with
   * 'invalid_request', and the others go back to the front of the queue so one
   * bad request cannot fail a whole batch. Returns false when every request is
   * valid (the 400 is then the worker's problem).
   */
  function retryWithoutInvalid(batch: Pending[]): boolean {
    const invalid: Pending[] = [];
    const valid: Pending[] = [];
    let detail = '';
    for (const pending of batch) {
      if (pending.done) continue;
      const checked = LookupRequestSchema.safeParse(pending.request);
      if (checked.success) valid.push(pending);
      else {
        invalid.push(pending);
        detail ||= `request ${JSON.stringify(String(pending.request?.id).slice(0, 64))} breaks the wire schema: ${describeIssues(checked.error)}`;
      }
    }
    if (invalid.length === 0) return false;
    fail(invalid, new ResolverFailure('invalid_request', detail));
    if (valid.length > 0) {
      queue.unshift(...valid);
      armQueueTimer();
      scheduleFlush();
    }
    return true;
  }

  /** One exchange with the worker (or one call of the in-process app) for these requests. */
  async function ask(
    requests: readonly LookupRequest[],
    signal: AbortSignal | undefined,
  ): Promise<readonly LookupAnswer[]> {
    if (lookup) {
      const answers = await lookup(requests);
      checkInProcessAnswers(answers, requests);
      return answers;
    }
    const { path, body } = buildExchange(requests);
    return parseExchangeReply(await exchange!(path, body, signal!), requests);
  }

  async function send(batch: Pending[]): Promise<void> {
    // Only a transport over a connection can be interrupted; in-process calls just get ignored when late.
    const controller = exchange ? new AbortController() : undefined;
    const slot = { batch, controller };
    inFlight.add(slot);
    const startedAt = performance.now();
    const release = (): void => {
      if (inFlight.delete(slot) && queue.length > 0) scheduleFlush();
    };
    let expired: ResolverFailure | undefined;
    // The exchange is cut at the deadline of its oldest query (the first: the queue is FIFO).
    const timer = setTimeout(
      () => {
        expired = new ResolverFailure('timeout', `no answer from the worker within ${deadlineMs} ms`);
        fail(batch, expired);
        controller?.abort(expired);
        release();
      },
      Math.max(0, batch[0]!.deadlineAt - startedAt),
    );
    try {
      const answers = await ask(
        batch.map((pending) => pending.request),
        controller?.signal,
      );
      if (settle(batch, answers) > 0) {
        reporter.success();
        onBatch?.(batch.length, performance.now() - startedAt);
      }
    } catch (error) {
      const failure = expired ?? mapError(error);
      if (expired === undefined && failure.status === 400 && retryWithoutInvalid(batch)) return;
      fail(batch, failure);
    } finally {
      clearTimeout(timer);
      release();
    }
  }

  const lookupNow = options.lookupNow;
  return {
    // Anything unusual here (no policy at hand, an app fault, an answer breaking a
    // rule) goes the asynchronous way, which reports it and answers the fallback.
    resolveNow: lookupNow
      ? (request: LookupRequest): LookupAnswer | undefined => {
          if (closed) return undefined;
          let answers: readonly LookupAnswer[] | undefined;
          try {
            answers = lookupNow([request]);
            if (answers === undefined) return undefined;
            checkInProcessAnswers(answers, [request]);
          } catch {
            return undefined;
          }
          // Not a request to the worker: onBatch (the upstream request metrics) is not told.
          reporter.success();
          return answers[0];
        }
      : undefined,

    resolve(request: LookupRequest): Promise<LookupAnswer> {
      if (closed) return Promise.resolve(fallbackAnswer(request, fallback));
      return new Promise<LookupAnswer>((resolve) => {
        queue.push({ request, deadlineAt: performance.now() + deadlineMs, resolve, done: false });
        if (queue.length === 1) armQueueTimer();
        scheduleFlush();
      });
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      if (queueTimer) clearTimeout(queueTimer);
      queueTimer = undefined;
      if (holdTimer) clearTimeout(holdTimer);
      holdTimer = undefined;
      const closing = new ResolverFailure('timeout', 'resolver closed');
      settle(queue.splice(0, queue.length), undefined);
      for (const { batch, controller } of inFlight) {
        settle(batch, undefined);
        controller?.abort(closing);
      }
      await options.closeTransport?.();
    },
  };
}
