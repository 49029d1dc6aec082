/**
 * Running the real Debian ident peers from the interop suites: a child process
 * bounded in time whose output is collected (`run`), the same inside a network
 * namespace of its own with only `lo` up (`runInNetns`), where port 113 is free
 * to bind and nothing leaves the namespace, and a check that the tools a suite
 * needs are installed (`requireTools`), which fails with the Debian package to
 * install instead of skipping. `runClientAgainstIdentServer` runs an
 * IdentServer on 127.0.0.1:113 and one client command together in such a
 * namespace (see peers/netns-ident-server.mjs). Net::Ident and libident only ever talk to port
 * 113, hence the namespaces; `unshare -n` needs root, and a non-root run falls
 * back to a user namespace (`unshare -r -n`). Processes are spawned in their
 * own process group so a timeout kills everything they started. A server
 * that a test needs for longer (oidentd) is a `Service`, which the test stops
 * in `afterAll`.
 *
 * @example
 * await requireTools([{ command: 'perl', module: 'Net::Ident', debianPackage: 'libnet-ident-perl' }]);
 * const result = await runInNetns('perl', ['peers/net-ident.pl', '127.0.0.1', '4000'], { timeoutMs: 10_000 });
 * expect(result.code).toBe(0);
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { access, constants } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Where the Perl, C and Node peers live. */
export const PEERS_DIR = join(REPO_ROOT, 'test/interop/peers');

/** How a child process ended and what it wrote. */
export interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  /** The child (and its process group) is killed after this long; `run` then rejects. */
  readonly timeoutMs: number;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
}

/** A child process outlived its time limit; it has been killed. */
export class RunTimeoutError extends Error {
  readonly code = 'ERR_INTEROP_TIMEOUT';
  constructor(
    readonly commandLine: string,
    readonly timeoutMs: number,
    readonly partial: { stdout: string; stderr: string },
  ) {
    super(
      `"${commandLine}" did not finish within ${timeoutMs} ms (killed); stdout: ${JSON.stringify(partial.stdout)}, stderr: ${JSON.stringify(partial.stderr)}`,
    );
    this.name = 'RunTimeoutError';
  }
}

/** A tool an interop suite needs is not installed. */
export class MissingToolError extends Error {
  readonly code = 'ERR_INTEROP_MISSING_TOOL';
  constructor(what: string, debianPackage: string) {
    super(`${what} is not installed; install it with: apt-get install -y ${debianPackage} (.ci/run does this)`);
    this.name = 'MissingToolError';
  }
}

/**
 * Runs `command args` to completion, bounded by `timeoutMs`, and resolves
 * with its exit status and output (a non-zero exit is not an error here).
 *
 * @example
 * const { code, stdout } = await run('perl', ['-e', 'print 1'], { timeoutMs: 5_000 });
 */
export function run(command: string, args: readonly string[], options: RunOptions): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const commandLine = [command, ...args].join(' ');
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid);
    }, options.timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot run "${commandLine}": ${error.message}`, { cause: error }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) reject(new RunTimeoutError(commandLine, options.timeoutMs, { stdout, stderr }));
      else resolve({ code, signal, stdout, stderr });
    });
  });
}

/**
 * Like `run`, inside a fresh network namespace whose loopback interface is
 * up: 127.0.0.1 and ::1 work, port 113 is free, nothing else is reachable.
 * Everything the command starts lives and dies in that namespace.
 *
 * @example
 * const { stdout } = await runInNetns('ss', ['-ltn'], { timeoutMs: 5_000 });
 */
export function runInNetns(command: string, args: readonly string[], options: RunOptions): Promise<RunResult> {
  const unshareFlags = process.getuid?.() === 0 ? ['-n'] : ['-r', '-n'];
  // `exec "$@"` replaces the shell, so the command is the process we time and kill.
  const script = 'ip link set lo up && exec "$@"';
  return run('unshare', [...unshareFlags, '--', 'sh', '-c', script, 'sh', command, ...args], options);
}

/** A long-lived child process a test started and must stop. */
export interface Service {
  readonly child: ChildProcess;
  /** Resolves with the first line the process writes to stdout. */
  readonly firstLine: Promise<string>;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
  /** SIGTERM to its process group, SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts `command args` in its own process group and leaves it running.
 *
 * @example
 * const oidentd = startService('oidentd', ['-i', '-S', '-a', '127.0.0.1', '-p', String(port)]);
 * await waitForListener('127.0.0.1', port, 5_000);
 * await oidentd.stop();
 */
export function startService(command: string, args: readonly string[]): Service {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  let output = '';
  let stdout = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  const firstLine = new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (chunk: string) => {
      output += chunk;
      stdout += chunk;
      const end = stdout.indexOf('\n');
      if (end !== -1) resolve(stdout.slice(0, end));
    });
    child.on('error', (error) => reject(new Error(`cannot run ${command}: ${error.message}`, { cause: error })));
    void exited.then(() => reject(new Error(`${command} exited before writing a line: ${JSON.stringify(output)}`)));
  });
  firstLine.catch(() => undefined);
  return {
    child,
    firstLine,
    output: () => output,
    async stop(graceMs = 2_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      signalGroup(child.pid, 'SIGTERM');
      const timer = setTimeout(() => signalGroup(child.pid, 'SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * Resolves once something accepts TCP connections on `hostname:port`, trying
 * again every 20 ms (a daemon like oidentd says nothing when it is ready);
 * rejects after `timeoutMs`.
 *
 * @example
 * await waitForListener('127.0.0.1', port, 5_000);
 */
export async function waitForListener(hostname: string, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const socket = connect({ host: hostname, port });
    const outcome = await new Promise<'up' | 'down'>((resolve) => {
      socket.once('connect', () => resolve('up'));
      socket.once('error', () => resolve('down'));
    });
    socket.destroy();
    if (outcome === 'up') return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${hostname}:${port} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * A TCP port on `hostname` that was free a moment ago, for a daemon that
 * cannot be told to pick one itself.
 *
 * @example
 * const port = await freePort('127.0.0.1');
 */
export async function freePort(hostname: string): Promise<number> {
  const server = createServer();
  server.listen(0, hostname);
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  return address.port;
}

/** One query an IdentServer in a namespace received. */
export interface ReceivedQuery {
  readonly serverPort: number;
  readonly clientPort: number;
  readonly remoteAddress: string;
}

/** What `runClientAgainstIdentServer` saw: the queries the server got and the client's own output. */
export interface ClientRun extends RunResult {
  readonly queries: readonly ReceivedQuery[];
  readonly serverErrors: readonly string[];
}

/**
 * In a fresh namespace, starts an IdentServer (from the transpiled tree
 * `compiledRoot`) on 127.0.0.1:113 and runs one client command against it; see
 * peers/netns-ident-server.mjs for the handler: it answers USERID
 * `u<serverPort>c<clientPort>` (opsys UNIX), or ERROR HIDDEN-USER when the
 * client port is `errorClientPort`.
 *
 * @example
 * const result = await runClientAgainstIdentServer(root, 4001, 'perl', [join(PEERS_DIR, 'net-ident.pl'), '127.0.0.1', '4000']);
 * expect(result.queries).toHaveLength(1);
 */
export async function runClientAgainstIdentServer(
  compiledRoot: string,
  errorClientPort: number,
  command: string,
  args: readonly string[],
  timeoutMs = 30_000,
): Promise<ClientRun> {
  const script = join(PEERS_DIR, 'netns-ident-server.mjs');
  const outer = await runInNetns(
    process.execPath,
    [script, compiledRoot, String(errorClientPort), '--', command, ...args],
    { timeoutMs },
  );
  const line = outer.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as ClientRun;
  } catch {
    throw new Error(
      `the namespace's IdentServer did not report (exit ${outer.code}); stdout: ${JSON.stringify(outer.stdout)}, stderr: ${JSON.stringify(outer.stderr)}`,
    );
  }
}

/** A tool to check for: an executable, optionally a Perl module or a C header it must provide. */
export interface RequiredTool {
  readonly command: string;
  readonly debianPackage: string;
  /** A Perl module that `perl -M<module> -e1` must load. */
  readonly module?: string;
  /** A file that must exist (a header, a library). */
  readonly file?: string;
}

/**
 * Throws MissingToolError naming the Debian package for the first tool that
 * is not installed. Suites call it in `beforeAll` so a missing tool fails the
 * suite instead of skipping it.
 *
 * @example
 * await requireTools([{ command: 'oidentd', debianPackage: 'oidentd' }]);
 */
export async function requireTools(tools: readonly RequiredTool[]): Promise<void> {
  for (const tool of tools) {
    if (!(await onPath(tool.command))) throw new MissingToolError(`"${tool.command}"`, tool.debianPackage);
    if (tool.file !== undefined) {
      try {
        await access(tool.file, constants.R_OK);
      } catch {
        throw new MissingToolError(tool.file, tool.debianPackage);
      }
    }
    if (tool.module !== undefined) {
      const result = await run(tool.command, [`-M${tool.module}`, '-e1'], { timeoutMs: 10_000 });
      if (result.code !== 0) throw new MissingToolError(`Perl module ${tool.module}`, tool.debianPackage);
    }
  }
}

/** The tools every namespace needs. */
export const NETNS_TOOLS: readonly RequiredTool[] = [
  { command: 'unshare', debianPackage: 'util-linux' },
  { command: 'ip', debianPackage: 'iproute2' },
];

async function onPath(command: string): Promise<boolean> {
  const directories = (process.env['PATH'] ?? '').split(delimiter);
  for (const directory of directories) {
    try {
      await access(join(directory, command), constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

function killGroup(pid: number | undefined): void {
  signalGroup(pid, 'SIGKILL');
}

function signalGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}
