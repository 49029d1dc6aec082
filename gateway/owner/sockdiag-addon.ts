/**
 * Owner lookup through NETLINK_SOCK_DIAG inside the process (the sockdiag-addon.c Node-API addon): one exact,
 * synchronous kernel request per lookup; user names from NSS on the thread pool, remembered for `nameTtlMs`.
 *
 * @example
 * const diag = new SockDiagAddonLookup({ addonPath: 'dist/owner/identgate-sockdiag.node' });
 * await diag.find(connectionEnds({ localAddress: '127.0.0.1', localPort: 6667, remoteAddress: '127.0.0.1', remotePort: 40000 })!)
 * // -> { uid: 1000, userName: 'alice' }
 * await diag.close();
 */
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import type { ConnectionEnds } from './address.js';
import { OwnerLookupError, OwnerLookupKernelError, OwnerLookupUnsupportedError } from './errors.js';
import type { Owner } from './procfs.js';
import { isOwnedConnection } from './tcp-state.js';

/** What sockdiag-addon.c exports (see its header comment). */
interface SockDiagAddon {
  open(): number;
  lookup(
    out: Uint32Array,
    family: 4 | 6,
    local: Uint8Array,
    localPort: number,
    remote: Uint8Array,
    remotePort: number,
  ): number;
  lookupPorts(
    out: Uint32Array,
    family: 4 | 6,
    localPort: number,
    remotePort: number,
    except: Uint8Array | null,
  ): number;
  userName(uid: number): Promise<string | null>;
  close(): void;
}

export interface SockDiagAddonLookupOptions {
  /** The built addon (gateway/owner/build-helper.mjs). */
  addonPath: string;
  /** How long a user name is remembered; 1000 ms. */
  nameTtlMs?: number;
}

interface CachedName {
  /** The name once NSS has answered; the promise of it until then. */
  name: string | null | Promise<string | null>;
  readonly expiresAt: number;
}

const require = createRequire(import.meta.url);

function errnoName(errno: number): string {
  const entry = Object.entries(constants.errno).find(([, value]) => value === errno);
  return entry ? entry[0] : `errno ${errno}`;
}

export class SockDiagAddonLookup {
  readonly method = 'sock_diag';
  readonly #addonPath: string;
  readonly #nameTtlMs: number;
  readonly #names = new Map<number, CachedName>();
  /** Where the addon writes state, uid and inode. */
  readonly #found = new Uint32Array(3);
  /** Where the addon writes up to four sockets found by their ports. */
  readonly #byPorts = new Uint32Array(12);
  #addon: SockDiagAddon | null = null;
  #unsupported: OwnerLookupError | null = null;
  #lookups = 0;
  #nameLookups = 0;

  constructor(options: SockDiagAddonLookupOptions) {
    this.#addonPath = options.addonPath;
    this.#nameTtlMs = options.nameTtlMs ?? 1000;
  }

  /** How many sock_diag requests were made; lets tests see that lookups reach the kernel. */
  get lookups(): number {
    return this.#lookups;
  }

  /** How many user names were asked of NSS; lets tests see the name cache. */
  get nameLookups(): number {
    return this.#nameLookups;
  }

  /**
   * Loads the addon and opens its netlink socket. Never rejects: a failure
   * shows in the next find().
   *
   * @example
   * await diag.start();
   */
  async start(): Promise<void> {
    try {
      this.#ready();
    } catch {
      // find() reports it.
    }
  }

  /**
   * The owner of the connection with these ends, or null when no process
   * holds such a connection: at once, or as a promise while the owner's user
   * name is asked of NSS. Throws an OwnerLookupError: code
   * ERR_OWNER_LOOKUP_UNSUPPORTED when the addon cannot load or the kernel has
   * no sock_diag, ERR_OWNER_LOOKUP_KERNEL when the kernel refused the request.
   *
   * @example
   * await diag.find(ends) // { uid: 1000, userName: 'alice' }
   */
  find(ends: ConnectionEnds): Owner | null | Promise<Owner | null> {
    const addon = this.#ready();
    this.#lookups += 1;
    const found = this.#found;
    const rc = addon.lookup(found, ends.family, ends.local, ends.localPort, ends.remote, ends.remotePort);
    if (rc < 0) throw new OwnerLookupKernelError(`sock_diag request failed: ${errnoName(-rc)}`);
    if (rc === 0 || !isOwnedConnection(found[0]!, found[2]!)) return null;
    const uid = found[1]!;
    const userName = this.#userName(addon, uid);
    if (userName instanceof Promise) return userName.then((name) => ({ uid, userName: name }));
    return { uid, userName };
  }

  /**
   * The owner of the one connection of `family` whose local port is
   * localPort and remote port remotePort, whatever its addresses (its remote
   * address not `except`): what a query forwarded by a NAT router names.
   * Null when no such connection is owned, or when several are and their
   * owners differ (the two ports do not say which one was meant). Throws as
   * find() does.
   *
   * @example
   * await diag.findByPorts(4, 40002, 6667, routerBytes) // { uid: 1000, userName: 'alice' }
   */
  findByPorts(
    family: 4 | 6,
    localPort: number,
    remotePort: number,
    except: Uint8Array | null,
  ): Owner | null | Promise<Owner | null> {
    const addon = this.#ready();
    this.#lookups += 1;
    const found = this.#byPorts;
    const count = addon.lookupPorts(found, family, localPort, remotePort, except);
    if (count < 0) throw new OwnerLookupKernelError(`sock_diag dump failed: ${errnoName(-count)}`);
    let uid: number | null = null;
    for (let i = 0; i < Math.min(count, 4); i++) {
      if (!isOwnedConnection(found[i * 3]!, found[i * 3 + 2]!)) continue;
      if (uid !== null && uid !== found[i * 3 + 1]) return null;
      uid = found[i * 3 + 1]!;
    }
    // More than four candidates: too many to tell apart; none owned: nobody.
    if (uid === null || count > 4) return null;
    const owner = uid;
    const userName = this.#userName(addon, owner);
    if (userName instanceof Promise) return userName.then((name) => ({ uid: owner, userName: name }));
    return { uid: owner, userName };
  }

  /**
   * Closes the netlink socket; a later find() opens a new one.
   *
   * @example
   * await diag.close();
   */
  async close(): Promise<void> {
    this.#addon?.close();
    this.#addon = null;
    this.#names.clear();
  }

  #ready(): SockDiagAddon {
    if (this.#addon !== null) return this.#addon;
    if (this.#unsupported !== null) throw this.#unsupported;
    let addon: SockDiagAddon;
    try {
      addon = require(this.#addonPath) as SockDiagAddon;
    } catch (error) {
      throw this.#giveUp(
        `sock_diag addon ${this.#addonPath} does not load: ${(error as Error).message.split('\n')[0]}`,
        error,
      );
    }
    const rc = addon.open();
    if (rc < 0) throw this.#giveUp(`NETLINK_SOCK_DIAG unavailable: ${errnoName(-rc)}`);
    this.#addon = addon;
    return addon;
  }

  #giveUp(message: string, cause?: unknown): OwnerLookupError {
    this.#unsupported = new OwnerLookupUnsupportedError(message, cause === undefined ? undefined : { cause });
    return this.#unsupported;
  }

  #userName(addon: SockDiagAddon, uid: number): string | null | Promise<string | null> {
    const now = performance.now();
    const cached = this.#names.get(uid);
    if (cached !== undefined && cached.expiresAt > now) return cached.name;
    this.#nameLookups += 1;
    if (this.#names.size >= 4096) this.#names.clear(); // bound: at most a second's worth of distinct uids
    const entry: CachedName = { name: null, expiresAt: now + this.#nameTtlMs };
    // NSS trouble is not a lookup failure: the owner is known, only its name is not.
    entry.name = addon.userName(uid).then(
      (name) => (entry.name = name),
      () => (entry.name = null),
    );
    this.#names.set(uid, entry);
    return entry.name;
  }
}
