/**
 * Local owner lookup: which user owns the connection an ident query asks about. In order of preference: the
 * sock_diag addon, the sock_diag helper process, a /proc/net/tcp scan; a lookup never rejects (null on any fault).
 *
 * @example
 * const owners = createOwnerLookup('auto', { onError: (err) => log.warn(err) });
 * server.start(async (tx) => {
 *   const owner = await owners.lookup({ localAddress: tx.localAddress, localPort: tx.req.serverPort, remoteAddress: tx.remoteAddress, remotePort: tx.req.clientPort });
 *   owner === null ? tx.replyWithError('NO-USER') : tx.replyWithUser('UNIX', owner.userName ?? String(owner.uid));
 * });
 */
import { accessSync, constants, statSync } from 'node:fs';
import { join } from 'node:path';
import { locateNative, packageRoot, type NativeProgram } from '../native-addons.js';
import { type ConnectionEnds, connectionEnds, type OwnerQuery } from './address.js';
import {
  OwnerLookupError,
  OwnerLookupKernelError,
  OwnerLookupTimeoutError,
  OwnerLookupUnsupportedError,
} from './errors.js';
import { PasswdNames } from './passwd.js';
import { type Owner, ProcfsOwnerLookup } from './procfs.js';
import { SockDiagOwnerLookup } from './sockdiag.js';
import { SockDiagAddonLookup } from './sockdiag-addon.js';

export { type ConnectionEnds, connectionEnds, type OwnerQuery } from './address.js';
export * from './errors.js';
export { PasswdNames } from './passwd.js';
export { type Owner, ProcfsOwnerLookup } from './procfs.js';
export { SockDiagOwnerLookup } from './sockdiag.js';
export { SockDiagAddonLookup } from './sockdiag-addon.js';
export { isOwnedConnection, TCP_STATE } from './tcp-state.js';

export type OwnerLookupMode = 'auto' | 'on' | 'off';
export type OwnerLookupMethod = 'sock_diag' | 'procfs' | 'off';

export interface OwnerLookup {
  /** The owner of the connection localAddress:localPort <-> remoteAddress:remotePort, or null. */
  lookup(q: OwnerQuery): Promise<Owner | null>;
  /**
   * The same answer at once when it is at hand without waiting (the addon,
   * with the user name remembered); undefined otherwise, and then lookup() is
   * the way. Never throws.
   */
  lookupNow(q: OwnerQuery): Owner | null | undefined;
  /** Starts the helper process, if any, so that no lookup's time bound is spent starting it. Never rejects. */
  start(): Promise<void>;
  /** Stops the helper process, if any. */
  close(): Promise<void>;
  /** Which way lookups are answered now. */
  readonly method: string;
  /** Why lookups do not start with the sock_diag addon (it is not built or prebuilt here), when they do not. */
  readonly fallbackReason?: string;
}

export interface OwnerLookupOptions {
  /** Use only this method (no fallback to procfs); by default sock_diag when the addon or helper exists, else procfs. */
  method?: 'sock_diag' | 'procfs';
  /** The sock_diag addon; by default dist/owner/identgate-sockdiag.node of this package; null: never use it. */
  addonPath?: string | null;
  /** The sock_diag helper, used when the addon is absent or does not load; by default dist/owner/identgate-sockdiag. */
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
  /** The owner, or null; a source that knows at once (the addon) answers without a promise. */
  find(ends: ConnectionEnds): Owner | null | Promise<Owner | null>;
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
    if (mode === 'on')
      throw new OwnerLookupUnsupportedError(`owner lookup is on but ${why}; set owner lookup to auto or off`);
    return OFF;
  };
  const platform = options.platform ?? process.platform;
  if (platform !== 'linux') return unsupported(`it needs Linux (this is ${platform})`);

  const procNetDir = options.procNetDir ?? '/proc/net';
  const procfs =
    options.method !== 'sock_diag' && readable(join(procNetDir, 'tcp'))
      ? (): OwnerSource => new ProcfsOwnerLookup({ procNetDir, passwd: new PasswdNames(options.passwdPath) })
      : null;
  const addonAt =
    options.method === 'procfs' || options.addonPath === null
      ? null
      : options.addonPath !== undefined
        ? given(options.addonPath, false)
        : locate(ADDON_NAME, false);
  const addonPath = addonAt?.path ?? null;
  const addon = addonPath !== null ? (): OwnerSource => new SockDiagAddonLookup({ addonPath }) : null;
  const helperAt =
    options.method === 'procfs'
      ? null
      : options.helperPath !== undefined
        ? given(options.helperPath, true)
        : locate(HELPER_NAME, true);
  const helperPath = helperAt?.path ?? null;
  const helper =
    helperPath !== null
      ? (): OwnerSource =>
          new SockDiagOwnerLookup({ helperPath, stallMs: options.timeoutMs ?? OWNER_LOOKUP_DEFAULTS.timeoutMs })
      : null;

  // Best first; each hands over to the next when it turns out not to work here.
  const [first, ...fallbacks] = [addon, helper, procfs].filter((source) => source !== null);
  if (first !== undefined) {
    return new BoundedOwnerLookup(first(), fallbacks, options, addon === null ? addonAt?.reason : undefined);
  }
  if (options.method === 'sock_diag') {
    return unsupported(`neither the sock_diag addon nor its helper is available (${helperAt?.reason ?? HELPER_NAME})`);
  }
  return unsupported(`neither the sock_diag addon or helper nor ${procNetDir}/tcp is available`);
}

/** The owner lookup's defaults. */
export const OWNER_LOOKUP_DEFAULTS = {
  /** A lookup answers null after this long (and the sock_diag helper counts as stalled). */
  timeoutMs: 500,
} as const;

const OFF: OwnerLookup = {
  method: 'off',
  lookup: async () => null,
  lookupNow: () => null,
  start: async () => {},
  close: async () => {},
};

/** A lookup waiting for its source; `resolve` is cleared once it is answered. */
interface Waiting {
  readonly deadlineAt: number;
  resolve: ((owner: Owner | null) => void) | null;
}

/**
 * Timeouts, error reporting and the switch to the next way (addon, helper,
 * procfs) when one turns out not to work. Every lookup has the same time bound, so they expire in the
 * order they were asked: one timer, armed for the oldest waiting lookup,
 * bounds them all (no timer per lookup).
 */
class BoundedOwnerLookup implements OwnerLookup {
  #source: OwnerSource;
  /** The ways still to try, best first. */
  readonly #fallbacks: (() => OwnerSource)[];
  readonly #timeoutMs: number;
  readonly #onError: (error: OwnerLookupError) => void;
  /** Unanswered lookups, oldest first (a Set keeps insertion order). */
  readonly #waiting = new Set<Waiting>();
  #timer: NodeJS.Timeout | undefined;

  readonly fallbackReason: string | undefined;

  constructor(
    source: OwnerSource,
    fallbacks: (() => OwnerSource)[],
    options: OwnerLookupOptions,
    fallbackReason?: string,
  ) {
    this.#source = source;
    this.fallbackReason = fallbackReason;
    this.#fallbacks = fallbacks;
    this.#timeoutMs = options.timeoutMs ?? OWNER_LOOKUP_DEFAULTS.timeoutMs;
    this.#onError = options.onError ?? (() => {});
  }

  get method(): string {
    return this.#source.method;
  }

  lookupNow(q: OwnerQuery): Owner | null | undefined {
    const ends = connectionEnds(q);
    if (ends === null) return null; // no TCP connection can have these ends
    if (!(this.#source instanceof SockDiagAddonLookup)) return undefined;
    try {
      const found = this.#source.find(ends);
      if (!(found instanceof Promise)) return found;
      // The name is being asked of NSS: let lookup() wait for it, bounded. The socket part is repeated.
      found.catch(() => {});
    } catch {
      // lookup() reports it (and falls back when the addon turns out not to work).
    }
    return undefined;
  }

  lookup(q: OwnerQuery): Promise<Owner | null> {
    const ends = connectionEnds(q);
    if (ends === null) return Promise.resolve(null); // no TCP connection can have these ends
    const source = this.#source;
    let found: Owner | null | Promise<Owner | null>;
    try {
      found = source.find(ends);
    } catch (error) {
      found = Promise.reject(error);
    }
    // Answered at once (the addon, with the user name remembered): no time bound to keep.
    if (!(found instanceof Promise)) return Promise.resolve(found);
    const answer = found;
    return new Promise<Owner | null>((resolve) => {
      const waiting: Waiting = { deadlineAt: performance.now() + this.#timeoutMs, resolve };
      this.#waiting.add(waiting);
      this.#timer ??= setTimeout(() => this.#expire(), this.#timeoutMs);
      answer.then(
        (owner) => this.#settle(waiting, owner),
        (error: unknown) => this.#failed(waiting, error, source, ends),
      );
    });
  }

  async start(): Promise<void> {
    // Bounded like a lookup. The timer also keeps the process alive meanwhile:
    // the helper's pipes are unref'd so that an idle helper never does.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.#source.start?.(),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, this.#timeoutMs))),
    ]);
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
      this.#onError(
        new OwnerLookupTimeoutError(`owner lookup (${this.method}) took longer than ${this.#timeoutMs} ms`),
      );
      this.#settle(waiting, null);
    }
  }

  /** `source` failed this lookup: answer null and report why, or ask the next way when this one turns out not to work here. */
  #failed(waiting: Waiting, error: unknown, source: OwnerSource, ends: ConnectionEnds): void {
    if (error instanceof OwnerLookupError && error.code === 'ERR_OWNER_LOOKUP_UNSUPPORTED') {
      // An addon that does not load, a helper that does not run, or no NETLINK_SOCK_DIAG: move on for good.
      const next = this.#fallbacks[0];
      if (this.#source === source && next !== undefined) {
        this.#fallbacks.shift();
        this.#source = next();
        this.#onError(
          new OwnerLookupUnsupportedError(`${error.message}; falling back to ${describeSource(this.#source)}`, {
            cause: error,
          }),
        );
        void source.close();
      }
      const current = this.#source;
      if (current !== source) {
        Promise.resolve()
          .then(() => current.find(ends))
          .then(
            (owner) => this.#settle(waiting, owner),
            (nextError: unknown) => this.#failed(waiting, nextError, current, ends),
          );
        return;
      }
    }
    if (waiting.resolve === null) return; // already answered null at its deadline
    this.#onError(
      error instanceof OwnerLookupError ? error : new OwnerLookupKernelError(String(error), { cause: error }),
    );
    this.#settle(waiting, null);
  }
}

const ADDON_NAME: NativeProgram = 'identgate-sockdiag.node';
const HELPER_NAME: NativeProgram = 'identgate-sockdiag';

/** Where this package's sock_diag addon is (built or not): the claims API asks it for peer credentials too. */
export function sockDiagAddonPath(): string {
  const located = locateNative(ADDON_NAME);
  return located.path ?? `${packageRoot()}dist/owner/${ADDON_NAME}`;
}

type Located = { path: string; reason?: undefined } | { path: null; reason: string };

/** dist/owner/NAME when built here, else this package's prebuilt one for this machine (gateway/native-addons.ts). */
function locate(name: NativeProgram, executable: boolean): Located {
  const located = locateNative(name);
  if (located.path === null) return located;
  return given(located.path, executable);
}

function given(path: string, executable: boolean): Located {
  if (built(path, executable)) return { path };
  return { path: null, reason: `${path} is ${executable ? 'missing or not executable' : 'missing'}` };
}

function describeSource(source: OwnerSource): string {
  if (source instanceof SockDiagAddonLookup) return 'the sock_diag addon';
  if (source instanceof SockDiagOwnerLookup) return 'the sock_diag helper';
  return '/proc/net/tcp';
}

/**
 * Whether a built file is there, by stat() as gateway/server/transport/native.ts does: access() checks the real uid,
 * so with CAP_DAC_READ_SEARCH under a private directory it saw no file. Loading it then says what is wrong.
 */
function built(path: string, executable: boolean): boolean {
  try {
    const stats = statSync(path, { throwIfNoEntry: false });
    return stats !== undefined && stats.isFile() && (!executable || (stats.mode & 0o111) !== 0);
  } catch {
    return false;
  }
}

function readable(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}
