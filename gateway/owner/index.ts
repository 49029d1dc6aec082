/**
 * Local owner lookup: which user owns the TCP connection an ident query asks
 * about (RFC 1413: the connection between the querier and this host whose
 * ports are serverPort here and clientPort there). On Linux the best way is
 * an exact NETLINK_SOCK_DIAG request (a kernel hash lookup, O(1) however many
 * sockets sit in TIME_WAIT) through the small C helper built by
 * build-helper.mjs; without the helper it scans /proc/net/tcp{,6}, with
 * concurrent lookups sharing scans. Either way a lookup never hangs and never
 * rejects: after `timeoutMs` or on any fault it answers null and hands an
 * OwnerLookupError to `onError`. `method` says which way is in use.
 *
 * @example
 * const owners = createOwnerLookup('auto', { onError: (err) => log.warn(err) });
 * server.start(async (tx) => {
 *   const owner = await owners.lookup({ localAddress: tx.localAddress, localPort: tx.req.serverPort, remoteAddress: tx.remoteAddress, remotePort: tx.req.clientPort });
 *   owner === null ? tx.replyWithError('NO-USER') : tx.replyWithUser('UNIX', owner.userName ?? String(owner.uid));
 * });
 */
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ConnectionEnds, connectionEnds, type OwnerQuery } from './address.js';
import { OwnerLookupError } from './errors.js';
import { PasswdNames } from './passwd.js';
import { type Owner, ProcfsOwnerLookup } from './procfs.js';
import { SockDiagOwnerLookup } from './sockdiag.js';

export { type ConnectionEnds, connectionEnds, type OwnerQuery } from './address.js';
export { OwnerLookupError, type OwnerLookupErrorCode } from './errors.js';
export { PasswdNames } from './passwd.js';
export { type Owner, ProcfsOwnerLookup } from './procfs.js';
export { SockDiagOwnerLookup } from './sockdiag.js';
export { isOwnedConnection, TCP_STATE } from './tcp-state.js';

export type OwnerLookupMode = 'auto' | 'on' | 'off';
export type OwnerLookupMethod = 'sock_diag' | 'procfs' | 'off';

export interface OwnerLookup {
  /** The owner of the connection localAddress:localPort <-> remoteAddress:remotePort, or null. */
  lookup(q: OwnerQuery): Promise<Owner | null>;
  /** Starts the helper process, if any, so that no lookup's time bound is spent starting it. Never rejects. */
  start(): Promise<void>;
  /** Stops the helper process, if any. */
  close(): Promise<void>;
  /** Which way lookups are answered now. */
  readonly method: string;
}

export interface OwnerLookupOptions {
  /** Use only this method (no fallback); by default sock_diag when its helper exists, else procfs. */
  method?: 'sock_diag' | 'procfs';
  /** The sock_diag helper; by default dist/owner/identgate-sockdiag of this package. */
  helperPath?: string;
  /** Bound on one lookup; 500 ms. */
  timeoutMs?: number;
  /** Told about every lookup that answered null because of a fault (timeout, dead helper, unreadable table). */
  onError?: (error: OwnerLookupError) => void;
  /** The platform to decide for; process.platform. */
  platform?: NodeJS.Platform;
  /** Where the procfs method reads tcp and tcp6; '/proc/net'. */
  procNetDir?: string;
  /** Where the procfs method reads user names; '/etc/passwd'. */
  passwdPath?: string;
}

/** What both methods provide. */
interface OwnerSource {
  readonly method: 'sock_diag' | 'procfs';
  find(ends: ConnectionEnds): Promise<Owner | null>;
  /** Gets ready ahead of the first find(); a failure shows in that find(). */
  start?(): Promise<void>;
  close(): Promise<void>;
}

/**
 * An OwnerLookup for `mode`: 'off' always answers null; 'on' throws an
 * OwnerLookupError with code ERR_OWNER_LOOKUP_UNSUPPORTED when this machine
 * cannot look owners up; 'auto' takes the best available method, or is off.
 *
 * @example
 * const owners = createOwnerLookup('on');
 * owners.method // 'sock_diag'
 * await owners.lookup({ localAddress: '127.0.0.1', localPort: 6667, remoteAddress: '127.0.0.1', remotePort: 40000 })
 * // -> { uid: 1000, userName: 'alice' }
 */
export function createOwnerLookup(mode: OwnerLookupMode, options: OwnerLookupOptions = {}): OwnerLookup {
  if (mode === 'off') return OFF;
  const unsupported = (why: string): OwnerLookup => {
    if (mode === 'on') throw new OwnerLookupError('ERR_OWNER_LOOKUP_UNSUPPORTED', `owner lookup is on but ${why}; set owner lookup to auto or off`);
    return OFF;
  };
  const platform = options.platform ?? process.platform;
  if (platform !== 'linux') return unsupported(`it needs Linux (this is ${platform})`);

  const procNetDir = options.procNetDir ?? '/proc/net';
  const procfs = options.method !== 'sock_diag' && canAccess(join(procNetDir, 'tcp'), constants.R_OK)
    ? (): OwnerSource => new ProcfsOwnerLookup({ procNetDir, passwd: new PasswdNames(options.passwdPath) })
    : null;
  const helperPath = options.method === 'procfs' ? null : options.helperPath ?? defaultHelperPath();
  const sockDiag = helperPath !== null && canAccess(helperPath, constants.X_OK)
    ? (): OwnerSource => new SockDiagOwnerLookup({ helperPath, stallMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS })
    : null;

  if (sockDiag !== null) return new BoundedOwnerLookup(sockDiag(), procfs, options);
  if (procfs !== null) return new BoundedOwnerLookup(procfs(), null, options);
  if (options.method === 'sock_diag') {
    return unsupported(`the sock_diag helper ${helperPath ?? ''} is missing; build it with "node gateway/owner/build-helper.mjs"`);
  }
  return unsupported(`neither the sock_diag helper nor ${procNetDir}/tcp is available`);
}

const DEFAULT_TIMEOUT_MS = 500;

const OFF: OwnerLookup = {
  method: 'off',
  lookup: async () => null,
  start: async () => {},
  close: async () => {},
};

/** A lookup waiting for its source; `resolve` is cleared once it is answered. */
interface Waiting {
  readonly deadlineAt: number;
  resolve: ((owner: Owner | null) => void) | null;
}

/**
 * Timeouts, error reporting and the switch to procfs when sock_diag turns out
 * not to work. Every lookup has the same time bound, so they expire in the
 * order they were asked: one timer, armed for the oldest waiting lookup,
 * bounds them all (no timer per lookup).
 */
class BoundedOwnerLookup implements OwnerLookup {
  #source: OwnerSource;
  #fallback: (() => OwnerSource) | null;
  readonly #timeoutMs: number;
  readonly #onError: (error: OwnerLookupError) => void;
  /** Unanswered lookups, oldest first (a Set keeps insertion order). */
  readonly #waiting = new Set<Waiting>();
  #timer: NodeJS.Timeout | undefined;

  constructor(source: OwnerSource, fallback: (() => OwnerSource) | null, options: OwnerLookupOptions) {
    this.#source = source;
    this.#fallback = fallback;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#onError = options.onError ?? (() => {});
  }

  get method(): string {
    return this.#source.method;
  }

  lookup(q: OwnerQuery): Promise<Owner | null> {
    const ends = connectionEnds(q);
    if (ends === null) return Promise.resolve(null); // no TCP connection can have these ends
    return new Promise<Owner | null>((resolve) => {
      const waiting: Waiting = { deadlineAt: performance.now() + this.#timeoutMs, resolve };
      this.#waiting.add(waiting);
      this.#timer ??= setTimeout(() => this.#expire(), this.#timeoutMs);
      const source = this.#source;
      source.find(ends).then(
        (owner) => this.#settle(waiting, owner),
        (error: unknown) => this.#failed(waiting, error, source, ends),
      );
    });
  }

  async start(): Promise<void> {
    // Bounded like a lookup. The timer also keeps the process alive meanwhile:
    // the helper's pipes are unref'd so that an idle helper never does.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.#source.start?.(), new Promise<void>((resolve) => (timer = setTimeout(resolve, this.#timeoutMs)))]);
    clearTimeout(timer);
  }

  async close(): Promise<void> {
    await this.#source.close();
  }

  #settle(waiting: Waiting, owner: Owner | null): void {
    const resolve = waiting.resolve;
    if (resolve === null) return;
    waiting.resolve = null;
    this.#waiting.delete(waiting);
    if (this.#waiting.size === 0) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    resolve(owner);
  }

  /** The timer fired: answer null to every lookup past its deadline, then watch the oldest left. */
  #expire(): void {
    this.#timer = undefined;
    // A timer may fire a fraction of a millisecond early; 1 ms of slack avoids re-arming for nothing.
    const now = performance.now() + 1;
    for (const waiting of this.#waiting) {
      if (waiting.deadlineAt > now) {
        this.#timer = setTimeout(() => this.#expire(), waiting.deadlineAt - now + 1);
        return;
      }
      this.#onError(new OwnerLookupError('ERR_OWNER_LOOKUP_TIMEOUT', `owner lookup (${this.method}) took longer than ${this.#timeoutMs} ms`));
      this.#settle(waiting, null);
    }
  }

  /** `source` failed this lookup: answer null and report why, or ask procfs when sock_diag turns out not to work here. */
  #failed(waiting: Waiting, error: unknown, source: OwnerSource, ends: ConnectionEnds): void {
    const fallback = this.#fallback;
    if (error instanceof OwnerLookupError && error.code === 'ERR_OWNER_LOOKUP_UNSUPPORTED' && (fallback !== null || this.#source !== source)) {
      // No helper binary that runs, or no NETLINK_SOCK_DIAG: use procfs from now on.
      if (this.#source === source && fallback !== null) {
        this.#fallback = null;
        this.#source = fallback();
        this.#onError(new OwnerLookupError('ERR_OWNER_LOOKUP_UNSUPPORTED', `${error.message}; falling back to /proc/net/tcp`, { cause: error }));
        void source.close();
      }
      const procfs = this.#source;
      procfs.find(ends).then(
        (owner) => this.#settle(waiting, owner),
        (procfsError: unknown) => this.#failed(waiting, procfsError, procfs, ends),
      );
      return;
    }
    if (waiting.resolve === null) return; // already answered null at its deadline
    this.#onError(error instanceof OwnerLookupError ? error : new OwnerLookupError('ERR_OWNER_LOOKUP_KERNEL', String(error), { cause: error }));
    this.#settle(waiting, null);
  }
}

/** dist/owner/identgate-sockdiag, seen from this module in dist/gateway/owner/ or in the source tree's gateway/owner/. */
function defaultHelperPath(): string {
  const candidates = [
    fileURLToPath(new URL('../../owner/identgate-sockdiag', import.meta.url)),
    fileURLToPath(new URL('../../dist/owner/identgate-sockdiag', import.meta.url)),
  ];
  return candidates.find((path) => canAccess(path, constants.X_OK)) ?? candidates[0] ?? 'identgate-sockdiag';
}

function canAccess(path: string, mode: number): boolean {
  try {
    accessSync(path, mode);
    return true;
  } catch {
    return false;
  }
}
