/**
 * The Node side of the C tools: compile bench/loadgen.c and bench/ceiling.c
 * with `cc -O2` into bench/out/, run the load generator with a hard time
 * limit and parse the one JSON object it prints, and hold a real TCP
 * connection open so an ident query can name a connection that owner lookup
 * (identgate's, oidentd's) will actually find.
 *
 * @example
 *   const tools = buildTools();
 *   const held = await holdConnection();
 *   const result = await runLoadgen(tools.loadgen, { port: 7000, query: held.query, perConn: 100 });
 *   held.close();
 */
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, track } from './proc.mjs';

const benchDir = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The C compiler failed or is missing; `code` is stable. */
export class BuildError extends Error {
  code = 'BENCH_BUILD';
  constructor(message) {
    super(message);
    this.name = 'BuildError';
  }
}

/**
 * Compile the load generator and the C ceiling server; returns their paths.
 *
 * @example
 *   const { loadgen, ceiling } = buildTools();
 */
export function buildTools({ cc = process.env.CC ?? 'cc' } = {}) {
  const outDir = join(benchDir, 'out');
  mkdirSync(outDir, { recursive: true });
  const built = {};
  for (const name of ['loadgen', 'ceiling']) {
    const output = join(outDir, name);
    const result = run(cc, ['-O2', '-Wall', '-o', output, join(benchDir, `${name}.c`)]);
    if (result.error)
      throw new BuildError(`cannot run the C compiler "${cc}": ${result.error.message} (install gcc or set CC)`);
    if (result.status !== 0) throw new BuildError(`${cc} failed on bench/${name}.c:\n${result.stderr}`);
    built[name] = output;
  }
  return built;
}

/** The load generator failed or printed no result; `code` is stable. */
export class LoadgenError extends Error {
  code = 'BENCH_LOADGEN';
  constructor(message) {
    super(message);
    this.name = 'LoadgenError';
  }
}

/**
 * Run one load generator pass. onReady(idleOpened) is called once the idle
 * connections (if any) are established, before the measured load starts.
 * The pass is killed if it runs longer than its duration plus a margin.
 *
 * @example
 *   const r = await runLoadgen('bench/out/loadgen', { port: 7000, query: '40000, 6667', conns: 32, durationS: 3, perConn: 1 });
 *   console.log(r.throughput, r.latency_ms.p99);
 */
export function runLoadgen(
  binary,
  {
    host = '127.0.0.1',
    port,
    query,
    conns = 32,
    durationS = 3,
    perConn = 1,
    idle = 0,
    idleSettleMs = 1500,
    timeoutMs = 5000,
    onReady,
  },
) {
  const args = [
    '--host',
    host,
    '--port',
    String(port),
    '--query',
    query,
    '--conns',
    String(conns),
    '--duration',
    String(durationS),
    '--per-conn',
    String(perConn),
    '--timeout-ms',
    String(timeoutMs),
  ];
  if (idle > 0) args.push('--idle', String(idle), '--idle-settle-ms', String(idleSettleMs));
  const limitMs = durationS * 1000 + timeoutMs + (idle > 0 ? 30000 + idleSettleMs : 0) + 5000;
  return new Promise((resolve, reject) => {
    const child = track(spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
      const m = /READY idle=(\d+)/.exec(stderr);
      if (m && onReady) {
        const callback = onReady;
        onReady = undefined;
        callback(Number(m[1]));
      }
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new LoadgenError(`cannot run ${binary}: ${error.message}`));
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) {
        reject(
          new LoadgenError(
            `loadgen ${signal ? `killed by ${signal} after ${limitMs} ms` : `exited ${code}`}: ${stderr.trim()}`,
          ),
        );
        return;
      }
      try {
        resolve(JSON.parse(stdout));
      } catch {
        reject(new LoadgenError(`loadgen printed no JSON: ${stdout.slice(0, 200)}`));
      }
    });
  });
}

/**
 * Open a listener on 127.0.0.1 and one connection to it, and keep both open.
 * `query` is "serverPort, clientPort" as the peer on the listener's side
 * would ask about this connection: serverPort is the connecting socket's
 * local port (the side whose owner is looked up), clientPort the listener's.
 *
 * @example
 *   const held = await holdConnection();
 *   console.log(held.query); // "41234, 39871"
 *   held.close();
 */
export async function holdConnection() {
  const accepted = [];
  const listener = net.createServer((socket) => {
    socket.on('error', () => {});
    accepted.push(socket);
  });
  await new Promise((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(0, '127.0.0.1', resolve);
  });
  const clientPort = listener.address().port;
  const socket = net.connect({ host: '127.0.0.1', port: clientPort });
  socket.on('error', () => {});
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const serverPort = socket.localPort;
  return {
    serverPort,
    clientPort,
    query: `${serverPort}, ${clientPort}`,
    close() {
      socket.destroy();
      for (const peer of accepted) peer.destroy();
      listener.close();
    },
  };
}
