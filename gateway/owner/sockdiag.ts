/**
 * Owner lookup through the kernel's NETLINK_SOCK_DIAG, by way of the small C
 * helper in sockdiag-helper.c (Node has no AF_NETLINK sockets). Each lookup
 * is one exact inet_diag request, a hash lookup in the kernel, so its cost
 * does not depend on how many sockets (TIME_WAIT included) the host has. One
 * helper process serves all lookups over a pipelined line protocol: requests
 * carry ids, the helper answers every line it has read with one write. The
 * helper starts on the first lookup; if it dies, the next lookup starts a new
 * one (after a failed start, not before a second has passed). A request
 * unanswered after `stallMs` kills the helper, so a wedged helper cannot
 * hold lookups forever.
 *
 * @example
 * const diag = new SockDiagOwnerLookup({ helperPath: 'dist/owner/identgate-sockdiag' });
 * await diag.find(connectionEnds({ localAddress: '127.0.0.1', localPort: 6667, remoteAddress: '127.0.0.1', remotePort: 40000 })!)
 * await diag.close();
 */
import { type ChildProcess, spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { type ConnectionEnds, formatAddress } from './address.js';
import { OwnerLookupError } from './errors.js';
import type { Owner } from './procfs.js';
import { isOwnedConnection } from './tcp-state.js';

export interface SockDiagOwnerLookupOptions {
  /** The built helper (gateway/owner/build-helper.mjs). */
  helperPath: string;
  /** A request older than this kills the helper; 500 ms. */
  stallMs?: number;
  /** How long to wait after a failed start before trying again; 1000 ms. */
  restartDelayMs?: number;
}

interface Pending {
  resolve: (owner: Owner | null) => void;
  reject: (error: unknown) => void;
  timer: NodeJS.Timeout;
}

/** The one helper process and what it owes us. */
interface Helper {
  child: ChildProcess;
  ready: Promise<void>;
  pending: Map<string, Pending>;
}

export class SockDiagOwnerLookup {
  readonly method = 'sock_diag';
  readonly #helperPath: string;
  readonly #stallMs: number;
  readonly #restartDelayMs: number;
  #helper: Helper | null = null;
  #nextId = 0;
  #lastFailedStart = -Infinity;
  #lastStartError: OwnerLookupError | null = null;
  #closed = false;
  #starts = 0;

  constructor(options: SockDiagOwnerLookupOptions) {
    this.#helperPath = options.helperPath;
    this.#stallMs = options.stallMs ?? 500;
    this.#restartDelayMs = options.restartDelayMs ?? 1000;
  }

  /** How many helper processes have been started; lets tests see restarts. */
  get starts(): number {
    return this.#starts;
  }

  /** The running helper's pid, if one runs. */
  get helperPid(): number | undefined {
    return this.#helper?.child.pid;
  }

  /**
   * The owner of the connection with these ends, or null when no process
   * holds such a connection. Rejects with an OwnerLookupError: code
   * ERR_OWNER_LOOKUP_UNSUPPORTED when the helper cannot run or the kernel has
   * no sock_diag, ERR_OWNER_LOOKUP_HELPER when the helper died or stalled,
   * ERR_OWNER_LOOKUP_KERNEL when the kernel refused the request.
   *
   * @example
   * await diag.find(ends) // { uid: 1000, userName: 'alice' }
   */
  async find(ends: ConnectionEnds): Promise<Owner | null> {
    const helper = this.#ensureHelper();
    await helper.ready;
    const id = String(++this.#nextId);
    const line = `${id} ${ends.family} ${formatAddress(ends.local)} ${ends.localPort} ${formatAddress(ends.remote)} ${ends.remotePort}\n`;
    return new Promise<Owner | null>((resolve, reject) => {
      const timer = setTimeout(() => {
        helper.pending.delete(id);
        reject(new OwnerLookupError('ERR_OWNER_LOOKUP_HELPER', `sock_diag helper did not answer within ${this.#stallMs} ms; restarting it`));
        this.#kill(helper);
      }, this.#stallMs);
      helper.pending.set(id, { resolve, reject, timer });
      helper.child.stdin?.write(line);
    });
  }

  /**
   * Stops the helper; lookups still waiting answer with an error.
   *
   * @example
   * await diag.close();
   */
  async close(): Promise<void> {
    this.#closed = true;
    const helper = this.#helper;
    if (helper === null) return;
    const exited = new Promise<void>((resolve) => {
      if (helper.child.exitCode !== null || helper.child.signalCode !== null) resolve();
      else helper.child.once('close', () => resolve());
    });
    helper.child.stdin?.end(); // EOF: the helper exits by itself
    const force = setTimeout(() => helper.child.kill('SIGKILL'), 500);
    await exited;
    clearTimeout(force);
  }

  #ensureHelper(): Helper {
    if (this.#closed) throw new OwnerLookupError('ERR_OWNER_LOOKUP_HELPER', 'owner lookup is closed');
    if (this.#helper !== null) return this.#helper;
    if (this.#lastStartError !== null && performance.now() - this.#lastFailedStart < this.#restartDelayMs) {
      throw this.#lastStartError;
    }
    this.#starts += 1;
    const child = spawn(this.#helperPath, [], { stdio: ['pipe', 'pipe', 'ignore'] });
    const pending = new Map<string, Pending>();
    let markReady: () => void = () => {};
    let failStart: (error: OwnerLookupError) => void = () => {};
    const ready = new Promise<void>((resolve, reject) => {
      markReady = resolve;
      failStart = reject;
    });
    ready.catch(() => {}); // observed by find(); never an unhandled rejection
    const helper: Helper = { child, ready, pending };
    this.#helper = helper;
    let started = false;
    let failed = false;

    const fail = (error: OwnerLookupError): void => {
      if (this.#helper === helper) this.#helper = null;
      if (!started && !failed) {
        this.#lastFailedStart = performance.now();
        this.#lastStartError = error;
        failStart(error);
      }
      failed = true;
      for (const [id, request] of pending) {
        clearTimeout(request.timer);
        pending.delete(id);
        request.reject(error);
      }
    };

    child.on('error', (cause: NodeJS.ErrnoException) => {
      const unusable = cause.code === 'ENOENT' || cause.code === 'EACCES' || cause.code === 'ENOEXEC';
      fail(new OwnerLookupError(
        unusable ? 'ERR_OWNER_LOOKUP_UNSUPPORTED' : 'ERR_OWNER_LOOKUP_HELPER',
        `cannot run the sock_diag helper ${this.#helperPath}: ${cause.message}; build it with "node gateway/owner/build-helper.mjs"`,
        { cause },
      ));
    });
    child.on('exit', (code, signal) => {
      fail(new OwnerLookupError('ERR_OWNER_LOOKUP_HELPER', `sock_diag helper exited (${signal ?? `code ${code}`})`));
    });
    // A helper that never says "ready" is as good as dead.
    const startTimer = setTimeout(() => {
      if (started) return;
      fail(new OwnerLookupError('ERR_OWNER_LOOKUP_HELPER', `sock_diag helper did not start within ${Math.max(this.#stallMs, 1000)} ms`));
      child.kill('SIGKILL');
    }, Math.max(this.#stallMs, 1000));
    startTimer.unref();
    child.stdin?.on('error', () => {}); // EPIPE when it died: 'exit' reports that
    // Neither the helper nor its pipes keep the gateway alive; a waiting lookup's timer does.
    child.unref();
    (child.stdin as unknown as Socket | null)?.unref();
    (child.stdout as unknown as Socket | null)?.unref();

    let partial = '';
    child.stdout?.setEncoding('latin1');
    child.stdout?.on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (!started) {
          if (line.startsWith('ready ')) {
            started = true;
            clearTimeout(startTimer);
            this.#lastStartError = null;
            markReady();
          } else {
            fail(new OwnerLookupError('ERR_OWNER_LOOKUP_UNSUPPORTED', `sock_diag helper cannot start: ${line.replace(/^fatal /, '')}`));
            child.kill();
          }
          continue;
        }
        this.#answer(helper, line);
      }
    });
    return helper;
  }

  /** Settles the request a helper reply line belongs to. */
  #answer(helper: Helper, line: string): void {
    const [id = '', kind, ...rest] = line.split(' ');
    const request = helper.pending.get(id);
    if (request === undefined) return; // a reply to a request that already timed out
    helper.pending.delete(id);
    clearTimeout(request.timer);
    if (kind === 'none') {
      request.resolve(null);
    } else if (kind === 'found' && rest.length === 4) {
      const [state, uid, inode, nameHex = '-'] = rest.map((field, i) => (i < 3 ? Number(field) : field)) as [number, number, number, string];
      if (!isOwnedConnection(state, inode)) request.resolve(null);
      else request.resolve({ uid, userName: nameHex === '-' ? null : Buffer.from(nameHex, 'hex').toString('utf8') });
    } else if (kind === 'error') {
      request.reject(new OwnerLookupError('ERR_OWNER_LOOKUP_KERNEL', `sock_diag request failed: ${rest.join(' ')}`));
    } else {
      request.reject(new OwnerLookupError('ERR_OWNER_LOOKUP_HELPER', `sock_diag helper answered an unreadable line: ${JSON.stringify(line.slice(0, 80))}`));
    }
  }

  #kill(helper: Helper): void {
    if (this.#helper === helper) this.#helper = null;
    helper.child.kill('SIGKILL');
  }
}
