// The thread that owns a SQLite file for stores/sqlite.ts. libsql's calls are
// synchronous: made here, a slow, locked or full disk stalls this thread and
// never the event loop that answers ident queries. On start it opens the file
// (WAL, busy timeout), applies the migrations in worker/migrations/ that the
// table d1_migrations does not list (the table wrangler keeps on D1), then
// answers { id, op: 'write' | 'read' | 'close' } messages one at a time with
// { id, ok, value } or { id, ok: false, message, code }. Plain JavaScript: the
// thread is started from the same place in the sources and in dist/.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'libsql';

const { path, migrationsDir, busyTimeoutMs } = workerData;

function reply(id, run) {
  try {
    parentPort.postMessage({ id, ok: true, value: run() });
  } catch (error) {
    parentPort.postMessage({
      id,
      ok: false,
      message: error?.message ?? String(error),
      code: error?.code ?? 'unknown',
    });
  }
}

let db;
const statements = new Map();
function prepared(sql) {
  let statement = statements.get(sql);
  if (statement === undefined) {
    statement = db.prepare(sql);
    statements.set(sql, statement);
  }
  return statement;
}

function inTransaction(run) {
  db.exec('BEGIN IMMEDIATE');
  try {
    const value = run();
    db.exec('COMMIT');
    return value;
  } catch (error) {
    if (db.inTransaction) db.exec('ROLLBACK');
    throw error;
  }
}

function migrate() {
  db.exec(
    'CREATE TABLE IF NOT EXISTS d1_migrations (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL)',
  );
  const files = readdirSync(migrationsDir)
    .filter((name) => name.endsWith('.sql'))
    .sort();
  const applied = [];
  for (const name of files) {
    // Another process may be migrating the same file: decide inside the write lock.
    inTransaction(() => {
      if (db.prepare('SELECT 1 FROM d1_migrations WHERE name = ?').get(name)) return;
      db.exec(readFileSync(join(migrationsDir, name), 'utf8'));
      db.prepare('INSERT INTO d1_migrations (name) VALUES (?)').run(name);
      applied.push(name);
    });
  }
  return applied;
}

// Answers before records: this thread yields the CPU to the event loop that answers queries
// (nice 10, Linux: setpriority on the thread's id). Where the CPU is free it costs nothing;
// where it is not, records wait in the queue (and are dropped and counted when it is full).
try {
  setPriority(Number(readlinkSync('/proc/thread-self').split('/').pop()), 10);
} catch {
  // not Linux, or not allowed: the thread keeps the process's priority
}

reply(0, () => {
  db = new Database(path);
  db.exec(`PRAGMA busy_timeout = ${Number(busyTimeoutMs)}`);
  db.exec('PRAGMA journal_mode = WAL');
  db.exec('PRAGMA synchronous = NORMAL');
  // Fewer, larger checkpoints and a bigger page cache: measured 1.5x the insert rate (docs/audit.md).
  db.exec('PRAGMA wal_autocheckpoint = 10000');
  db.exec('PRAGMA cache_size = -32768');
  return migrate();
});

// A plain single-row insert run for many rows is run as inserts of ROWS_PER_INSERT rows each: one statement
// step per 64 rows instead of per row (measured: docs/audit.md). Upserts and anything else run row by row.
const ROWS_PER_INSERT = 64;
const SINGLE_ROW_INSERT = /^INSERT INTO [a-z_]+ \([a-z_, ]+\) VALUES (\((?:\?, )*\?\))$/;

function runRows(sql, rows) {
  const single = SINGLE_ROW_INSERT.exec(sql);
  let changes = 0;
  let i = 0;
  if (single !== null && rows.length >= ROWS_PER_INSERT) {
    const many = prepared(`${sql}${`, ${single[1]}`.repeat(ROWS_PER_INSERT - 1)}`);
    const params = [];
    for (; i + ROWS_PER_INSERT <= rows.length; i += ROWS_PER_INSERT) {
      params.length = 0;
      for (let j = i; j < i + ROWS_PER_INSERT; j++) for (const value of rows[j]) params.push(value);
      changes += many.run(params).changes;
    }
  }
  const statement = prepared(sql);
  for (; i < rows.length; i++) changes += statement.run(rows[i]).changes;
  return changes;
}

parentPort.on('message', (message) => {
  switch (message.op) {
    case 'write':
      return reply(message.id, () =>
        inTransaction(() =>
          message.statements.map(({ sql, params, rows }) =>
            rows === undefined ? prepared(sql).run(...params).changes : runRows(sql, rows),
          ),
        ),
      );
    case 'read':
      return reply(message.id, () => prepared(message.statement.sql).all(...message.statement.params));
    case 'close':
      reply(message.id, () => db?.close());
      return parentPort.close();
  }
});
