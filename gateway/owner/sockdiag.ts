/**
 * Owner lookup through NETLINK_SOCK_DIAG by way of the sockdiag-helper.c process, over a pipelined line protocol:
 * lookups of one event-loop turn go in one write, identical ones share an answer, a stalled helper is restarted.
 *
 * @example
 * const diag = new SockDiagOwnerLookup({ helperPath: 'dist/owner/identgate-sockdiag' });
 * await diag.find(connectionEnds({ localAddress: '127.0.0.1', localPort: 6667, remoteAddress: '127.0.0.1', remotePort: 40000 })!)
 * await diag.close();
 */
import { type ChildProcess, spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { type ConnectionEnds, formatAddress } from './address.js';
import {
  OwnerLookupError,
  OwnerLookupHelperError,
  OwnerLookupKernelError,
  OwnerLookupUnsupportedError,
} from './errors.js';
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

/** One request to the helper; identical lookups in flight share it. */
interface Request {
  readonly id: string;
  /** The request line without its id: family and both ends. */
  readonly ends: string;
  readonly sentAt: number;
  readonly answer: Promise<Owner | null>;
  readonly resolve: (owner: Owner | null) => void;
  readonly reject: (error: unknown) => void;
}

/** The one helper process and what it owes us. */
interface Helper {
  child: ChildProcess;
  ready: Promise<void>;
  started: boolean;
  /** Unanswered requests by id, oldest first (a Map keeps insertion order). */
  pending: Map<string, Request>;
  /** The same requests by their ends, for sharing. */
  byEnds: Map<string, Request>;
  /** Request lines not yet written to the helper. */
  unsent: string;
  /** Watches the oldest pending request; unset when nothing is pending. */
  stallTimer: NodeJS.Timeout | undefined;
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
  #requests = 0;
  #writes = 0;

  constructor(options: SockDiagOwnerLookupOptions) {
    this.#helperPath = options.helperPath;
    this.#stallMs = options.stallMs ?? 500;
    this.#restartDelayMs = options.restartDelayMs ?? 1000;
  }

  /** How many helper processes have been started; lets tests see restarts. */
  get starts(): number {
    return this.#starts;
  }

  /** How many requests have been sent to helpers; lets tests see sharing. */
  get requests(): number {
    return this.#requests;
  }

  /** How many writes to helpers have carried requests; lets tests see batching. */
  get writes(): number {
    return this.#writes;
  }

  /** The running helper's pid, if one runs. */
  get helperPid(): number | undefined {
    return this.#helper?.child.pid;
  }

  /**
   * Starts the helper and resolves once it is ready (or failed to start:
   * the next find() then reports why).
   *
   * @example
   * await diag.start();
   */
  start(): Promise<void> {
    try {
      return this.#ensureHelper().ready.then(
        () => {},
        () => {},
      );
    } catch {
      return Promise.resolve();
    }
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
  find(ends: ConnectionEnds): Promise<Owner | null> {
    let helper: Helper;
    try {
      helper = this.#ensureHelper();
    } catch (error) {
      return Promise.reject(error);
    }
    if (helper.started) return this.#ask(helper, ends);
    return helper.ready.then(() => {
      if (this.#helper !== helper) throw new OwnerLookupHelperError('sock_diag helper exited as it started');
      return this.#ask(helper, ends);
    });
  }

  /** The answer of the request in flight for these ends, or of a new one. */
  #ask(helper: Helper, ends: ConnectionEnds): Promise<Owner | null> {
    const line = `${ends.family} ${formatAddress(ends.local)} ${ends.localPort} ${formatAddress(ends.remote)} ${ends.remotePort}`;
    return (helper.byEnds.get(line) ?? this.#send(helper, line)).answer;
  }

  /** Queues one request line; every line queued in this turn of the event loop goes out in one write. */
  #send(helper: Helper, ends: string): Request {
    const id = String(++this.#nextId);
    this.#requests += 1;
    let resolve: (owner: Owner | null) => void = () => {};
    let reject: (error: unknown) => void = () => {};
    const answer = new Promise<Owner | null>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const request: Request = { id, ends, sentAt: performance.now(), answer, resolve, reject };
    helper.pending.set(id, request);
    helper.byEnds.set(ends, request);
    if (helper.unsent === '') setImmediate(() => this.#flush(helper));
    helper.unsent += `${id} ${ends}\n`;
    if (helper.stallTimer === undefined) helper.stallTimer = setTimeout(() => this.#checkStall(helper), this.#stallMs);
    return request;
  }

  #flush(helper: Helper): void {
    const lines = helper.unsent;
    helper.unsent = '';
    if (lines === '' || helper.child.stdin === null) return;
    this.#writes += 1;
    helper.child.stdin.write(lines);
  }

  /** The stall timer fired: kill a helper whose oldest request is overdue, else watch the next oldest. */
  #checkStall(helper: Helper): void {
    helper.stallTimer = undefined;
    const oldest = helper.pending.values().next().value;
    if (oldest === undefined) return;
    // A timer may fire a fraction of a millisecond early; 1 ms of slack avoids re-arming for nothing.
    const overdueIn = oldest.sentAt + this.#stallMs - performance.now() - 1;
    if (overdueIn > 0) {
      helper.stallTimer = setTimeout(() => this.#checkStall(helper), overdueIn + 1);
      return;
    }
    this.#kill(helper);
    this.#rejectAll(
      helper,
      new OwnerLookupHelperError(`sock_diag helper did not answer within ${this.#stallMs} ms; restarting it`),
    );
  }

  #rejectAll(helper: Helper, error: OwnerLookupError): void {
    clearTimeout(helper.stallTimer);
    helper.stallTimer = undefined;
    const requests = [...helper.pending.values()];
    helper.pending.clear();
    helper.byEnds.clear();
    helper.unsent = '';
    for (const request of requests) request.reject(error);
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
    this.#flush(helper);
    helper.child.stdin?.end(); // EOF: the helper answers what it has read, then exits
    const force = setTimeout(() => helper.child.kill('SIGKILL'), 500);
    await exited;
    clearTimeout(force);
  }

  #ensureHelper(): Helper {
    if (this.#closed) throw new OwnerLookupHelperError('owner lookup is closed');
    if (this.#helper !== null) return this.#helper;
    if (this.#lastStartError !== null && performance.now() - this.#lastFailedStart < this.#restartDelayMs) {
      throw this.#lastStartError;
    }
    this.#starts += 1;
    // Our pid: the helper exits if its parent is another process (we died as it started).
    const child = spawn(this.#helperPath, [String(process.pid)], { stdio: ['pipe', 'pipe', 'ignore'] });
    let markReady: () => void = () => {};
    let failStart: (error: OwnerLookupError) => void = () => {};
    const ready = new Promise<void>((resolve, reject) => {
      markReady = resolve;
      failStart = reject;
    });
    ready.catch(() => {}); // observed by find(); never an unhandled rejection
    const helper: Helper = {
      child,
      ready,
      started: false,
      pending: new Map(),
      byEnds: new Map(),
      unsent: '',
      stallTimer: undefined,
    };
    this.#helper = helper;
    let failed = false;

    const fail = (error: OwnerLookupError): void => {
      if (this.#helper === helper) this.#helper = null;
      if (!helper.started && !failed) {
        this.#lastFailedStart = performance.now();
        this.#lastStartError = error;
        failStart(error);
      }
      failed = true;
      this.#rejectAll(helper, error);
    };

    child.on('error', (cause: NodeJS.ErrnoException) => {
      const unusable = cause.code === 'ENOENT' || cause.code === 'EACCES' || cause.code === 'ENOEXEC';
      const message = `cannot run the sock_diag helper ${this.#helperPath}: ${cause.message}; build it with "node gateway/owner/build-helper.mjs"`;
      fail(
        unusable ? new OwnerLookupUnsupportedError(message, { cause }) : new OwnerLookupHelperError(message, { cause }),
      );
    });
    child.on('exit', (code, signal) => {
      fail(new OwnerLookupHelperError(`sock_diag helper exited (${signal ?? `code ${code}`})`));
    });
    // A helper that never says "ready" is as good as dead.
    const startTimer = setTimeout(
      () => {
        if (helper.started) return;
        fail(new OwnerLookupHelperError(`sock_diag helper did not start within ${Math.max(this.#stallMs, 1000)} ms`));
        child.kill('SIGKILL');
      },
      Math.max(this.#stallMs, 1000),
    );
    startTimer.unref();
    child.stdin?.on('error', () => {}); // EPIPE when it died: 'exit' reports that
    // Neither the helper nor its pipes keep the gateway alive; the stall timer does while lookups wait.
    child.unref();
    (child.stdin as unknown as Socket | null)?.unref();
    (child.stdout as unknown as Socket | null)?.unref();

    let partial = '';
    child.stdout?.setEncoding('latin1');
    child.stdout?.on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (!helper.started) {
          if (line.startsWith('ready ')) {
            helper.started = true;
            clearTimeout(startTimer);
            this.#lastStartError = null;
            markReady();
          } else {
            fail(new OwnerLookupUnsupportedError(`sock_diag helper cannot start: ${line.replace(/^fatal /, '')}`));
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
    helper.byEnds.delete(request.ends);
    if (helper.pending.size === 0) {
      clearTimeout(helper.stallTimer);
      helper.stallTimer = undefined;
    }
    if (kind === 'none') {
      request.resolve(null);
    } else if (kind === 'found' && rest.length === 4) {
      const [state, uid, inode, nameHex = '-'] = rest.map((field, i) => (i < 3 ? Number(field) : field)) as [
        number,
        number,
        number,
        string,
      ];
      if (!isOwnedConnection(state, inode)) request.resolve(null);
      else request.resolve({ uid, userName: nameHex === '-' ? null : Buffer.from(nameHex, 'hex').toString('utf8') });
    } else if (kind === 'error') {
      request.reject(new OwnerLookupKernelError(`sock_diag request failed: ${rest.join(' ')}`));
    } else {
      request.reject(
        new OwnerLookupHelperError(
          `sock_diag helper answered an unreadable line: ${JSON.stringify(line.slice(0, 80))}`,
        ),
      );
    }
  }

  #kill(helper: Helper): void {
    if (this.#helper === helper) this.#helper = null;
    helper.child.kill('SIGKILL');
  }
}
