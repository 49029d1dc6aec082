/**
 * Alternating A/B comparison of servers on a noisy machine: starts every
 * server once, warms each up, then runs short load passes against them in
 * turn, round after round, and prints per server the minimum and median of
 * server CPU µs/query (user + system of the process tree), queries/s and p99.
 * Other work on a shared machine only ever adds CPU time, so the minimum over
 * many short alternating rounds is the steadiest figure for "how much work
 * does a query cost"; the medians say how it went overall. `{port}` in a
 * command is replaced by the port that server gets. Bounded: every pass has
 * the load generator's own time limit, and the servers are killed at the end.
 *
 * Needs bench/out/loadgen (built by `node bench/run.mjs` or by this script).
 *
 * @example
 *   node bench/ab.mjs --rounds 8 --duration 1 -- \
 *     'node bench/ceiling.mjs {port}' \
 *     'node dist/gateway/cli/main.js serve --listen 127.0.0.1:{port} --policy examples/policy.json --max-per-address 20000 --max-connections 20000'
 */
import { parseArgs } from 'node:util';
import { buildTools, runLoadgen } from './lib/loadgen.mjs';
import { freePort, startServer, treeCpuMs } from './lib/proc.mjs';
import { median } from './lib/report.mjs';

const usage =
  "usage: node bench/ab.mjs [--rounds 8] [--duration 1] [--conns 32] [--per-conn 1] [--query '61001, 61002'] -- 'COMMAND with {port}' ...";
let values;
let positionals;
try {
  ({ values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      rounds: { type: 'string', default: '8' },
      duration: { type: 'string', default: '1' },
      conns: { type: 'string', default: '32' },
      'per-conn': { type: 'string', default: '1' },
      query: { type: 'string', default: '61001, 61002' },
      help: { type: 'boolean', default: false },
    },
  }));
} catch (error) {
  console.error(`bench/ab.mjs: ${error.message.split('\n')[0]}\n${usage}`);
  process.exit(2);
}
if (values.help || positionals.length === 0) {
  console.log(usage);
  process.exit(values.help ? 0 : 2);
}
const rounds = Number(values.rounds);
const durationS = Number(values.duration);
for (const [name, value] of [
  ['--rounds', rounds],
  ['--conns', Number(values.conns)],
  ['--per-conn', Number(values['per-conn'])],
]) {
  if (!Number.isInteger(value) || value < 1) {
    console.error(`bench/ab.mjs: ${name} must be a whole number > 0\n${usage}`);
    process.exit(2);
  }
}
if (!(durationS > 0)) {
  console.error(`bench/ab.mjs: --duration must be a number of seconds > 0\n${usage}`);
  process.exit(2);
}

const { loadgen } = buildTools();
const load = (port, seconds) =>
  runLoadgen(loadgen, {
    port,
    query: values.query,
    conns: Number(values.conns),
    durationS: seconds,
    perConn: Number(values['per-conn']),
  });

const servers = [];
try {
  for (const [i, template] of positionals.entries()) {
    const port = await freePort();
    const [command, ...args] = template.replaceAll('{port}', String(port)).split(/\s+/);
    servers.push({ template, passes: [], handle: await startServer({ name: `ab-${i + 1}`, command, args, port }) });
  }
  for (const { handle } of servers) await load(handle.port, 1); // JIT warm-up, unmeasured
  for (let round = 0; round < rounds; round++) {
    for (const server of servers) {
      const before = treeCpuMs(server.handle.pid);
      const result = await load(server.handle.port, durationS);
      const cpuMs = treeCpuMs(server.handle.pid) - before;
      server.passes.push({
        cpuUs: (cpuMs * 1000) / Math.max(result.completed, 1),
        qps: result.throughput,
        p99: result.latency_ms.p99,
        errors: result.errors.total,
      });
    }
  }
  console.log(
    `${rounds} alternating rounds of ${durationS} s, ${values.conns} clients, ${values['per-conn']} queries per connection, query "${values.query}"`,
  );
  console.log('| server | CPU µs/query min | median | queries/s median | max | p99 ms median | errors |');
  console.log('|---|---:|---:|---:|---:|---:|---:|');
  for (const { template, passes } of servers) {
    const sorted = (key) => passes.map((p) => p[key]).sort((a, b) => a - b);
    const cpu = sorted('cpuUs');
    const qps = sorted('qps');
    const errors = passes.reduce((sum, p) => sum + p.errors, 0);
    console.log(
      `| \`${template}\` | ${cpu[0].toFixed(0)} | ${median(cpu).toFixed(0)} | ${median(qps).toFixed(0)} | ${qps.at(-1).toFixed(0)} | ${median(sorted('p99')).toFixed(2)} | ${errors} |`,
    );
  }
} finally {
  await Promise.all(servers.map(({ handle }) => handle.stop()));
}
