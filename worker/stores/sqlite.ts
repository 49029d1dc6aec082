/**
 * SqlDatabase over a SQLite file (`--audit FILE` on the Node worker and the
 * embedded worker), through libsql in a thread of its own
 * (stores/sqlite-thread.mjs): the driver's calls block, and a slow or locked
 * file must not block the event loop that answers queries. Opening applies the
 * migrations of worker/migrations/ (the ones D1 gets from `wrangler d1
 * migrations apply`) and records them in d1_migrations as wrangler does, so a
 * file and a D1 database have the same schema. docs/audit.md says why libsql.
 *
 * @example
 * const db = await openSqliteDatabase('/var/lib/identgate/audit.db');
 * const store = createAuditStore(db);
 * await db.close();
 */
import { existsSync } from 'node:fs';
import { dirname, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { DatabaseError, type SqlDatabase } from './sql.js';

export interface SqliteOptions {
  /** How long a statement waits for another connection's lock before failing with SQLITE_BUSY. Default 5000 ms. */
  busyTimeoutMs?: number;
}

export interface SqliteDatabase extends SqlDatabase {
  readonly path: string;
  /** Migrations this open applied (file names), in order; empty when the file was up to date. */
  readonly applied: readonly string[];
}

type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; message: string; code: string };

/** Where the migrations are, next to this module in the sources and in dist/ alike (the build copies them). */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../migrations/', import.meta.url));

/**
 * Opens (creating when absent) and migrates a SQLite file. Rejects with a
 * one-line DatabaseError when the file cannot be opened or migrated.
 *
 * @example
 * const db = await openSqliteDatabase(':memory:');
 */
export async function openSqliteDatabase(path: string, options: SqliteOptions = {}): Promise<SqliteDatabase> {
  // SQLite's own word for this is "unable to open ... 14": name what is wrong instead.
  if (path !== ':memory:' && !existsSync(dirname(resolvePath(path))))
    throw new DatabaseError(`cannot open the audit database ${path}: no directory ${dirname(resolvePath(path))}`);
  const thread = new Worker(new URL('./sqlite-thread.mjs', import.meta.url), {
    workerData: { path, migrationsDir: MIGRATIONS_DIR, busyTimeoutMs: options.busyTimeoutMs ?? 5_000 },
    // Not the flags this process was started with (--input-type, loaders): the thread runs one plain module.
    execArgv: [],
  });
  const pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  let nextId = 1;
  let exited: Error | undefined;

  const settle = (message: Reply) => {
    const waiter = pending.get(message.id);
    if (!waiter) return;
    pending.delete(message.id);
    if (pending.size === 0) thread.unref();
    if (message.ok) waiter.resolve(message.value);
    else waiter.reject(new DatabaseError(`${path}: ${message.message}`, message.code));
  };
  thread.on('message', settle);
  thread.on('error', (error) => {
    exited = new DatabaseError(`${path}: the database thread failed: ${error.message}`, 'unknown', {
      cause: error,
    });
  });
  thread.on('exit', () => {
    exited ??= new DatabaseError(`${path}: the database is closed`, 'closed');
    for (const waiter of pending.values()) waiter.reject(exited);
    pending.clear();
  });

  function call<T>(message: Record<string, unknown>, id = nextId++): Promise<T> {
    if (exited) return Promise.reject(exited);
    return new Promise<T>((resolve, reject) => {
      // Referenced while an answer is awaited (a CLI waiting on a read stays alive), else not.
      if (pending.size === 0) thread.ref();
      pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      if (id !== 0) thread.postMessage({ ...message, id });
    });
  }

  let applied: string[];
  try {
    applied = await call<string[]>({}, 0);
  } catch (error) {
    await thread.terminate();
    const reason = error instanceof Error ? error.message.replace(`${path}: `, '') : String(error);
    throw new DatabaseError(`cannot open the audit database ${path}: ${reason}`, 'unknown', { cause: error });
  }
  // An idle thread never keeps the process alive: close() is how it ends on purpose.

  let closing: Promise<void> | undefined;
  return {
    path,
    applied,
    write: (statements) => call<number[]>({ op: 'write', statements }),
    read: <Row>(statement: { sql: string; params: readonly unknown[] }) => call<Row[]>({ op: 'read', statement }),
    close() {
      closing ??= call<void>({ op: 'close' }).then(
        () => undefined,
        () => undefined,
      );
      return closing;
    },
  };
}
