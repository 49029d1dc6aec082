import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'libsql';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createAuditRecorder } from '../../../worker/audit/recorder.js';
import { createAuditStore, type AuditStore } from '../../../worker/stores/audit.js';
import { openSqliteDatabase, type SqliteDatabase } from '../../../worker/stores/sqlite.js';
import { sql } from '../../../worker/stores/sql.js';
import { T0, auditRecord } from './records.js';

let dir: string;
let db: SqliteDatabase;
let store: AuditStore;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'identgate-recorder-'));
  db = await openSqliteDatabase(join(dir, 'audit.db'), { busyTimeoutMs: 100 });
  store = createAuditStore(db);
});

afterEach(async () => {
  await db.close();
  rmSync(dir, { recursive: true, force: true });
});

const count = async () => (await db.read<{ n: number }>(sql('SELECT count(*) AS n FROM audit_records')))[0]!.n;

describe('the audit recorder', () => {
  it('writes every record of a burst from many requests, in a few writes', async () => {
    let writes = 0;
    const recorder = createAuditRecorder({
      store: { writeDecisions: (records) => (writes++, store.writeDecisions(records)) },
      flushDelayMs: 20,
    });
    const done: Promise<void>[] = [];
    for (let request = 0; request < 200; request++)
      done.push(
        recorder.record(
          Array.from({ length: 64 }, (_, i) => auditRecord({ at: T0 + request, requestId: `${request}-${i}` })),
        ),
      );
    await Promise.all(done);
    expect(await count()).toBe(12_800);
    expect(recorder.stats()).toMatchObject({ written: 12_800, dropped: 0, queued: 0 });
    expect(writes).toBeLessThanOrEqual(5);
  });

  it('writes at once with flushDelayMs 0, settling the promise a Workers request waits for after the write', async () => {
    const recorder = createAuditRecorder({ store, flushDelayMs: 0 });
    await recorder.record([auditRecord()]);
    expect(await count()).toBe(1);
  });

  it('drops records after the attempts fail, counts them and warns once per interval', async () => {
    // A database that refuses every record, as a full disk would.
    await db.write([
      sql(
        "CREATE TRIGGER refuse BEFORE INSERT ON audit_records BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END",
      ),
    ]);
    const warnings: Record<string, unknown>[] = [];
    const counted: Record<string, number> = {};
    const recorder = createAuditRecorder({
      store,
      flushDelayMs: 0,
      retryDelayMs: () => 1,
      log: (entry) => warnings.push(entry),
      onCount: (outcome, n) => (counted[outcome] = (counted[outcome] ?? 0) + n),
    });
    for (let i = 0; i < 5; i++) await recorder.record([auditRecord(), auditRecord()]);
    expect(recorder.stats()).toMatchObject({ written: 0, dropped: 10, droppedWriteFailed: 10, retried: 20 });
    expect(counted).toEqual({ retried: 20, write_failed: 10 });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ msg: 'audit_records_dropped', writeFailed: 2 });
    expect(String(warnings[0]!.error)).toContain('database or disk is full');
  });

  it('returns at once while another process holds the database locked, and writes once it lets go', async () => {
    const locker = new Database(db.path);
    locker.exec('PRAGMA busy_timeout = 0');
    locker.exec('BEGIN EXCLUSIVE');
    const recorder = createAuditRecorder({ store, flushDelayMs: 0, attempts: 50, retryDelayMs: () => 20 });
    const started = performance.now();
    const written = recorder.record([auditRecord()]);
    expect(performance.now() - started).toBeLessThan(5);
    // The first attempt waits out the busy timeout and fails: a retry is what writes it.
    await expect.poll(() => recorder.stats().retried, { timeout: 5_000 }).toBeGreaterThan(0);
    locker.exec('COMMIT');
    locker.close();
    await written;
    expect(recorder.stats()).toMatchObject({ written: 1, dropped: 0 });
    expect(await count()).toBe(1);
  });

  it('drops what does not fit in the queue while the database is stuck, and counts it', async () => {
    let release!: () => void;
    const stuck = new Promise<void>((resolve) => (release = resolve));
    const recorder = createAuditRecorder({
      store: { writeDecisions: async (records) => (await stuck, store.writeDecisions(records)) },
      flushDelayMs: 0,
      maxQueued: 100,
      warnIntervalMs: 60_000,
    });
    const first = recorder.record([auditRecord()]); // taken by the writer, which is stuck
    const rest = Array.from({ length: 30 }, () => recorder.record(Array.from({ length: 10 }, () => auditRecord())));
    expect(recorder.stats()).toMatchObject({ queued: 100, droppedQueueFull: 200 });
    release();
    await Promise.all([first, ...rest]);
    expect(recorder.stats()).toMatchObject({ written: 101, dropped: 200 });
  });
});
