#!/usr/bin/env node
/**
 * The connection limits of `identgate serve` against the attacks and the
 * traffic they are for, loopback only, each scenario bounded in time; one JSON
 * line per scenario. `--root DIR` runs another checkout's dist/ (to compare a
 * change with what came before it).
 *
 *   stall        4 clients send 60,000 queries each, half-close and never read, against
 *                --max-connections 4 --idle-timeout 3000; once their replies stall, a legitimate
 *                client asks every 100 ms: when is it first answered, how often refused.
 *   burst        256 (then 32) clients from one address, each in a loop: connect, one query,
 *                read the reply, close; default limits; answers against resets.
 *   idle-flood   one address keeps 2,000 idle connections open (reopening what is closed),
 *                default limits; another address's query latency, p50/p99.
 *
 * @example
 *   node bench/limits.mjs                        # every scenario, this checkout
 *   node bench/limits.mjs --root /tmp/old --scenario burst --transport node
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort, startServer, track } from './lib/proc.mjs';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const NAME300 = 'a'.repeat(300);

const { values } = parseArgs({
  options: {
    root: { type: 'string', default: resolve(HERE, '..') },
    scenario: { type: 'string', multiple: true },
    transport: { type: 'string', default: 'native' },
    seconds: { type: 'string', default: '3' },
  },
});
const ROOT = resolve(values.root);
const SECONDS = Number(values.seconds);
if (!(SECONDS > 0 && SECONDS <= 30)) {
  console.error('limits.mjs: --seconds must be from 0 to 30');
  process.exit(2);
}

async function serve(args) {
  const port = await freePort();
  const server = await startServer({
    name: 'limits',
    command: process.execPath,
    args: [join(ROOT, 'dist/gateway/cli/main.js'), 'serve', '--listen', `127.0.0.1:${port}`, '--log-level', 'error']
      .concat(['--transport', values.transport])
      .concat(args),
    port,
  });
  return { port, server };
}

/** One query from `localAddress`: its reply line, or 'refused' when the connection closed without one. */
function ask(port, localAddress, timeoutMs = 2_000) {
  return new Promise((done) => {
    const started = performance.now();
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    let received = '';
    const finish = (outcome) => {
      clearTimeout(timer);
      socket.destroy();
      done({ outcome, ms: performance.now() - started });
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    socket.setNoDelay(true);
    socket.on('connect', () => socket.write('400, 500\r\n'));
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
      if (received.includes('\r\n')) finish('answered');
    });
    socket.on('error', () => {});
    socket.on('close', () => finish('refused'));
  });
}

function attack(port, args) {
  const child = spawn(process.execPath, [join(HERE, 'attack.mjs'), '--port', String(port), ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  track(child);
  let out = '';
  child.stdout.on('data', (chunk) => (out += chunk));
  const stopped = new Promise((done) => child.once('exit', () => done(out.trim().split('\n').at(-1))));
  return {
    engaged: () =>
      new Promise((done) => {
        const check = () => (out.includes('engaged') ? done() : setTimeout(check, 20));
        check();
      }),
    stop: async () => {
      child.kill('SIGTERM');
      return JSON.parse((await stopped) ?? '{}');
    },
  };
}

function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

const round = (ms) => Math.round(ms * 100) / 100;

/** A counter of the server's /metrics. */
async function metric(metricsPort, series) {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

async function stall() {
  const metricsPort = await freePort();
  const { port, server } = await serve([
    '--metrics',
    `127.0.0.1:${metricsPort}`,
    '--reply',
    // 60,000 replies of 330 octets (20 MB) overrun loopback's ~4 MB of kernel buffers; the review's
    // 40-character name stalled with SO_RCVBUF=1, which a Node client cannot set.
    NAME300,
    '--idle-timeout',
    '3000',
    '--max-connections',
    '4',
    // With the default 1000 the connection ends at its 1000th query before those buffers fill.
    '--max-queries',
    '100000',
  ]);
  try {
    const attacker = attack(port, ['--mode', 'stall', '--connections', '4', '--no-reconnect', '--seconds', '30']);
    await attacker.engaged();
    // Stalled once the server stops answering them (its query count stops growing).
    for (let last = -1, now = 0; now !== last; await new Promise((done) => setTimeout(done, 300)))
      [last, now] = [now, await metric(metricsPort, 'identgate_queries_total{answer="USERID"}')];
    const started = performance.now();
    let firstAnswerMs;
    const outcomes = { answered: 0, refused: 0, timeout: 0 };
    while (performance.now() - started < 3_000 + SECONDS * 1_000 + 2_000) {
      const { outcome } = await ask(port, '127.0.0.100', 500);
      outcomes[outcome]++;
      if (outcome === 'answered' && firstAnswerMs === undefined) firstAnswerMs = performance.now() - started;
      await new Promise((done) => setTimeout(done, 100));
    }
    const stats = await attacker.stop();
    return {
      scenario: 'stall',
      firstAnswerMs: firstAnswerMs === undefined ? null : Math.round(firstAnswerMs),
      ...outcomes,
      attackerClosedByServer: stats.closedByServer,
    };
  } finally {
    await server.stop();
  }
}

async function burst(clients) {
  const { port, server } = await serve(['--reply', 'x']);
  try {
    const counts = { answered: 0, refused: 0, timeout: 0 };
    const until = performance.now() + SECONDS * 1_000;
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (performance.now() < until) counts[(await ask(port, '127.0.0.2')).outcome]++;
      }),
    );
    const total = counts.answered + counts.refused + counts.timeout;
    return { scenario: `burst-${clients}`, seconds: SECONDS, ...counts, resetShare: round(counts.refused / total) };
  } finally {
    await server.stop();
  }
}

async function idleFlood() {
  const { port, server } = await serve(['--reply', 'x']);
  try {
    const attacker = attack(port, [
      '--mode',
      'idle',
      '--from',
      '127.0.0.2',
      '--connections',
      '2000',
      '--seconds',
      '60',
    ]);
    await attacker.engaged();
    const latencies = [];
    const outcomes = { answered: 0, refused: 0, timeout: 0 };
    const until = performance.now() + SECONDS * 1_000;
    while (performance.now() < until) {
      const { outcome, ms } = await ask(port, '127.0.0.100');
      outcomes[outcome]++;
      if (outcome === 'answered') latencies.push(ms);
      await new Promise((done) => setTimeout(done, 10));
    }
    const stats = await attacker.stop();
    return {
      scenario: 'idle-flood',
      ...outcomes,
      p50Ms: round(percentile(latencies, 50)),
      p99Ms: round(percentile(latencies, 99)),
      maxMs: round(Math.max(...latencies)),
      attackerConnects: stats.connects,
      attackerClosedByServer: stats.closedByServer,
    };
  } finally {
    await server.stop();
  }
}

const SCENARIOS = {
  stall,
  'burst-256': () => burst(256),
  'burst-32': () => burst(32),
  'idle-flood': idleFlood,
};
const chosen = values.scenario ?? Object.keys(SCENARIOS);
for (const name of chosen) {
  if (!SCENARIOS[name]) {
    console.error(`limits.mjs: unknown scenario ${name} (${Object.keys(SCENARIOS).join(', ')})`);
    process.exit(2);
  }
}
for (const name of chosen)
  console.log(JSON.stringify({ root: ROOT, transport: values.transport, ...(await SCENARIOS[name]()) }));
process.exit(0);
