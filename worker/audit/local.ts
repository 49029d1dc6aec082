/**
 * The audit database of the Node worker and the embedded worker (`--audit FILE`): the SQLite
 * file opened and migrated, the recorder (records from many requests gathered into one write),
 * the assignments loaded before the first decision and read again on a timer, and retention
 * pruned at start and every hour.
 *
 * @example
 * const audit = await openLocalAudit({ path: '/var/lib/identgate/audit.db', log });
 * const app = createApp({ store, secrets, audit });
 * await audit.close();
 */
import type { AuditDeps } from '../service.js';
import { openSqliteDatabase } from '../stores/sqlite.js';
import { createAuditStore } from '../stores/audit.js';
import { ASSIGNMENT_CACHE_TTL_MS, createAssignmentCache } from './assignments.js';
import { createAuditRecorder, type AuditRecorderOptions } from './recorder.js';
import { AUDIT_RETENTION_DAYS, pruneAudit } from './retention.js';

export interface LocalAuditOptions {
  path: string;
  /** Default 30. */
  retentionDays?: number;
  /** Default one hour. */
  pruneIntervalMs?: number;
  /** How often the assignments are read again (changes made elsewhere: another process on the file). Default 10 s. */
  assignmentsTtlMs?: number;
  log?: (entry: Record<string, unknown>) => void;
  onCount?: AuditRecorderOptions['onCount'];
  /** Passed to the recorder (tests and the bench tune the batching). */
  recorder?: Omit<AuditRecorderOptions, 'store' | 'log' | 'onCount'>;
  now?: () => number;
}

export interface LocalAudit extends AuditDeps {
  readonly path: string;
  /** Prunes now; resolves how many records went. */
  prune(): Promise<number>;
  /** Writes what is queued, stops the timers, closes the file. */
  close(): Promise<void>;
}

/**
 * Opens the audit file; rejects with a one-line DatabaseError when it cannot be opened or migrated.
 *
 * @example
 * const audit = await openLocalAudit({ path: 'audit.db', retentionDays: 90 });
 */
export async function openLocalAudit(options: LocalAuditOptions): Promise<LocalAudit> {
  const log = options.log ?? (() => {});
  const now = options.now ?? Date.now;
  const retentionDays = options.retentionDays ?? AUDIT_RETENTION_DAYS;
  const db = await openSqliteDatabase(options.path);
  if (db.applied.length > 0) log({ msg: 'audit_migrated', path: options.path, applied: db.applied });
  const store = createAuditStore(db);
  const recorder = createAuditRecorder({ ...options.recorder, store, log, onCount: options.onCount, now });
  const ttlMs = options.assignmentsTtlMs ?? ASSIGNMENT_CACHE_TTL_MS;
  const assignments = createAssignmentCache(store, { ttlMs, log, now });
  await assignments.refresh(true);

  const refresher = setInterval(() => void assignments.refresh(), ttlMs);
  refresher.unref();
  let pruning: Promise<number> = Promise.resolve(0);
  const prune = () => (pruning = pruning.then(() => pruneAudit(store, retentionDays, now(), log)));
  void prune();
  const pruner = setInterval(() => void prune(), options.pruneIntervalMs ?? 3_600_000);
  pruner.unref();

  let closing: Promise<void> | undefined;
  return {
    path: options.path,
    store,
    recorder,
    assignments,
    prune,
    close() {
      closing ??= (async () => {
        clearInterval(refresher);
        clearInterval(pruner);
        await pruning;
        await recorder.close();
        await db.close();
      })();
      return closing;
    },
  };
}
