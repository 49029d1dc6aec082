/**
 * Failure reports once per episode instead of once per query: the first failure at once, then at most one report
 * per interval while failures continue, and one recovery with the episode's total (docs/wire.md).
 */
import {
  RESOLVER_DEFAULTS,
  ResolverFailure,
  type FailureCause,
  type FailureListener,
  type RecoveryListener,
} from './types.js';

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

/** Any error as a ResolverFailure; one that is not already one is a network failure. */
export function defaultMapError(error: unknown): ResolverFailure {
  if (error instanceof ResolverFailure) return error;
  return new ResolverFailure('network', error instanceof Error ? error.message : String(error), { cause: error });
}
