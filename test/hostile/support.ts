/**
 * Shared checks for the hostile-input suite. Every hostile test ends with the
 * same invariants: the server is still up and answers a fresh legitimate query
 * within a second, every reply line is a well-formed RFC 1413 reply that never
 * carries client bytes, no exception escaped the server (no unhandled
 * rejection or uncaught exception in this process) and every onError code is
 * one of the documented ones. The helpers here open many loopback connections
 * from distinct 127.0.0.x source addresses, read a child server's resident
 * memory from /proc, and start the real `identgate serve` quietly.
 *
 * @example
 * const escapes = guardEscapes();
 * const { port } = await startServer(grimlock);
 * expect(await probe(port)).toMatchObject({ line: '400, 500 : USERID : OTHER : grimlock' });
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { ERROR_CODES } from '../../protocol/errors.js';
import type { IdentServerError, IdentServerErrorCode } from '../../gateway/server/server.js';
import { listeningPort, ROOT, startCli, type LongRunning } from '../helpers/cli.js';

/** What every line an ident server writes must look like (no client text can hide in it). */
export const REPLY_LINE = /^\d+, \d+ : (USERID : \S+( , \S+)? : .+|ERROR : [A-Z-]+)$/;

/** The codes of the server's errors (protocol/errors.ts); anything else reaching onError is a bug. */
export const DOCUMENTED_CODES: ReadonlySet<IdentServerErrorCode> = new Set(ERROR_CODES.server);

/** The answer `startHostileServer`'s handler gives the probe query 400, 500. */
export const PROBE_REPLY = '400, 500 : USERID : OTHER : grimlock';

/**
 * Splits received text into reply lines and checks each against REPLY_LINE.
 * A trailing partial line is a failure too: replies are written whole.
 */
export function replyLines(received: string): string[] {
  if (received === '') return [];
  expect(received.endsWith('\r\n'), `reply text ends mid-line: ${JSON.stringify(received.slice(-80))}`).toBe(true);
  const lines = received.slice(0, -2).split('\r\n');
  for (const line of lines) expect(line, 'malformed reply line').toMatch(REPLY_LINE);
  return lines;
}

/**
 * Checks that an INVALID-PORT reply to `request` (a line without its end)
 * names ports the server re-formatted from a line of two plain numbers, or
 * 0, 0 — never client text.
 */
export function expectNoEcho(request: Uint8Array, reply: string): void {
  const match = /^(\d+), (\d+) : ERROR : INVALID-PORT$/.exec(reply);
  if (!match) return;
  if (match[1] === '0' && match[2] === '0') return;
  const loose = /^[ \t]*(\d+)[ \t]*,[ \t]*(\d+)[ \t]*$/.exec(Buffer.from(request).toString('latin1'));
  expect(
    loose,
    `INVALID-PORT ports ${match[1]}, ${match[2]} for a line that is not two numbers: ${JSON.stringify(Buffer.from(request).toString('latin1'))}`,
  ).not.toBeNull();
  expect(`${Number(loose![1])}, ${Number(loose![2])}`).toBe(`${match[1]}, ${match[2]}`);
  // Re-formatted, not copied: no leading zeros survive.
  expect(match[1]).toMatch(/^(0|[1-9]\d*)$/);
  expect(match[2]).toMatch(/^(0|[1-9]\d*)$/);
}

export interface ProbeResult {
  /** The reply line, without CRLF. */
  line: string;
  /** From connect() to the reply line. */
  ms: number;
}

/**
 * How much slower than normal this run may be: 1 under npm test, more under the sanitizer run (test/sanitize/run.mjs
 * sets IDENTGATE_TEST_SLOWDOWN: instrumented code is several times slower by design). Latency bounds scale by it.
 */
export const SLOWDOWN = Number(process.env.IDENTGATE_TEST_SLOWDOWN ?? '1');

/** A latency bound in ms, as npm test checks it, scaled for a slower run. */
export function latencyBound(ms: number): number {
  return ms * SLOWDOWN;
}

/** One fresh legitimate query "400, 500" on its own connection; rejects after `timeoutMs`. */
export async function probe(
  port: number,
  {
    host = '127.0.0.1',
    localAddress,
    timeoutMs = latencyBound(1_000),
  }: { host?: string; localAddress?: string; timeoutMs?: number } = {},
): Promise<ProbeResult> {
  const started = performance.now();
  const socket = net.connect({ port, host, ...(localAddress ? { localAddress } : {}) });
  socket.setNoDelay(true);
  let received = '';
  try {
    return await new Promise<ProbeResult>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(new Error(`no reply to a legitimate query within ${timeoutMs} ms; got ${JSON.stringify(received)}`)),
        timeoutMs,
      );
      socket.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      socket.on('connect', () => socket.write('400, 500\r\n'));
      socket.on('data', (chunk: Buffer) => {
        received += chunk.toString('latin1');
        const end = received.indexOf('\r\n');
        if (end === -1) return;
        clearTimeout(timer);
        resolve({ line: received.slice(0, end), ms: performance.now() - started });
      });
      socket.on('close', () => {
        clearTimeout(timer);
        reject(new Error(`closed before replying; got ${JSON.stringify(received)}`));
      });
    });
  } finally {
    socket.destroy();
  }
}

/** The server is up and answers a fresh legitimate query within a second. */
export async function expectServing(port: number, localAddress = '127.0.0.250', userId = 'grimlock'): Promise<void> {
  const result = await probe(port, { localAddress });
  expect(result.line).toBe(`400, 500 : USERID : OTHER : ${userId}`);
  expect(result.ms).toBeLessThan(latencyBound(1_000));
}

/** Every fault the server reported carries a documented code. */
export function expectDocumentedCodes(errors: readonly IdentServerError[]): void {
  for (const error of errors)
    expect(DOCUMENTED_CODES.has(error.code), `undocumented onError code ${error.code}: ${error.message}`).toBe(true);
}

/**
 * Records unhandled rejections and uncaught exceptions in this process for the
 * whole file, and fails the test during which one happened.
 */
export function guardEscapes(): void {
  const escaped: unknown[] = [];
  const onRejection = (reason: unknown) => escaped.push(reason);
  const onException = (error: unknown) => escaped.push(error);
  beforeAll(() => {
    process.on('unhandledRejection', onRejection);
    process.on('uncaughtExceptionMonitor', onException);
  });
  afterAll(() => {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtExceptionMonitor', onException);
  });
  afterEach(() => {
    const seen = escaped.splice(0);
    expect(
      seen.map((e) => (e instanceof Error ? e.stack : String(e))),
      'an exception escaped',
    ).toEqual([]);
  });
}

/** Connects one socket from `localAddress`, swallowing its errors; resolves on connect. */
export async function connectFrom(port: number, localAddress: string): Promise<net.Socket> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress });
  socket.on('error', () => {});
  await once(socket, 'connect');
  return socket;
}

/** `127.0.0.first` .. `127.0.0.last`. */
export function loopbackRange(first: number, last: number): string[] {
  return Array.from({ length: last - first + 1 }, (_, i) => `127.0.0.${first + i}`);
}

/**
 * Opens `count` sockets round-robin over `addresses`, at most `parallel`
 * connects at a time. Sockets the server refuses or evicts simply close.
 */
export async function openMany(
  port: number,
  count: number,
  addresses: readonly string[],
  parallel = 100,
): Promise<net.Socket[]> {
  const sockets: net.Socket[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      sockets.push(await connectFrom(port, addresses[i % addresses.length]!));
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, worker));
  return sockets;
}

/** Resident memory of a process in KiB, from /proc/PID/status. */
export function vmRssKiB(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]);
}

/** Percentile `p` (0..100) of `values`, nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

const READY = /listening on .*\n/;

/** Starts the real `identgate serve --reply USERID` (grimlock) on an ephemeral loopback port, logging errors only. */
export async function startCliServer(
  extra: string[] = [],
  userId = 'grimlock',
): Promise<{ serve: LongRunning; port: number; pid: number }> {
  const serve = await startCli(
    ['serve', '--listen', '127.0.0.1:0', '--reply', userId, '--log-level', 'error', ...extra],
    READY,
  );
  return { serve, port: listeningPort(serve.stdout()), pid: serve.child.pid! };
}

export interface AttackStats {
  mode: string;
  connects: number;
  closedByServer: number;
  queriesSent: number;
  repliesReceived: number;
  octetsSent: number;
}

export interface Attack {
  /** Stops the attacker (SIGTERM) and resolves with its counts. */
  stop(): Promise<AttackStats>;
}

const attackers: ChildProcess[] = [];
afterEach(() => {
  for (const child of attackers.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});

/**
 * Runs bench/attack.mjs in its own process (so its work does not compete with
 * this process's measurements) and resolves once every connection is engaged.
 */
export async function startAttack(port: number, args: string[], timeoutMs = 15_000): Promise<Attack> {
  const child = spawn(
    process.execPath,
    [`${ROOT}bench/attack.mjs`, '--port', String(port), '--seconds', '60', ...args],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  attackers.push(child);
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`attack ${args.join(' ')} not engaged within ${timeoutMs} ms; stderr: ${stderr}`)),
      timeoutMs,
    );
    child.stdout!.on('data', (chunk) => {
      stdout += chunk;
      if (stdout.includes('engaged\n')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      reject(new Error(`attack exited with ${code}; stderr: ${stderr}`));
    });
  });
  return {
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
      const last = stdout.trim().split('\n').at(-1) ?? '';
      return JSON.parse(last) as AttackStats;
    },
  };
}
