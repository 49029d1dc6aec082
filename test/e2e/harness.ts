/**
 * Shared pieces of the end-to-end suites: temporary policy and secret files,
 * the real `identgate serve` / `identgate worker` processes (through
 * test/helpers/cli.ts, which kills them after each test), their JSON log lines
 * on stderr, held TCP connections whose owner the gateway can look up, and a
 * cleanup list run after each test. Everything listens on loopback only.
 *
 * @example
 * const files = tempFiles();
 * const worker = await startWorker(['--policy', files.policy(policy), '--secret-file', files.secret()]);
 * const gateway = await startServe(['--upstream', worker.url, '--secret-file', files.secret()]);
 * await waitForLog(worker.cli, (line) => line.msg === 'decisions');
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { listeningPort, startCli, type LongRunning } from '../helpers/cli.js';

/** `identgate serve` prints "identgate listening on ..." once it accepts queries. */
export const SERVE_READY = /listening on .*\n/;
/** `identgate worker` prints "identgate worker listening on http://ADDR:PORT". */
export const WORKER_READY = /listening on http:\/\/\S+\n/;
/** Generous: the machine running the suites may be busy. */
export const START_TIMEOUT_MS = 30_000;

type Cleanup = () => void | Promise<void>;
const cleanups: Cleanup[] = [];

/** Runs `cleanup` after the current test, newest first. */
export function onCleanup(cleanup: Cleanup): void {
  cleanups.push(cleanup);
}

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

export interface TempFiles {
  readonly dir: string;
  /** Writes a policy document and returns its path. */
  policy(document: unknown, name?: string): string;
  /** The test's signing secret (created on first use), as a --secret-file path. */
  secret(): string;
  /** The secret itself. */
  readonly secretValue: string;
  /** Removes the directory (done after the test unless `{ removeAfterTest: false }`). */
  remove(): void;
}

/** A temporary directory, removed after the test unless the caller removes it itself (e.g. in afterAll). */
export function tempFiles({ removeAfterTest = true } = {}): TempFiles {
  const dir = mkdtempSync(join(tmpdir(), 'identgate-e2e-'));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  if (removeAfterTest) onCleanup(remove);
  const secretValue = randomBytes(24).toString('hex');
  let secretPath: string | undefined;
  return {
    dir,
    secretValue,
    remove,
    policy(document, name = 'policy.json') {
      const path = join(dir, name);
      writeFileSync(path, JSON.stringify(document, null, 2));
      return path;
    },
    secret() {
      if (secretPath === undefined) {
        secretPath = join(dir, 'secret');
        writeFileSync(secretPath, `${secretValue}\n`, { mode: 0o600 });
      }
      return secretPath;
    },
  };
}

export interface RunningGatewayProcess {
  readonly cli: LongRunning;
  /** The ident port. */
  readonly port: number;
}

/** Starts `identgate serve --listen 127.0.0.1:0 ARGS...` and waits until it accepts queries. */
export async function startServe(args: string[]): Promise<RunningGatewayProcess> {
  const cli = await startCli(['serve', '--listen', '127.0.0.1:0', ...args], SERVE_READY, {
    timeoutMs: START_TIMEOUT_MS,
  });
  return { cli, port: listeningPort(cli.stdout()) };
}

export interface RunningWorkerProcess {
  readonly cli: LongRunning;
  readonly port: number;
  /** http://127.0.0.1:PORT */
  readonly url: string;
}

/** Starts `identgate worker ARGS...` (add --listen, default 127.0.0.1:0) and waits until it serves. */
export async function startWorker(args: string[], listen = '127.0.0.1:0'): Promise<RunningWorkerProcess> {
  const cli = await startCli(['worker', '--listen', listen, ...args], WORKER_READY, { timeoutMs: START_TIMEOUT_MS });
  const port = listeningPort(cli.stdout());
  return { cli, port, url: `http://127.0.0.1:${port}` };
}

/** The JSON log lines a process wrote to stderr so far (other lines are skipped). */
export function logLines(cli: LongRunning): Record<string, unknown>[] {
  const lines: Record<string, unknown>[] = [];
  for (const text of cli.stderr().split('\n')) {
    if (!text.startsWith('{')) continue;
    try {
      lines.push(JSON.parse(text) as Record<string, unknown>);
    } catch {
      // A line still being written; the next call sees it whole.
    }
  }
  return lines;
}

/** Resolves with the log lines matching `predicate` once there are `count` of them (or once `until` says they are enough). */
export function waitForLog(
  cli: LongRunning,
  predicate: (line: Record<string, unknown>) => boolean,
  {
    count = 1,
    timeoutMs = 10_000,
    until,
  }: { count?: number; timeoutMs?: number; until?: (found: Record<string, unknown>[]) => boolean } = {},
): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    const stream = cli.child.stderr!;
    const check = () => {
      const found = logLines(cli).filter(predicate);
      if (until ? !until(found) : found.length < count) return;
      cleanup();
      resolve(found);
    };
    const onClose = () => {
      cleanup();
      reject(new Error(`the process exited before logging ${count} matching line(s); stderr: ${cli.stderr()}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no ${count} matching log line(s) within ${timeoutMs} ms; stderr: ${cli.stderr()}`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      stream.off('data', onData);
      cli.child.off('close', onClose);
    };
    // startCli's own listener appends each chunk first (it was added earlier).
    const onData = () => check();
    stream.on('data', onData);
    cli.child.on('close', onClose);
    check();
  });
}

/** Kills a process started with startCli and waits until it is gone. */
export async function kill(cli: LongRunning, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (cli.child.exitCode !== null || cli.child.signalCode !== null) return;
  cli.child.kill(signal);
  await cli.exited;
}

export interface HeldConnection {
  /** The listening side's port. */
  readonly listenerPort: number;
  /** The connecting side's (ephemeral) port. */
  readonly clientPort: number;
}

/** Opens a TCP listener on 127.0.0.1 and a connection to it, both owned by this process; closed after the test. */
export async function holdConnection(): Promise<HeldConnection> {
  const server = net.createServer();
  const accepted: net.Socket[] = [];
  server.on('connection', (socket) => accepted.push(socket));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const listenerPort = (server.address() as net.AddressInfo).port;
  const client = net.connect({ host: '127.0.0.1', port: listenerPort });
  onCleanup(() => {
    client.destroy();
    for (const socket of accepted) socket.destroy();
    server.close();
  });
  await Promise.all([once(client, 'connect'), once(server, 'connection')]);
  return { listenerPort, clientPort: client.localPort! };
}

/** A free TCP port on 127.0.0.1 (closed again before returning; the caller binds it next). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
