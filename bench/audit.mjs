/**
 * What the audit trail costs (docs/audit.md), side by side: queries/s of the embedded path
 * (`identgate serve --owner-lookup on`) and the Node worker path (`serve --upstream` to
 * `identgate worker`), each without and with `--audit FILE`, in alternating rounds (fresh
 * processes per round; the median of the rounds), every answered decision checked to be in
 * the file after a graceful stop; then the recorder alone, writing decisions into a SQLite file
 * as fast as it takes them, checked for loss. Prints a table and the targets of the issue:
 * audit on costs under 10 % of throughput on both paths, and at least 5,000 decisions/s are
 * recorded without losing any. One gateway process each (--workers 1): the comparison is of
 * one process with and without the audit trail. Bounded: every pass has the load generator's
 * time limit, every server is stopped (killed if it must be) at the end.
 *
 * @example
 *   npm run build && node bench/audit.mjs                 # about 2 minutes
 *   node bench/audit.mjs --rounds 5 --duration 3 --records 500000
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildTools, holdConnection, runLoadgen } from './lib/loadgen.mjs';
import { freePort, startServer } from './lib/proc.mjs';
import { median } from './lib/report.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = join(root, 'dist', 'gateway', 'cli', 'main.js');
const usage =
  'usage: node bench/audit.mjs [--rounds 3] [--duration 3] [--conns 32] [--per-conn 100] [--records 200000]';

let values;
try {
  ({ values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '3' },
      duration: { type: 'string', default: '3' },
      conns: { type: 'string', default: '32' },
      'per-conn': { type: 'string', default: '100' },
      records: { type: 'string', default: '200000' },
      help: { type: 'boolean', default: false },
    },
  }));
} catch (error) {
  console.error(`bench/audit.mjs: ${error.message.split('\n')[0]}\n${usage}`);
  process.exit(2);
}
if (values.help) {
  console.log(usage);
  process.exit(0);
}
const options = {};
for (const name of ['rounds', 'duration', 'conns', 'per-conn', 'records']) {
  const value = Number(values[name]);
  if (!Number.isInteger(value) || value < 1) {
    console.error(`bench/audit.mjs: --${name} must be a whole number > 0\n${usage}`);
    process.exit(2);
  }
  options[name] = value;
}

const dir = mkdtempSync(join(tmpdir(), 'identgate-bench-audit-'));
const secretFile = join(dir, 'secret');
writeFileSync(secretFile, 'bench-audit-secret-0123456789abcdef\n');
const limits = ['--max-per-address', '20000', '--max-connections', '20000', '--workers', '1'];

const TICK_MS = 10; // USER_HZ is 100 on Linux

/** CPU ms of a process so far: all its threads, and its main (event loop) thread alone. */
function cpuMs(pid) {
  const ticks = (path) => {
    const text = readFileSync(path, 'latin1');
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  };
  try {
    const all = readdirSync(`/proc/${pid}/task`).reduce((sum, tid) => sum + ticks(`/proc/${pid}/task/${tid}/stat`), 0);
    return { all: all * TICK_MS, main: ticks(`/proc/${pid}/task/${pid}/stat`) * TICK_MS };
  } catch {
    return { all: 0, main: 0 };
  }
}

/** Sums a Prometheus counter's samples (all labels) whose name is `name`. */
function counter(text, name) {
  let sum = 0;
  for (const line of text.split('\n'))
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.split(' ').pop());
  return sum;
}

async function countRecords(path) {
  const { openSqliteDatabase } = await import(join(root, 'dist', 'worker', 'stores', 'sqlite.js'));
  const db = await openSqliteDatabase(path);
  try {
    return (await db.read({ sql: 'SELECT count(*) AS n FROM audit_records', params: [] }))[0].n;
  } finally {
    await db.close();
  }
}

/** One round of one path: fresh processes, warm-up, a measured pass; with audit, the file checked after a graceful stop. */
async function round(loadgen, path, audit, held, index) {
  const file = audit ? join(dir, `${path}-${index}.db`) : undefined;
  const auditArgs = file ? ['--audit', file] : [];
  const port = await freePort();
  const metricsPort = await freePort();
  const servers = [];
  try {
    if (path === 'node-worker') {
      const workerPort = await freePort();
      servers.push(
        await startServer({
          name: 'audit-worker',
          command: process.execPath,
          args: [
            cli,
            'worker',
            '--listen',
            `127.0.0.1:${workerPort}`,
            '--secret-file',
            secretFile,
            '--log-level',
            'warn',
            ...auditArgs,
          ],
          port: workerPort,
        }),
      );
      servers.push(
        await startServer({
          name: 'audit-gateway',
          command: process.execPath,
          args: [
            cli,
            'serve',
            '--listen',
            `127.0.0.1:${port}`,
            '--upstream',
            `http://127.0.0.1:${workerPort}`,
            '--secret-file',
            secretFile,
            '--gateway-name',
            'bench',
            '--owner-lookup',
            'on',
            '--metrics',
            `127.0.0.1:${metricsPort}`,
            ...limits,
          ],
          port,
        }),
      );
    } else {
      servers.push(
        await startServer({
          name: 'audit-embedded',
          command: process.execPath,
          args: [
            cli,
            'serve',
            '--listen',
            `127.0.0.1:${port}`,
            '--owner-lookup',
            'on',
            '--metrics',
            `127.0.0.1:${metricsPort}`,
            ...limits,
            ...auditArgs,
          ],
          port,
        }),
      );
    }
    const load = { port, query: held.query, conns: options.conns, perConn: options['per-conn'] };
    await runLoadgen(loadgen, { ...load, durationS: 1 });
    const before = servers.map((server) => cpuMs(server.pid));
    const result = await runLoadgen(loadgen, { ...load, durationS: options.duration });
    const after = servers.map((server) => cpuMs(server.pid));
    const spent = (key) => after.reduce((sum, cpu, i) => sum + cpu[key] - before[i][key], 0);
    const cpuAllUs = (spent('all') * 1000) / result.completed;
    const cpuMainUs = (spent('main') * 1000) / result.completed;
    // Queries still in flight when the load generator stopped are answered (and recorded) too.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    // What the policy decided: every answer but the fallbacks (a forwarded query the worker did not answer in time).
    const decided = counter(metrics, 'identgate_queries_total') - counter(metrics, 'identgate_upstream_failures_total');
    // Gateway first, then the worker: a graceful stop writes what is queued before the file closes.
    for (const server of servers.reverse()) await server.stop(10_000);
    servers.length = 0;
    const recorded = file ? await countRecords(file) : undefined;
    return {
      throughput: result.throughput,
      p99: result.latency_ms.p99,
      cpuAllUs,
      cpuMainUs,
      decided,
      recorded,
    };
  } finally {
    for (const server of servers) await server.stop();
  }
}

/** The recorder alone: `count` decisions offered in batches of 64, as fast as it writes them, into a fresh file. */
async function recorderCapacity(count) {
  const { openLocalAudit } = await import(join(root, 'dist', 'worker', 'audit', 'local.js'));
  const file = join(dir, 'recorder.db');
  const audit = await openLocalAudit({ path: file });
  const record = (i) => ({
    at: Date.now(),
    gateway: 'bench',
    signingKey: 'k0:00000000',
    gatewayVersion: '0.0.0',
    requestId: `bench-${i}`,
    query: { serverPort: 1024 + (i % 60000), clientPort: 6667 },
    connection: {
      localAddress: '198.51.100.1',
      localPort: 113,
      remoteAddress: `192.0.2.${i % 250}`,
      remotePort: 40000,
    },
    owner: { uid: 1000 + (i % 100), userName: `user${i % 100}` },
    claim: null,
    answer: { type: 'USERID', opsys: 'OTHER', userId: `u${(i * 2654435761) % 1e9}` },
    rule: 'bench',
    policyVersion: '0123456789abcdef',
  });
  const started = performance.now();
  let offered = 0;
  while (offered < count) {
    const batch = [];
    for (let i = 0; i < 64 && offered < count; i++) batch.push(record(offered++));
    void audit.recorder.record(batch);
    // Offered as fast as the writer takes them: more waits while half the queue is full (nothing is dropped for room).
    while (audit.recorder.stats().queued > 50_000) await new Promise((resolve) => setTimeout(resolve, 2));
    if (offered % 4096 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  await audit.recorder.flush();
  const seconds = (performance.now() - started) / 1000;
  const stats = audit.recorder.stats();
  await audit.close();
  const recorded = await countRecords(file);
  return { count, seconds, rate: count / seconds, recorded, dropped: stats.dropped };
}

const { loadgen } = buildTools();
const held = await holdConnection();
const results = {};
try {
  for (const path of ['embedded', 'node-worker']) {
    results[path] = { off: [], on: [] };
    for (let i = 0; i < options.rounds; i++) {
      for (const audit of [false, true]) {
        const r = await round(loadgen, path, audit, held, i);
        results[path][audit ? 'on' : 'off'].push(r);
        const loss = audit ? `, ${r.recorded} recorded of ${r.decided} decided` : '';
        console.error(`${path} audit ${audit ? 'on ' : 'off'} round ${i + 1}: ${r.throughput.toFixed(0)} q/s${loss}`);
      }
    }
  }
  const capacity = await recorderCapacity(options.records);

  const lines = [];
  const targets = [];
  lines.push(
    '| path | audit off q/s | audit on q/s | cost | CPU µs/query off / on, event loop | CPU µs/query off / on, all threads | p99 off / on (ms) | recorded / decided (audit on) |',
  );
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const [path, { off, on }] of Object.entries(results)) {
    const a = median(off.map((r) => r.throughput));
    const b = median(on.map((r) => r.throughput));
    const cost = (1 - b / a) * 100;
    const recorded = on.reduce((sum, r) => sum + r.recorded, 0);
    const decided = on.reduce((sum, r) => sum + r.decided, 0);
    const us = (rounds, key) => median(rounds.map((r) => r[key])).toFixed(1);
    lines.push(
      `| ${path} | ${a.toFixed(0)} | ${b.toFixed(0)} | ${cost.toFixed(1)} % | ${us(off, 'cpuMainUs')} / ${us(on, 'cpuMainUs')} | ${us(off, 'cpuAllUs')} / ${us(on, 'cpuAllUs')} | ${median(off.map((r) => r.p99)).toFixed(2)} / ${median(on.map((r) => r.p99)).toFixed(2)} | ${recorded} / ${decided} |`,
    );
    targets.push([`${path}: audit on costs under 10 % of throughput`, cost < 10, `${cost.toFixed(1)} %`]);
    targets.push([`${path}: every decision recorded`, recorded === decided, `${recorded} of ${decided}`]);
  }
  lines.push('');
  lines.push(
    `recorder alone: ${capacity.count} decisions into a SQLite file in ${capacity.seconds.toFixed(2)} s = ${capacity.rate.toFixed(0)} decisions/s; ${capacity.recorded} in the file, ${capacity.dropped} dropped`,
  );
  targets.push([
    'at least 5,000 decisions/s recorded without losing any',
    capacity.rate >= 5000 && capacity.recorded === capacity.count && capacity.dropped === 0,
    `${capacity.rate.toFixed(0)}/s, ${capacity.count - capacity.recorded} lost`,
  ]);
  lines.push('');
  for (const [what, ok, figure] of targets) lines.push(`- ${ok ? 'PASS' : 'FAIL'} ${what}: ${figure}`);
  console.log(
    `audit bench: ${options.rounds} rounds × ${options.duration} s, ${options.conns} connections × ${options['per-conn']} queries, owner lookup on, one gateway process\n`,
  );
  console.log(lines.join('\n'));
  process.exitCode = targets.every(([, ok]) => ok) ? 0 : 1;
} finally {
  held.close();
  rmSync(dir, { recursive: true, force: true });
}
