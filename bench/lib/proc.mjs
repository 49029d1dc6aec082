/**
 * Child processes for the benchmark: start a server in its own process group,
 * wait (bounded) until its port accepts connections, measure the resident set
 * of its whole process tree from /proc, and stop it — and every other server
 * still running — no matter how the bench ends. Nothing here starts at import
 * time; the exit hooks are installed by the first start().
 *
 * @example
 *   const server = await startServer({ name: 'c-ceiling', command: 'bench/out/ceiling', args: ['7000'], port: 7000 });
 *   console.log(treeRssKiB(server.pid));
 *   await server.stop();
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';

/** A server failed to come up; `code` is stable, the message names the server and the cause. */
export class ServerStartError extends Error {
  code = 'BENCH_SERVER_START';
  /** @param {string} message @param {string} logTail */
  constructor(message, logTail) {
    super(message);
    this.name = 'ServerStartError';
    this.logTail = logTail;
  }
}

/** @type {Set<import('node:child_process').ChildProcess>} */
const live = new Set();
let hooksInstalled = false;

function killGroup(child, signal) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      /* already gone */
    }
  }
}

function installHooks() {
  if (hooksInstalled) return;
  hooksInstalled = true;
  // Last resort: whatever is still running when the bench exits is killed outright.
  process.on('exit', () => {
    for (const child of live) killGroup(child, 'SIGKILL');
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      for (const child of live) killGroup(child, 'SIGKILL');
      process.exit(130);
    });
  }
}

/**
 * Resolves true when a TCP connect to host:port succeeds, false on refusal.
 *
 * @example
 *   if (await canConnect('127.0.0.1', 113)) console.log('up');
 */
export function canConnect(host, port, timeoutMs = 500) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * A free TCP port on 127.0.0.1 (bound then released; the window for a race is tiny on a bench host).
 *
 * @example
 *   const port = await freePort();
 */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * Start `command args` in its own process group and wait until 127.0.0.1:port
 * accepts connections, the child exits, or readyTimeoutMs passes.
 *
 * @example
 *   const s = await startServer({ name: 'node-ceiling', command: process.execPath, args: ['bench/ceiling.mjs', '7001'], port: 7001 });
 */
export async function startServer({
  name,
  command,
  args = [],
  env,
  cwd,
  port,
  host = '127.0.0.1',
  readyTimeoutMs = 15000,
  logFile,
}) {
  installHooks();
  // Output goes to a file, not a pipe: the bench process shares the CPUs with
  // the server and should not spend them reading a server's logs.
  const logPath = logFile ?? join(tmpdir(), `identgate-bench-${name}-${process.pid}-${Date.now()}.log`);
  const logFd = openSync(logPath, 'w');
  const child = spawn(command, args, {
    cwd,
    env: env ?? process.env,
    detached: true, // own process group: stop() reaches every descendant
    stdio: ['ignore', logFd, logFd],
  });
  closeSync(logFd);
  live.add(child);
  const log = () => {
    try {
      return readFileSync(logPath, 'utf8').slice(-8000);
    } catch {
      return '';
    }
  };
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.once('exit', () => live.delete(child));
  let spawnError;
  child.once('error', (error) => {
    spawnError = error;
  });

  const handle = {
    name,
    pid: child.pid,
    port,
    child,
    logPath,
    logTail: log,
    async stop(graceMs = 2000) {
      killGroup(child, 'SIGTERM');
      const timer = new Promise((resolve) => setTimeout(resolve, graceMs, 'timeout'));
      if ((await Promise.race([exited, timer])) === 'timeout') {
        killGroup(child, 'SIGKILL');
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 1000))]);
      }
    },
  };

  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (spawnError) throw new ServerStartError(`${name}: could not run ${command}: ${spawnError.message}`, log());
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new ServerStartError(
        `${name}: exited (${child.exitCode ?? child.signalCode}) before listening on ${host}:${port}`,
        log(),
      );
    }
    if (await canConnect(host, port)) return handle;
    if (Date.now() > deadline) {
      await handle.stop();
      throw new ServerStartError(`${name}: not listening on ${host}:${port} after ${readyTimeoutMs} ms`, log());
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Register a child spawned elsewhere so that it is killed (its process group if it leads one) when
 * the bench exits or is interrupted, like the servers.
 *
 * @example
 *   track(spawn('bench/out/loadgen', args));
 */
export function track(child) {
  installHooks();
  if (child.exitCode !== null || child.signalCode !== null) return child;
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/**
 * Run a command to completion in its own process group without blocking the event loop, killing
 * the whole group (SIGTERM, then SIGKILL 2 s later) if it runs longer than timeoutMs. Resolves
 * { status, signal, stdout, stderr, timedOut, seconds }; rejects only if the command cannot be run.
 *
 * @example
 *   const { status, stdout, timedOut } = await runBounded(process.execPath, ['bench/policy-eval.mjs'], { timeoutMs: 90000 });
 */
export function runBounded(command, args, { cwd, env, timeoutMs = 60000 } = {}) {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = track(
      spawn(command, args, { cwd, env: env ?? process.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] }),
    );
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    let hardKill;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child, 'SIGTERM');
      hardKill = setTimeout(() => killGroup(child, 'SIGKILL'), 2000);
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (status, signal) => {
      clearTimeout(timer);
      clearTimeout(hardKill);
      resolve({ status, signal, stdout, stderr, timedOut, seconds: (performance.now() - started) / 1000 });
    });
  });
}

/** pid -> child pids, from /proc/PID/stat; also each process's CPU ticks (utime + stime). */
function processTable() {
  const children = new Map();
  const ticks = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      // pid (comm) state ppid ... utime stime — comm may contain spaces and parentheses.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ppid = Number(fields[1]);
      ticks.set(Number(entry), Number(fields[11]) + Number(fields[12]));
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      /* exited meanwhile */
    }
  }
  return { children, ticks };
}

function descendants(rootPid, children) {
  const out = [];
  const stack = [rootPid];
  const seen = new Set();
  while (stack.length > 0) {
    const pid = stack.pop();
    if (seen.has(pid)) continue;
    seen.add(pid);
    out.push(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return out;
}

/**
 * How many descendants pid has right now (a cluster's workers, a forking server's connections).
 *
 * @example
 *   const workers = descendantCount(gateway.pid);
 */
export function descendantCount(rootPid) {
  return descendants(rootPid, processTable().children).length - 1;
}

/**
 * Wait until pid has at most `atMost` descendants (a forking server's per-connection children have
 * finished; pass the count from before the load for servers with permanent workers) or timeoutMs
 * passes; resolves how many above `atMost` are still running.
 *
 * @example
 *   const unfinished = await settleTree(oidentd.pid, { timeoutMs: 5000 });
 */
export async function settleTree(rootPid, { timeoutMs = 5000, atMost = 0 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const extra = descendantCount(rootPid) - atMost;
    if (extra <= 0 || Date.now() >= deadline) return Math.max(0, extra);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Sum of VmRSS (KiB) over pid and all its descendants, read from /proc.
 *
 * @example
 *   const kib = treeRssKiB(process.pid);
 */
export function treeRssKiB(rootPid) {
  let total = 0;
  for (const pid of descendants(rootPid, processTable().children)) {
    try {
      const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
      if (m) total += Number(m[1]);
    } catch {
      /* exited meanwhile */
    }
  }
  return total;
}

let clockTicks;
/**
 * CPU time (ms, user + system) used so far by pid and its live descendants.
 * Exited children are not counted (servers here keep theirs, except oidentd's
 * per-connection forks, whose time the kernel adds to the parent's cutime only).
 *
 * @example
 *   const before = treeCpuMs(server.pid); await work(); const used = treeCpuMs(server.pid) - before;
 */
export function treeCpuMs(rootPid) {
  clockTicks ??= Number(run('getconf', ['CLK_TCK']).stdout.trim()) || 100;
  const { children, ticks } = processTable();
  let total = 0;
  for (const pid of descendants(rootPid, children)) total += ticks.get(pid) ?? 0;
  try {
    // Reaped children (oidentd's forks) are accounted in the parent's cutime + cstime.
    const fields = readFileSync(`/proc/${rootPid}/stat`, 'latin1');
    const f = fields.slice(fields.lastIndexOf(')') + 2).split(' ');
    total += Number(f[13]) + Number(f[14]);
  } catch {
    /* exited */
  }
  return (total * 1000) / clockTicks;
}

/**
 * Samples the summed tree RSS of several pids every intervalMs until stopped; returns the peak in KiB.
 *
 * @example
 *   const sampler = sampleRss([server.pid]);
 *   await work();
 *   const peakKiB = sampler.stop();
 */
export function sampleRss(pids, intervalMs = 200) {
  const measure = () => pids.reduce((sum, pid) => sum + treeRssKiB(pid), 0);
  let peak = measure();
  const timer = setInterval(() => {
    peak = Math.max(peak, measure());
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      peak = Math.max(peak, measure());
      return peak;
    },
  };
}

/**
 * Runs a command to completion (bounded), returning { status, stdout, stderr }.
 *
 * @example
 *   const { status } = run('cc', ['--version']);
 */
export function run(command, args, { timeoutMs = 60000, cwd } = {}) {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', timeout: timeoutMs });
  return { status: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? '', error: result.error };
}
