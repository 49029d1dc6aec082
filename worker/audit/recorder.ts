/**
 * Writes audit records without ever holding up an answer: `record()` only
 * queues (a bounded queue) and returns; one writer drains the queue in
 * batches, one write in flight at a time. A failed write is retried with
 * back-off, then dropped; a full queue drops what does not fit. Every record
 * ends counted as written or dropped (`stats()`, `onCount` for metrics), and
 * drops are reported by one throttled warning per interval. On Workers the
 * promise `record()` returns goes to ctx.waitUntil, so the write runs after
 * the response (flushDelayMs 0: each request's records are one batch); on
 * Node a short delay gathers many requests into one write.
 *
 * @example
 * const recorder = createAuditRecorder({ store, log });
 * c.executionCtx.waitUntil(recorder.record(records));
 * recorder.stats(); // { written: 64, dropped: 0, retried: 0, queued: 0 }
 */
import type { AuditRecord, AuditStore } from '../stores/audit.js';

export type DropReason = 'queue_full' | 'write_failed';

export interface AuditRecorderOptions {
  store: Pick<AuditStore, 'writeDecisions'>;
  /** Wait this long after the first queued record before writing, to gather more (default 50 ms; 0: at once). */
  flushDelayMs?: number;
  /** Records per write at most (default 5000). */
  maxBatch?: number;
  /** Records waiting at most; beyond, new ones are dropped (default 100 000). */
  maxQueued?: number;
  /** Attempts per batch before it is dropped (default 3). */
  attempts?: number;
  /** Wait before attempt n+1 (default 200 ms × 4^(n-1)). */
  retryDelayMs?: (attempt: number) => number;
  /** At most one warning per this interval (default 10 000 ms). */
  warnIntervalMs?: number;
  log?: (entry: Record<string, unknown>) => void;
  onCount?: (outcome: 'written' | DropReason | 'retried', count: number) => void;
  now?: () => number;
}

export interface AuditStats {
  written: number;
  dropped: number;
  droppedQueueFull: number;
  droppedWriteFailed: number;
  retried: number;
  queued: number;
}

export interface AuditRecorder {
  /** Queues records; the promise settles (never rejects) when the writer is next idle: these and all earlier ones written or dropped. */
  record(records: readonly AuditRecord[]): Promise<void>;
  /** Writes what is queued now; resolves when the queue is empty. */
  flush(): Promise<void>;
  stats(): AuditStats;
  /** Flushes, then stops taking records. */
  close(): Promise<void>;
}

export const AUDIT_RECORDER_DEFAULTS = {
  flushDelayMs: 50,
  maxBatch: 5_000,
  maxQueued: 100_000,
  attempts: 3,
  warnIntervalMs: 10_000,
} as const;

/**
 * @example
 * const recorder = createAuditRecorder({ store: createAuditStore(db), flushDelayMs: 0 });
 */
export function createAuditRecorder(options: AuditRecorderOptions): AuditRecorder {
  const flushDelayMs = options.flushDelayMs ?? AUDIT_RECORDER_DEFAULTS.flushDelayMs;
  const maxBatch = options.maxBatch ?? AUDIT_RECORDER_DEFAULTS.maxBatch;
  const maxQueued = options.maxQueued ?? AUDIT_RECORDER_DEFAULTS.maxQueued;
  const attempts = options.attempts ?? AUDIT_RECORDER_DEFAULTS.attempts;
  const retryDelayMs = options.retryDelayMs ?? ((attempt: number) => 200 * 4 ** (attempt - 1));
  const warnIntervalMs = options.warnIntervalMs ?? AUDIT_RECORDER_DEFAULTS.warnIntervalMs;
  const log = options.log ?? (() => {});
  const onCount = options.onCount ?? (() => {});
  const now = options.now ?? Date.now;

  let queue: AuditRecord[] = [];
  const stats: AuditStats = {
    written: 0,
    dropped: 0,
    droppedQueueFull: 0,
    droppedWriteFailed: 0,
    retried: 0,
    queued: 0,
  };
  let draining: Promise<void> | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;

  // Drops since the last warning, reported together.
  let unreported = { queue_full: 0, write_failed: 0 };
  let lastError: string | undefined;
  let warnedAt = -Infinity;
  function drop(reason: DropReason, count: number, error?: unknown) {
    stats.dropped += count;
    if (reason === 'queue_full') stats.droppedQueueFull += count;
    else stats.droppedWriteFailed += count;
    onCount(reason, count);
    unreported[reason] += count;
    if (error !== undefined) lastError = error instanceof Error ? error.message : String(error);
    const at = now();
    if (at - warnedAt < warnIntervalMs) return;
    warnedAt = at;
    log({
      msg: 'audit_records_dropped',
      queueFull: unreported.queue_full,
      writeFailed: unreported.write_failed,
      error: lastError,
      hint: 'the answers went out; these decisions are missing from the audit trail',
    });
    unreported = { queue_full: 0, write_failed: 0 };
  }

  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      (t as { unref?: () => void }).unref?.();
    });

  async function writeBatch(batch: AuditRecord[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await options.store.writeDecisions(batch);
        stats.written += batch.length;
        onCount('written', batch.length);
        return;
      } catch (error) {
        if (attempt >= attempts) return drop('write_failed', batch.length, error);
        stats.retried += batch.length;
        onCount('retried', batch.length);
        await pause(retryDelayMs(attempt));
      }
    }
  }

  async function drain(): Promise<void> {
    while (queue.length > 0) {
      const batch = queue.length <= maxBatch ? queue : queue.slice(0, maxBatch);
      queue = queue.length <= maxBatch ? [] : queue.slice(maxBatch);
      stats.queued = queue.length;
      await writeBatch(batch);
    }
  }

  // One promise per busy spell, shared by every caller: record() is on the answer path and allocates nothing per call.
  let idle: { promise: Promise<void>; resolve: () => void } | undefined;
  const busy = () => queue.length > 0 || draining !== undefined || timer !== undefined;
  function whenIdle(): Promise<void> {
    if (!busy()) return Promise.resolve();
    if (idle === undefined) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      idle = { promise, resolve };
    }
    return idle.promise;
  }
  function settleIfIdle() {
    if (busy() || idle === undefined) return;
    const settled = idle;
    idle = undefined;
    settled.resolve();
  }

  /** Starts the writer unless it runs (it takes whatever is queued while it runs). */
  function startDrain() {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    if (draining) return;
    draining = drain().finally(() => {
      draining = undefined;
      if (queue.length > 0) startDrain();
      else settleIfIdle();
    });
  }

  function schedule() {
    if (draining) return;
    if (flushDelayMs <= 0 || queue.length >= maxBatch) return startDrain();
    if (timer === undefined) {
      timer = setTimeout(startDrain, flushDelayMs);
      (timer as { unref?: () => void }).unref?.();
    }
  }

  return {
    record(records) {
      if (records.length === 0) return Promise.resolve();
      if (closed) {
        drop('write_failed', records.length, new Error('the audit recorder is closed'));
        return Promise.resolve();
      }
      const room = maxQueued - queue.length;
      if (room < records.length) {
        if (room > 0) for (let i = 0; i < room; i++) queue.push(records[i]!);
        drop('queue_full', records.length - Math.max(0, room));
      } else {
        for (const record of records) queue.push(record);
      }
      stats.queued = queue.length;
      schedule();
      return whenIdle();
    },
    flush() {
      if (queue.length > 0 || timer !== undefined) startDrain();
      return whenIdle();
    },
    stats: () => ({ ...stats }),
    async close() {
      await this.flush();
      closed = true;
    },
  };
}
