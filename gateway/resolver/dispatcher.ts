/**
 * The dispatcher both resolvers are built on: a FIFO queue, micro-batching ("batch first, then parallel"), the
 * per-query deadline and failure reporting around one PolicyTransport. The rules are in docs/wire.md.
 */
import { replyRuleViolation, type IdentAnswer } from '../../protocol/reply.js';
import { LookupRequestSchema, MAX_BATCH, type LookupAnswer, type LookupRequest } from '../../protocol/wire.js';
import { describeIssues } from '../../protocol/issues.js';
import { FailureReporter } from './failures.js';
import type { LastGoodAnswerer } from './last-good.js';
import {
  DEFAULT_FALLBACK,
  RESOLVER_DEFAULTS,
  ResolverConfigError,
  ResolverFailure,
  type PolicyTransport,
  type Resolver,
  type SharedResolverOptions,
  type StaleListener,
} from './types.js';
import { fallbackAnswer } from './wire.js';

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

export interface DispatcherOptions extends SharedResolverOptions {
  /** Exchanges in flight at once. */
  concurrency?: number;
  /** Answers what the transport failed to, before the fallback does (docs/wire.md "Last-good policy"). */
  lastGood?: LastGoodAnswerer;
  onStale?: StaleListener;
}

interface Pending {
  readonly request: LookupRequest;
  readonly deadlineAt: number;
  readonly resolve: (answer: LookupAnswer) => void;
  done: boolean;
}

interface Slot {
  readonly batch: Pending[];
  readonly controller: AbortController | undefined;
}

/**
 * A Resolver over one transport: queries queue, go in batches of up to `maxBatch`, at most `concurrency` at once,
 * and each is answered within `deadlineMs` of resolve(), with the fallback when the transport fails.
 *
 * @example
 * const resolver = new BatchingDispatcher(exchangeTransport(exchange, mapHttpError), { deadlineMs: 300, concurrency: 4 });
 * const { answer, rule } = await resolver.resolve(request);
 */
export class BatchingDispatcher implements Resolver {
  readonly #transport: PolicyTransport;
  readonly #deadlineMs: number;
  readonly #maxBatch: number;
  readonly #holdMs: number;
  readonly #fallback: IdentAnswer;
  readonly #concurrency: number;
  readonly #onBatch: DispatcherOptions['onBatch'];
  readonly #onFallback: DispatcherOptions['onFallback'];
  readonly #lastGood: LastGoodAnswerer | undefined;
  readonly #onStale: StaleListener | undefined;
  readonly #reporter: FailureReporter;
  readonly #queue: Pending[] = [];
  readonly #inFlight = new Set<Slot>();
  #flushScheduled = false;
  #queueTimer: NodeJS.Timeout | undefined;
  #queueTimerAt = Infinity;
  #holdTimer: NodeJS.Timeout | undefined;
  #closed = false;
  /** The answer at once when the transport can decide without waiting (see Resolver.resolveNow). */
  readonly resolveNow: ((request: LookupRequest) => LookupAnswer | undefined) | undefined;

  constructor(transport: PolicyTransport, options: DispatcherOptions = {}) {
    const { deadlineMs, maxBatch, holdMs, fallback } = checkCommonOptions(options);
    const concurrency = options.concurrency ?? RESOLVER_DEFAULTS.connections;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new ResolverConfigError(`connections must be a positive integer, got ${String(concurrency)}`);
    }
    this.#transport = transport;
    this.#deadlineMs = deadlineMs;
    this.#maxBatch = maxBatch;
    this.#holdMs = holdMs;
    this.#fallback = fallback;
    this.#concurrency = concurrency;
    this.#onBatch = options.onBatch;
    this.#onFallback = options.onFallback;
    this.#lastGood = options.lastGood;
    this.#onStale = options.onStale;
    this.#reporter = new FailureReporter(options);
    this.resolveNow = transport.askNow ? (request) => this.#resolveNow(request) : undefined;
  }

  resolve(request: LookupRequest): Promise<LookupAnswer> {
    if (this.#closed) return Promise.resolve(fallbackAnswer(request, this.#fallback));
    return new Promise<LookupAnswer>((resolve) => {
      this.#queue.push({ request, deadlineAt: performance.now() + this.#deadlineMs, resolve, done: false });
      if (this.#queue.length === 1) this.#armQueueTimer();
      this.#scheduleFlush();
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#queueTimer) clearTimeout(this.#queueTimer);
    this.#queueTimer = undefined;
    if (this.#holdTimer) clearTimeout(this.#holdTimer);
    this.#holdTimer = undefined;
    const closing = new ResolverFailure('timeout', 'resolver closed');
    this.#settle(this.#queue.splice(0, this.#queue.length), undefined);
    for (const { batch, controller } of this.#inFlight) {
      this.#settle(batch, undefined);
      controller?.abort(closing);
    }
    await this.#transport.close?.();
  }

  // Anything unusual here (no policy at hand, an app fault, an answer breaking a
  // rule) goes the asynchronous way, which reports it and answers the fallback.
  #resolveNow(request: LookupRequest): LookupAnswer | undefined {
    if (this.#closed) return undefined;
    let answers: readonly LookupAnswer[] | undefined;
    try {
      answers = this.#transport.askNow!([request]);
      if (answers === undefined) return undefined;
    } catch {
      return undefined;
    }
    // Not a request to the worker: onBatch (the upstream request metrics) is not told.
    this.#reporter.success();
    return answers[0];
  }

  #settle(batch: readonly Pending[], answers: readonly LookupAnswer[] | undefined): number {
    let settled = 0;
    for (let i = 0; i < batch.length; i++) {
      const pending = batch[i]!;
      if (pending.done) continue;
      pending.done = true;
      settled++;
      pending.resolve(answers ? answers[i]! : fallbackAnswer(pending.request, this.#fallback));
    }
    return settled;
  }

  #fail(batch: readonly Pending[], failure: ResolverFailure): void {
    // A request the gateway built wrong is not the worker's failure: no policy would answer it.
    const lastGood = failure.reason === 'invalid_request' || this.#closed ? undefined : this.#lastGood;
    let fallbacks = 0;
    let stale = 0;
    for (const pending of batch) {
      if (pending.done) continue;
      pending.done = true;
      let answer: LookupAnswer | undefined;
      try {
        answer = lastGood?.answer(pending.request);
      } catch {
        // A bug there must not leave the query without the fallback.
      }
      if (answer) stale++;
      else fallbacks++;
      pending.resolve(answer ?? fallbackAnswer(pending.request, this.#fallback));
    }
    if (fallbacks + stale === 0 || this.#closed) return;
    try {
      if (fallbacks > 0) this.#onFallback?.(failure.reason, fallbacks);
      if (stale > 0) this.#onStale?.(failure.reason, stale);
    } catch {
      // A listener's bug must not turn into a rejected resolve().
    }
    this.#reporter.failure(failure.reason, failure.message, fallbacks + stale);
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#closed) return;
    this.#flushScheduled = true;
    setImmediate(this.#flush);
  }

  #armQueueTimer(): void {
    const head = this.#queue[0];
    if (!head) {
      if (this.#queueTimer) clearTimeout(this.#queueTimer);
      this.#queueTimer = undefined;
      this.#queueTimerAt = Infinity;
      return;
    }
    if (this.#queueTimer && this.#queueTimerAt <= head.deadlineAt) return;
    if (this.#queueTimer) clearTimeout(this.#queueTimer);
    this.#queueTimerAt = head.deadlineAt;
    this.#queueTimer = setTimeout(this.#expireQueued, Math.max(0, head.deadlineAt - performance.now()));
  }

  readonly #expireQueued = (): void => {
    this.#queueTimer = undefined;
    this.#queueTimerAt = Infinity;
    // A timer may fire a fraction of a millisecond early; 1 ms of slack avoids re-arming for nothing.
    const now = performance.now() + 1;
    const queue = this.#queue;
    let expired = 0;
    while (expired < queue.length && queue[expired]!.deadlineAt <= now) expired++;
    if (expired > 0) {
      const batch = queue.splice(0, expired);
      this.#fail(
        batch,
        new ResolverFailure(
          'timeout',
          `queued for ${this.#deadlineMs} ms: all ${this.#concurrency} exchanges with the worker were busy`,
        ),
      );
    }
    this.#armQueueTimer();
  };

  readonly #flush = (): void => {
    this.#flushScheduled = false;
    const queue = this.#queue;
    while (queue.length > 0 && this.#inFlight.size < this.#concurrency && !this.#closed) {
      if (this.#inFlight.size > 0 && queue.length < this.#maxBatch) {
        // Batch first: a partial batch waits for the exchange in flight, up to holdMs.
        const heldFor = performance.now() - (queue[0]!.deadlineAt - this.#deadlineMs);
        if (heldFor < this.#holdMs) {
          this.#holdTimer ??= setTimeout(() => {
            this.#holdTimer = undefined;
            this.#flush();
          }, this.#holdMs - heldFor);
          break;
        }
      }
      const batch = queue.splice(0, this.#maxBatch);
      void this.#send(batch);
    }
    if (queue.length === 0 && this.#holdTimer) {
      clearTimeout(this.#holdTimer);
      this.#holdTimer = undefined;
    }
    this.#armQueueTimer();
  };

  /**
   * Requests are not checked against the schema on the hot path (the gateway
   * builds them from typed values). When the worker rejects an exchange as a bad
   * request, the culprits are found here: they get the fallback with
   * 'invalid_request', and the others go back to the front of the queue so one
   * bad request cannot fail a whole batch. Returns false when every request is
   * valid (the 400 is then the worker's problem).
   */
  #retryWithoutInvalid(batch: Pending[]): boolean {
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
    this.#fail(invalid, new ResolverFailure('invalid_request', detail));
    if (valid.length > 0) {
      this.#queue.unshift(...valid);
      this.#armQueueTimer();
      this.#scheduleFlush();
    }
    return true;
  }

  /** One exchange with the worker (or one call of the in-process app) for these queries. */
  async #send(batch: Pending[]): Promise<void> {
    // Only a transport over a connection can be interrupted; in-process calls just get ignored when late.
    const controller = this.#transport.abortable ? new AbortController() : undefined;
    const slot: Slot = { batch, controller };
    this.#inFlight.add(slot);
    const startedAt = performance.now();
    const release = (): void => {
      if (this.#inFlight.delete(slot) && this.#queue.length > 0) this.#scheduleFlush();
    };
    let expired: ResolverFailure | undefined;
    // The exchange is cut at the deadline of its oldest query (the first: the queue is FIFO).
    const timer = setTimeout(
      () => {
        expired = new ResolverFailure('timeout', `no answer from the worker within ${this.#deadlineMs} ms`);
        this.#fail(batch, expired);
        controller?.abort(expired);
        release();
      },
      Math.max(0, batch[0]!.deadlineAt - startedAt),
    );
    try {
      const answers = await this.#transport.ask(
        batch.map((pending) => pending.request),
        controller?.signal,
      );
      if (this.#settle(batch, answers) > 0) {
        this.#reporter.success();
        this.#onBatch?.(batch.length, performance.now() - startedAt);
      }
    } catch (error) {
      const failure = expired ?? this.#transport.mapError(error);
      if (expired === undefined && failure.status === 400 && this.#retryWithoutInvalid(batch)) return;
      this.#fail(batch, failure);
    } finally {
      clearTimeout(timer);
      release();
    }
  }
}
