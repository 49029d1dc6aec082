/**
 * Running `identgate serve` the ways an operator does — under a launcher
 * (systemd-socket-activate, `sh -c 'exec …'`, `unshare -n`, `setpriv`) rather
 * than as a bare node child — for the operations tests. A `Daemon` is spawned
 * in its own process group, resolves once its stdout matches a ready pattern,
 * and is killed with its whole group after each test. `jsonLogLines` parses
 * the pino lines it wrote to stderr; `queryInNetns` runs `identgate query`
 * inside another process's network namespace (nsenter), where port 113 is
 * free to use and nothing leaves loopback.
 *
 * @example
 * const serve = await startDaemon('unshare', ['-n', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', process.execPath, CLI, 'serve', '--listen', '127.0.0.1:113', '--reply', 'x'], READY);
 * const reply = await queryInNetns(serve.pid, '127.0.0.1', 113, '1,2');
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { afterEach } from 'vitest';
import { CLI, ROOT } from '../../helpers/cli.js';

export { CLI, ROOT };

/** What `identgate serve` prints on stdout once it listens (two lines). */
export const READY = /listening on .*\n/;

export interface Daemon {
  readonly child: ChildProcess;
  readonly pid: number;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or the signal's name). */
  readonly exited: Promise<number | string | null>;
  /** Resolves with the first JSON log line on stderr that satisfies `match` (checked again on every write). */
  logLine(match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Resolves with stdout once it matches `pattern` (checked again on every write). */
  stdoutMatching(pattern: RegExp, timeoutMs?: number): Promise<string>;
}

const running: ChildProcess[] = [];

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

afterEach(() => {
  for (const child of running.splice(0)) killGroup(child);
});

export interface DaemonOptions {
  env?: NodeJS.ProcessEnv;
  /** Extra descriptors from position 3 on (e.g. a listening socket's fd). */
  extraFds?: number[];
  timeoutMs?: number;
  /** Where `ready` is looked for; stdout. */
  readyOn?: 'stdout' | 'stderr';
}

/** Spawns `command args` in its own process group (killed after the test) and resolves once stdout matches `ready`. */
export async function startDaemon(
  command: string,
  args: string[],
  ready: RegExp,
  options: DaemonOptions = {},
): Promise<Daemon> {
  const stdio: StdioOptions = ['ignore', 'pipe', 'pipe', ...(options.extraFds ?? [])];
  const child = spawn(command, args, { cwd: ROOT, env: { ...process.env, ...options.env }, stdio, detached: true });
  running.push(child);
  let stdout = '';
  let stderr = '';
  const waiters = new Set<() => void>();
  const wakeAll = () => {
    for (const wake of waiters) wake();
  };
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    wakeAll();
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    wakeAll();
  });
  /** Resolves with the first value `probe` returns that is not undefined, re-probing on every write. */
  const waitFor = <T>(probe: () => T | undefined, what: string, timeoutMs: number) =>
    new Promise<T>((resolve, reject) => {
      const wake = () => {
        const found = probe();
        if (found === undefined) return;
        clearTimeout(timer);
        waiters.delete(wake);
        resolve(found);
      };
      const timer = setTimeout(() => {
        waiters.delete(wake);
        reject(new Error(`${what} not seen within ${timeoutMs} ms; stdout: ${stdout}; stderr: ${stderr}`));
      }, timeoutMs);
      waiters.add(wake);
      wake();
    });
  const logLine = (match: (line: LogLine) => boolean, timeoutMs = 5_000) =>
    waitFor(() => parsedLines(stderr).find(match), 'the log line', timeoutMs);
  const stdoutMatching = (pattern: RegExp, timeoutMs = 5_000) =>
    waitFor(() => (pattern.test(stdout) ? stdout : undefined), String(pattern), timeoutMs);
  const exited = new Promise<number | string | null>((resolve) =>
    child.on('close', (code, signal) => resolve(code ?? signal)),
  );
  const started = new Promise<never>((_, reject) => {
    child.on('error', reject);
    void exited.then((code) =>
      reject(new Error(`${command} ${args.join(' ')} exited with ${code}; stdout: ${stdout}; stderr: ${stderr}`)),
    );
  });
  const timeoutMs = options.timeoutMs ?? 15_000;
  const readyOn = options.readyOn ?? 'stdout';
  started.catch(() => undefined);
  await Promise.race([
    waitFor(
      () => ready.test(readyOn === 'stdout' ? stdout : stderr) || undefined,
      `${command} ready (${ready})`,
      timeoutMs,
    ),
    started,
  ]);
  return { child, pid: child.pid!, stdout: () => stdout, stderr: () => stderr, exited, logLine, stdoutMatching };
}

export interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `command args` to completion, killed (and rejected) after `timeoutMs`. */
export function runToEnd(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: ROOT,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    running.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timeoutMs = options.timeoutMs ?? 15_000;
    const timer = setTimeout(() => {
      killGroup(child);
      reject(
        new Error(
          `${command} ${args.join(' ')} did not finish within ${timeoutMs} ms; stdout: ${stdout}; stderr: ${stderr}`,
        ),
      );
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** `identgate query HOST SERVERPORT,CLIENTPORT --port PORT` run inside the network namespace of process `pid`. */
export function queryInNetns(pid: number, host: string, port: number, ports: string): Promise<Finished> {
  return runToEnd('nsenter', [
    '-t',
    String(pid),
    '-n',
    '--',
    process.execPath,
    CLI,
    'query',
    host,
    ports,
    '--port',
    String(port),
    '--timeout',
    '5000',
  ]);
}

/** The command line that runs `argv` in a fresh network namespace with loopback up; `exec` keeps one pid throughout. */
export function inFreshNetns(argv: string[]): [string, string[]] {
  return ['unshare', ['-n', '--', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', ...argv]];
}

/** The complete lines of `text` that are JSON objects (a launcher's own plain-text lines are skipped). */
function parsedLines(text: string): LogLine[] {
  return text
    .split('\n')
    .slice(0, -1)
    .flatMap((line) => {
      try {
        const value: unknown = JSON.parse(line);
        return typeof value === 'object' && value !== null ? [value as LogLine] : [];
      } catch {
        return [];
      }
    });
}

export type LogLine = Record<string, unknown> & { level: string; msg: string };

/** The pino JSON lines in `text` (lines that are not JSON objects fail the test: the log must be all JSON). */
export function jsonLogLines(text: string): LogLine[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      try {
        return JSON.parse(line) as LogLine;
      } catch {
        throw new Error(`not a JSON log line: ${JSON.stringify(line)}`);
      }
    });
}

/** The first line of /proc/PID/status that starts with `field:`, split into its numbers (Uid/Gid: real, effective, saved, fs). */
export async function statusIds(pid: number, field: 'Uid' | 'Gid' | 'Groups'): Promise<number[]> {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const line = status.split('\n').find((l) => l.startsWith(`${field}:`));
  if (line === undefined) throw new Error(`no ${field} line in /proc/${pid}/status`);
  return line
    .slice(field.length + 1)
    .trim()
    .split(/\s+/)
    .filter(Boolean)
    .map(Number);
}
