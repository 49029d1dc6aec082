/**
 * Filling the host's TCP table with TIME_WAIT sockets on loopback, for the
 * benchmarks that measure owner lookup (bench/owner-lookup.mjs) and ident
 * servers (bench/run.mjs) when the kernel's table is large: sink listeners on
 * 127.0.0.1-127.0.0.4 that close after the client, worker threads that open
 * connections in batches and close them first (so the client end stays in
 * TIME_WAIT for 60 s), the count as `ss -Htan state time-wait` reports it,
 * and a query naming ports no socket uses (a lookup miss). Nothing runs at
 * import time; the worker threads run bench/lib/time-wait-filler.mjs.
 *
 * @example
 *   const sinks = await listenSinks();
 *   const fill = await fillTimeWait(sinks, { target: 20000, deadlineMs: 25000 });
 *   await closeSinks(sinks);
 *   console.log(fill.reached, 'sockets in TIME_WAIT after', fill.opened, 'connections');
 */
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { Worker } from 'node:worker_threads';

/** Loopback addresses the sinks listen on: four destinations spread the tuples over more port space. */
export const SINK_HOSTS = ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4'];

/** `ss` is missing or failed; `code` is stable. */
export class TimeWaitCountError extends Error {
  code = 'BENCH_TIME_WAIT_COUNT';
  constructor(message) {
    super(message);
    this.name = 'TimeWaitCountError';
  }
}

/**
 * Sockets in TIME_WAIT on the host (all families), as `ss -Htan state time-wait | wc -l` counts them.
 *
 * @example
 *   if (timeWaitCount() < 20000) console.log('not full yet');
 */
export function timeWaitCount() {
  let out;
  try {
    out = execFileSync('ss', ['-Htan', 'state', 'time-wait'], {
      maxBuffer: 64 * 1024 * 1024,
      stdio: ['ignore', 'pipe', 'pipe'],
    }).toString();
  } catch (error) {
    throw new TimeWaitCountError(
      `cannot count TIME_WAIT sockets with ss (Debian: apt-get install iproute2): ${error.message}`,
    );
  }
  return out === '' ? 0 : out.trimEnd().split('\n').length;
}

/**
 * One listener per host that answers a client's close with its own (so the client's end is the one in TIME_WAIT).
 *
 * @example
 *   const sinks = await listenSinks(['127.0.0.1']);
 */
export async function listenSinks(hosts = SINK_HOSTS) {
  const sinks = [];
  for (const host of hosts) {
    const server = net.createServer((socket) => {
      socket.on('error', () => {});
      socket.on('end', () => socket.end());
      socket.resume();
    });
    server.listen({ port: 0, host, backlog: 4096 });
    await once(server, 'listening');
    sinks.push({ server, host, port: server.address().port });
  }
  return sinks;
}

/**
 * Stop the sink listeners (the TIME_WAIT sockets stay: they belong to the closed clients).
 *
 * @example
 *   await closeSinks(sinks);
 */
export async function closeSinks(sinks) {
  await Promise.all(sinks.map(({ server }) => new Promise((resolve) => server.close(() => resolve()))));
}

/**
 * Open and close connections to the sinks from `threads` worker threads (connection setup in Node is
 * the bottleneck, each thread has its own event loop) until `ss` counts at least `target` TIME_WAIT
 * sockets on the host (and at least `minOpened` connections were made) or `deadlineMs` passes. The
 * count includes sockets that were already there (other users of the host, earlier runs).
 * Returns the tuples closed (client port, sink address and port), how many, how long it took, the
 * count before and reached, and whether the target was reached.
 *
 * @example
 *   const { reached, seconds, reachedTarget } = await fillTimeWait(sinks, { target: 20000 });
 */
export async function fillTimeWait(
  sinks,
  { target = 20000, deadlineMs = 25000, threads = 2, batch = 200, checkEveryMs = 500, minOpened = 0 } = {},
) {
  const started = performance.now();
  const before = timeWaitCount();
  const closed = [];
  let reached = before;
  if (before < target || minOpened > 0) {
    const workers = Array.from(
      { length: threads },
      (_, n) =>
        new Worker(new URL('./time-wait-filler.mjs', import.meta.url), {
          // batch stays below the listen backlog, so no SYN waits out a retransmit.
          workerData: { sinks: sinks.map(({ host, port }) => ({ host, port })), offset: n, batch },
        }),
    );
    await new Promise((done) => {
      const timer = setTimeout(done, deadlineMs);
      let lastCheck = 0;
      for (const worker of workers) {
        worker.on('message', (tuples) => {
          closed.push(...tuples);
          // ss is cheap next to connection setup, but ask only once the target could have been reached, and not too often.
          const now = performance.now();
          if (closed.length < minOpened || before + closed.length < target || now - lastCheck < checkEveryMs) return;
          lastCheck = now;
          reached = timeWaitCount();
          if (reached >= target) {
            clearTimeout(timer);
            done();
          }
        });
        worker.on('error', () => {});
      }
    });
    for (const worker of workers) worker.postMessage('stop');
    // A thread finishes its batch in flight (connect and close on loopback); never hang on one.
    await Promise.race([
      Promise.all(workers.map((w) => once(w, 'exit'))),
      new Promise((resolve) => setTimeout(resolve, 5000).unref()),
    ]);
    await Promise.all(workers.map((w) => w.terminate()));
  }
  reached = timeWaitCount();
  return {
    closed,
    opened: closed.length,
    seconds: (performance.now() - started) / 1000,
    before,
    reached,
    target,
    reachedTarget: reached >= target,
  };
}

/**
 * One connection to host:port, closed by us first; resolves to its tuple once fully closed.
 *
 * @example
 *   const { localPort } = await openAndClose(sink.port, sink.host);
 */
export async function openAndClose(port, host) {
  const socket = net.connect({ port, host });
  socket.on('error', () => {});
  await once(socket, 'connect');
  const tuple = { localPort: socket.localPort, remoteAddress: host, remotePort: port };
  socket.end();
  socket.resume();
  await once(socket, 'close');
  return tuple;
}

/**
 * The body of one filler thread: batches of openAndClose over the sinks until a message arrives on
 * `port`; posts each batch's tuples back.
 *
 * @example
 *   await fillLoop(workerData, parentPort); // in bench/lib/time-wait-filler.mjs
 */
export async function fillLoop({ sinks, offset = 0, batch = 200 }, port) {
  let stop = false;
  port.on('message', () => {
    stop = true;
  });
  let i = offset;
  while (!stop) {
    const pending = [];
    for (let k = 0; k < batch; k++, i++) {
      const { host, port: sinkPort } = sinks[i % sinks.length];
      pending.push(openAndClose(sinkPort, host).catch(() => null));
    }
    port.postMessage((await Promise.all(pending)).filter(Boolean));
  }
  port.close();
}

/**
 * An ident query "serverPort, clientPort" about a connection that does not exist: both ports above
 * the ephemeral range (so neither the fill nor a load generator can take them meanwhile) and used by
 * no socket right now, so an owner lookup misses and the answer is NO-USER.
 *
 * @example
 *   const { query } = missQuery(); // "61001, 61002"
 */
export function missQuery() {
  let used = new Set();
  try {
    const out = execFileSync('ss', ['-Htan'], {
      maxBuffer: 64 * 1024 * 1024,
      stdio: ['ignore', 'pipe', 'pipe'],
    }).toString();
    used = new Set(out.split('\n').flatMap((line) => [...line.matchAll(/:(\d+)\s/g)].map((m) => Number(m[1]))));
  } catch {
    /* no ss: the ports above the ephemeral range are still very unlikely to be in use */
  }
  let first = 61001;
  try {
    const [, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'latin1').trim().split(/\s+/).map(Number);
    if (high && high < 65000) first = high + 2;
  } catch {
    /* not Linux: keep the default */
  }
  for (let serverPort = first; serverPort < 65535; serverPort += 2) {
    const clientPort = serverPort + 1;
    if (!used.has(serverPort) && !used.has(clientPort))
      return { serverPort, clientPort, query: `${serverPort}, ${clientPort}` };
  }
  return { serverPort: first, clientPort: first + 1, query: `${first}, ${first + 1}` };
}
