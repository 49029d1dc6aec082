/**
 * Owner lookup under TIME_WAIT load: fills the loopback with N (20000)
 * TIME_WAIT sockets by opening and actively closing connections in batches,
 * checks the count with `ss`, then times lookups for each method (sock_diag
 * and procfs) on three paths: a miss (no socket has the ports), a TIME_WAIT
 * hit (the ports of a closed connection, answered "no owner") and a live
 * connection. Prints per-lookup p50/p99 for lookups one at a time, and
 * lookups/s with 64 in flight. Bounded: stops adding sockets after 25 s and
 * takes a fixed number of samples (well under the 60 s TIME_WAIT lifetime).
 * Loopback only (127.0.0.1-127.0.0.4).
 *
 * Needs the compiled gateway (npm run build) and the helper (built here into
 * dist/owner when missing).
 *
 * @example
 *   npm run build && node bench/owner-lookup.mjs                 # 20000 TIME_WAIT sockets
 *   node bench/owner-lookup.mjs --time-wait 5000 --dist /tmp/out  # fewer, other build dir
 */
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { closeSinks, fillTimeWait, listenSinks, SINK_HOSTS, timeWaitCount } from './lib/time-wait.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({
  options: {
    'time-wait': { type: 'string', default: '20000' },
    dist: { type: 'string', default: join(ROOT, 'dist') },
    helper: { type: 'string' },
    'fill-threads': { type: 'string', default: '2' },
  },
});
const TIME_WAIT_TARGET = Number(values['time-wait']);
const DIST = resolve(values.dist);
const HELPER = resolve(values.helper ?? join(ROOT, 'dist', 'owner', 'identgate-sockdiag'));
const FILL_THREADS = Number(values['fill-threads']); // each with its own event loop: connection setup in Node is the bottleneck
const FILL_DEADLINE_MS = 25_000;

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Sequential latencies, then throughput with `inFlight` concurrent lookups; each half stops at its count or after budgetMs. */
async function measure(owners, queries, { samples, concurrentTotal, inFlight = 64, budgetMs = 2500 }) {
  const latencies = [];
  let wrong = 0;
  const seqStart = performance.now();
  for (let i = 0; i < samples && performance.now() - seqStart < budgetMs; i++) {
    const q = queries(i);
    const t0 = performance.now();
    const owner = await owners.lookup(q.query);
    latencies.push(performance.now() - t0);
    if ((owner === null) !== (q.expect === null)) wrong++;
  }
  latencies.sort((a, b) => a - b);
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < concurrentTotal && performance.now() - t0 < budgetMs) {
        const q = queries(next++);
        const owner = await owners.lookup(q.query);
        if ((owner === null) !== (q.expect === null)) wrong++;
      }
    }),
  );
  const concurrentSeconds = (performance.now() - t0) / 1000;
  return {
    samples: latencies.length,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    sequentialPerSecond: latencies.length / (latencies.reduce((a, b) => a + b, 0) / 1000),
    concurrentPerSecond: next / concurrentSeconds,
    wrong,
  };
}

async function main() {
  const entry = join(DIST, 'gateway', 'owner', 'index.js');
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run "npm run build" first (or pass --dist)`);
  const { createOwnerLookup } = await import(pathToFileURL(entry).href);
  if (!existsSync(HELPER)) {
    const { buildHelper } = await import(pathToFileURL(join(ROOT, 'gateway', 'owner', 'build-helper.mjs')).href);
    const { path, reason } = buildHelper({ out: HELPER });
    if (!path) console.log(`sock_diag helper not built (${reason}); only procfs will be measured`);
  }

  const servers = await listenSinks(SINK_HOSTS);
  const {
    closed,
    seconds,
    before,
    reached: timeWait,
  } = await fillTimeWait(servers, {
    target: TIME_WAIT_TARGET,
    minOpened: TIME_WAIT_TARGET, // the TIME_WAIT path queries tuples this run closed
    deadlineMs: FILL_DEADLINE_MS,
    threads: FILL_THREADS,
  });
  console.log(
    `TIME_WAIT sockets: ${timeWait} (were ${before}; ${closed.length} connections opened and closed in ${seconds.toFixed(1)} s)`,
  );

  // A live connection for the hit path.
  const live = net.connect({ port: servers[0].port, host: servers[0].host });
  await once(live, 'connect');
  const uid = process.getuid();

  // The most recent ones are surely still in TIME_WAIT; on loopback the kernel may reuse a TIME_WAIT
  // tuple for a new connection (tcp_tw_reuse=2), so leave out the live connection's.
  const tw = closed
    .slice(-5000)
    .filter(
      (t) => t.localPort !== live.localPort || t.remotePort !== servers[0].port || t.remoteAddress !== servers[0].host,
    );
  const paths = {
    miss: (i) => ({
      query: {
        localAddress: '127.0.0.1',
        localPort: 1 + (i % 1000),
        remoteAddress: '127.0.0.1',
        remotePort: 2000 + (i % 1000),
      },
      expect: null,
    }),
    time_wait: (i) => {
      const t = tw[i % tw.length];
      return {
        query: {
          localAddress: '127.0.0.1',
          localPort: t.localPort,
          remoteAddress: t.remoteAddress,
          remotePort: t.remotePort,
        },
        expect: null,
      };
    },
    live: () => ({
      query: {
        localAddress: '127.0.0.1',
        localPort: live.localPort,
        remoteAddress: servers[0].host,
        remotePort: servers[0].port,
      },
      expect: { uid },
    }),
  };

  const rows = [];
  for (const method of ['sock_diag', 'procfs']) {
    let owners;
    try {
      owners = createOwnerLookup('on', {
        method,
        helperPath: HELPER,
        timeoutMs: 5000,
        onError: (e) => console.error(`${method}: ${e.code} ${e.message}`),
      });
    } catch (error) {
      console.log(`${method}: unavailable (${error.message})`);
      continue;
    }
    await owners.lookup(paths.live(0).query); // warm-up: starts the helper, reads /etc/passwd
    const budget =
      method === 'sock_diag' ? { samples: 5000, concurrentTotal: 20000 } : { samples: 100, concurrentTotal: 2000 };
    budget.budgetMs = method === 'sock_diag' ? 1500 : 2500;
    for (const [path, queries] of Object.entries(paths)) {
      const r = await measure(owners, queries, budget);
      rows.push({ method, path, ...r });
    }
    await owners.close();
  }

  live.destroy();
  await closeSinks(servers);

  const fmt = (n, d = 3) => n.toFixed(d).padStart(10);
  console.log(
    `\nowner lookup with ${timeWait} TIME_WAIT sockets (${process.platform} ${process.arch}, node ${process.version})`,
  );
  console.log('method     path      samples     p50 ms     p99 ms   seq lookups/s   64-in-flight lookups/s   wrong');
  for (const r of rows) {
    console.log(
      `${r.method.padEnd(10)} ${r.path.padEnd(9)} ${String(r.samples).padStart(7)} ${fmt(r.p50)} ${fmt(r.p99)} ${fmt(r.sequentialPerSecond, 0).padStart(15)} ${fmt(r.concurrentPerSecond, 0).padStart(24)} ${String(r.wrong).padStart(7)}`,
    );
  }
  if (rows.some((r) => r.wrong > 0)) process.exitCode = 1;
}

await main();
