/**
 * The live claims and pending holds, per uid, with the bounds that keep one uid from crowding out the rest;
 * a claim ends with its connection (`recheck()`). Keys and bounds: docs/internals.md.
 *
 * @example
 * const registry = new ClaimRegistry({ owners });
 * registry.add(1000, { local, remote, user: 'alice' });        // after the API checked the connection is uid 1000's
 * registry.claimFor(query, 1000)?.claim;                        // { user: 'alice' }
 */
import { randomBytes } from 'node:crypto';
import type { Claim } from '../../protocol/wire.js';
import { addressBytes, formatAddress, type OwnerQuery } from '../owner/address.js';
import type { OwnerLookup } from '../owner/index.js';

/** One end of a TCP connection as the API takes it. */
export interface Endpoint {
  address: string;
  port: number;
}

/** What a caller asks to claim (checked by the API's schema). */
export interface ClaimInput {
  local: Endpoint;
  remote: Endpoint;
  user: string;
  ident?: string | undefined;
}

export interface ClaimRecord {
  readonly id: string;
  readonly uid: number;
  /** Canonical addresses (IPv4 for IPv4-mapped IPv6, full IPv6 otherwise). */
  readonly local: Endpoint;
  readonly remote: Endpoint;
  readonly user: string;
  readonly ident: string | undefined;
  /** Milliseconds since the epoch. */
  readonly createdAt: number;
  /** What a query's request carries; built once, shared by every query. */
  readonly facts: { readonly claim: NonNullable<Claim> };
  readonly key: string;
}

export interface HoldRecord {
  readonly id: string;
  readonly uid: number;
  readonly remote: Endpoint;
  /** Milliseconds since the epoch. */
  readonly expiresAt: number;
  readonly remoteKey: string;
}

export const CLAIMS_DEFAULTS = {
  /** The socket's name in systemd's RUNTIME_DIRECTORY, where the API is on by default. */
  socketName: 'claims.sock',
  /** Every local user may connect; each only ever touches its own connections. */
  socketMode: 0o666,
  /** Longest a held query waits for its claim (at most half the deadline). */
  waitMs: 500,
  /** Live claims one uid may hold; 429 beyond. */
  claimsPerUid: 1024,
  /** Live pending holds one uid may hold; 429 beyond. */
  holdsPerUid: 64,
  /** Longest pending hold. */
  maxHoldMs: 60_000,
  /** Every claim's connection is asked about again within this time. */
  recheckMs: 2_000,
} as const;

export interface ClaimRegistryOptions {
  owners: OwnerLookup;
  claimsPerUid?: number;
  holdsPerUid?: number;
  recheckMs?: number;
  /** Told about each claim dropped because its connection ended. */
  onEnded?: (claim: ClaimRecord) => void;
  /** The clock; Date.now. */
  now?: () => number;
}

export type AddResult = { ok: true; claim: ClaimRecord } | { ok: false; reason: 'too_many_claims' };
export type HoldResult = { ok: true; hold: HoldRecord } | { ok: false; reason: 'too_many_holds' };

/** A query waiting for its connection to be claimed. */
interface Waiter {
  readonly uid: number;
  resolve: (claim: ClaimRecord | null) => void;
}

/** Where a canonical address is remembered: a gateway sees the same few addresses again and again. */
const canonicalCache = new Map<string, string | null>();

/**
 * The one text form of an IP address: the dotted quad for IPv4 and IPv4-mapped IPv6, eight hex groups for
 * other IPv6; null when it is not an IP address.
 *
 * @example
 * canonicalAddress('::ffff:192.0.2.1') // '192.0.2.1'
 * canonicalAddress('2001:db8::1')     // '2001:db8:0:0:0:0:0:1'
 */
export function canonicalAddress(address: string): string | null {
  let canonical = canonicalCache.get(address);
  if (canonical === undefined) {
    const bytes = addressBytes(address);
    canonical = bytes === null ? null : formatAddress(bytes);
    if (canonicalCache.size >= 4096) canonicalCache.clear();
    canonicalCache.set(address, canonical);
  }
  return canonical;
}

function endsKey(localAddress: string, localPort: number, remoteAddress: string, remotePort: number): string {
  return `${localAddress} ${localPort} ${remoteAddress} ${remotePort}`;
}

/** The key of a queried connection, or null when its addresses are not IP addresses. */
function queryKey(query: OwnerQuery): string | null {
  const local = canonicalAddress(query.localAddress);
  const remote = canonicalAddress(query.remoteAddress);
  if (local === null || remote === null) return null;
  return endsKey(local, query.localPort, remote, query.remotePort);
}

/** Claims re-checked between two turns of the event loop by recheck(). */
const RECHECK_SLICE = 256;
/** The timer's period: each tick re-checks a share of the claims. */
const RECHECK_TICK_MS = 100;
/**
 * Most owner lookups a second the timer makes (each ~5-20 µs of CPU with the sock_diag addon): up to
 * recheckMs × RECHECK_RATE claims (4,000) are each re-checked every recheckMs; more take proportionally longer
 * (10,000: every 5 s).
 */
export const RECHECK_RATE = 2_000;

function newId(prefix: string): string {
  return `${prefix}_${randomBytes(9).toString('base64url')}`;
}

export class ClaimRegistry {
  readonly #owners: OwnerLookup;
  readonly #claimsPerUid: number;
  readonly #holdsPerUid: number;
  readonly #recheckMs: number;
  readonly #onEnded: (claim: ClaimRecord) => void;
  readonly #now: () => number;
  readonly #byKey = new Map<string, ClaimRecord>();
  readonly #claimsByUid = new Map<number, Map<string, ClaimRecord>>();
  readonly #holdsByRemote = new Map<string, Set<HoldRecord>>();
  readonly #holdsByUid = new Map<number, Map<string, HoldRecord>>();
  readonly #waiters = new Map<string, Set<Waiter>>();
  #timer: NodeJS.Timeout | undefined;
  #rechecking: Promise<number> | undefined;
  /** The timer's current round over the claims, and how far it got. */
  #round: ClaimRecord[] = [];
  #cursor = 0;
  #roundStartedAt = -Infinity;

  constructor(options: ClaimRegistryOptions) {
    this.#owners = options.owners;
    this.#claimsPerUid = options.claimsPerUid ?? CLAIMS_DEFAULTS.claimsPerUid;
    this.#holdsPerUid = options.holdsPerUid ?? CLAIMS_DEFAULTS.holdsPerUid;
    this.#recheckMs = options.recheckMs ?? CLAIMS_DEFAULTS.recheckMs;
    this.#onEnded = options.onEnded ?? (() => {});
    this.#now = options.now ?? Date.now;
  }

  /** How many claims are live. */
  get size(): number {
    return this.#byKey.size;
  }

  /** How many pending holds are live. */
  get holds(): number {
    const now = this.#now();
    let count = 0;
    for (const mine of this.#holdsByUid.values()) for (const hold of mine.values()) if (hold.expiresAt > now) count++;
    return count;
  }

  /** How many queries wait for a claim. */
  get waiting(): number {
    let count = 0;
    for (const waiters of this.#waiters.values()) count += waiters.size;
    return count;
  }

  /** Starts re-checking claims: each within `recheckMs`, or longer beyond RECHECK_RATE lookups a second. */
  start(): void {
    this.#timer ??= setInterval(() => this.#tick(), Math.min(RECHECK_TICK_MS, this.#recheckMs)).unref();
  }

  /** Stops the re-checks and answers every waiting query (unclaimed). */
  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#round = [];
    for (const waiters of this.#waiters.values()) for (const waiter of waiters) waiter.resolve(null);
    this.#waiters.clear();
  }

  /**
   * Records a claim by `uid`, replacing any earlier claim on the same connection (the caller has checked,
   * through the owner lookup, that the connection is uid's now, so an earlier one is stale or uid's own).
   */
  add(uid: number, input: ClaimInput): AddResult {
    const local = { address: canonicalAddress(input.local.address)!, port: input.local.port };
    const remote = { address: canonicalAddress(input.remote.address)!, port: input.remote.port };
    const key = endsKey(local.address, local.port, remote.address, remote.port);
    const earlier = this.#byKey.get(key);
    const own = this.#claimsByUid.get(uid);
    const replacesOwn = earlier !== undefined && earlier.uid === uid;
    if (!replacesOwn && own !== undefined && own.size >= this.#claimsPerUid) {
      return { ok: false, reason: 'too_many_claims' };
    }
    if (earlier !== undefined) this.#remove(earlier);
    const claim: NonNullable<Claim> =
      input.ident === undefined ? { user: input.user } : { user: input.user, ident: input.ident };
    const record: ClaimRecord = {
      id: newId('c'),
      uid,
      local,
      remote,
      user: input.user,
      ident: input.ident,
      createdAt: this.#now(),
      facts: Object.freeze({ claim: Object.freeze(claim) }),
      key,
    };
    this.#byKey.set(key, record);
    let mine = this.#claimsByUid.get(uid);
    if (mine === undefined) this.#claimsByUid.set(uid, (mine = new Map()));
    mine.set(record.id, record);
    const waiters = this.#waiters.get(key);
    if (waiters !== undefined) {
      for (const waiter of waiters) if (waiter.uid === uid) waiter.resolve(record);
    }
    return { ok: true, claim: record };
  }

  /** uid's claims, oldest first. */
  list(uid: number): ClaimRecord[] {
    return [...(this.#claimsByUid.get(uid)?.values() ?? [])];
  }

  /** Ends uid's claim `id`; false when uid holds no such claim (another uid's is not found either). */
  release(uid: number, id: string): boolean {
    const record = this.#claimsByUid.get(uid)?.get(id);
    if (record === undefined) return false;
    this.#remove(record);
    return true;
  }

  /** Ends all of uid's claims; how many there were. */
  releaseAll(uid: number): number {
    const mine = this.#claimsByUid.get(uid);
    if (mine === undefined) return 0;
    const count = mine.size;
    for (const record of [...mine.values()]) this.#remove(record);
    return count;
  }

  /** Holds queries about uid's unclaimed connections to `remote` for `ttlMs`. */
  hold(uid: number, remote: Endpoint, ttlMs: number): HoldResult {
    const now = this.#now();
    let mine = this.#holdsByUid.get(uid);
    if (mine !== undefined) {
      for (const hold of mine.values()) if (hold.expiresAt <= now) this.#removeHold(hold);
      if (mine.size >= this.#holdsPerUid) return { ok: false, reason: 'too_many_holds' };
    }
    const address = canonicalAddress(remote.address)!;
    const record: HoldRecord = {
      id: newId('h'),
      uid,
      remote: { address, port: remote.port },
      expiresAt: now + ttlMs,
      remoteKey: `${address} ${remote.port}`,
    };
    if (mine === undefined) this.#holdsByUid.set(uid, (mine = new Map()));
    mine.set(record.id, record);
    let forRemote = this.#holdsByRemote.get(record.remoteKey);
    if (forRemote === undefined) this.#holdsByRemote.set(record.remoteKey, (forRemote = new Set()));
    forRemote.add(record);
    setTimeout(() => this.#removeHold(record), ttlMs + 1).unref();
    return { ok: true, hold: record };
  }

  /** Ends uid's hold `id`; false when uid holds no such hold. */
  releaseHold(uid: number, id: string): boolean {
    const record = this.#holdsByUid.get(uid)?.get(id);
    if (record === undefined) return false;
    this.#removeHold(record);
    return true;
  }

  /**
   * The query-time lookup: the claim on exactly this connection when `ownerUid` made it; null when there is
   * none and no hold applies; undefined when there is none yet but one of ownerUid's holds covers the remote
   * end (then `waitFor` is the way). A Map get, and a second one only while holds exist.
   */
  claimFor(query: OwnerQuery, ownerUid: number): ClaimRecord | null | undefined {
    const key = queryKey(query);
    if (key === null) return null;
    const record = this.#byKey.get(key);
    if (record !== undefined && record.uid === ownerUid) return record;
    if (this.#holdsByRemote.size === 0) return null;
    return this.#holdLeft(query, ownerUid) > 0 ? undefined : null;
  }

  /**
   * Waits for ownerUid's claim on this connection, at most `waitMs` and no longer than the hold that covers
   * it lasts; null when none came.
   */
  waitFor(query: OwnerQuery, ownerUid: number, waitMs: number): Promise<ClaimRecord | null> {
    const found = this.claimFor(query, ownerUid);
    if (found !== undefined) return Promise.resolve(found);
    const key = queryKey(query)!;
    const ms = Math.min(waitMs, this.#holdLeft(query, ownerUid));
    return new Promise((resolve) => {
      let waiters = this.#waiters.get(key);
      if (waiters === undefined) this.#waiters.set(key, (waiters = new Set()));
      const waiter: Waiter = {
        uid: ownerUid,
        resolve: (record) => {
          clearTimeout(timer);
          const set = this.#waiters.get(key);
          set?.delete(waiter);
          if (set?.size === 0) this.#waiters.delete(key);
          resolve(record);
        },
      };
      const timer = setTimeout(() => waiter.resolve(null), ms);
      waiters.add(waiter);
    });
  }

  /**
   * Asks the owner lookup about every claim's connection and drops those no longer owned by the uid that
   * claimed them (closed, or in another's hands). Resolves with how many were dropped. Runs one at a time.
   */
  recheck(): Promise<number> {
    this.#rechecking ??= this.#recheckAll().finally(() => (this.#rechecking = undefined));
    return this.#rechecking;
  }

  async #recheckAll(): Promise<number> {
    const records = [...this.#byKey.values()];
    let dropped = 0;
    for (let i = 0; i < records.length; i += RECHECK_SLICE) {
      // A slice at a time, so that queries are answered in between (10,000 claims are ~10,000 kernel lookups).
      if (i > 0) await new Promise((resolve) => setImmediate(resolve));
      dropped += await this.#recheckSome(records.slice(i, i + RECHECK_SLICE));
    }
    return dropped;
  }

  /**
   * The timer's share: the next few claims of the current round, so that a round over every claim takes
   * `recheckMs`, or longer when that would exceed RECHECK_RATE lookups a second (the cost stays bounded).
   */
  #tick(): void {
    if (this.#cursor >= this.#round.length) {
      if (performance.now() - this.#roundStartedAt < this.#recheckMs) return;
      this.#round = [...this.#byKey.values()];
      this.#cursor = 0;
      this.#roundStartedAt = performance.now();
    }
    const perTick = Math.min(
      Math.ceil((RECHECK_RATE * RECHECK_TICK_MS) / 1000),
      Math.ceil((this.#round.length * RECHECK_TICK_MS) / this.#recheckMs),
    );
    const some = this.#round.slice(this.#cursor, this.#cursor + perTick);
    this.#cursor += perTick;
    if (this.#cursor >= this.#round.length) this.#round = [];
    void this.#recheckSome(some);
  }

  /** Drops those of `records` whose connection is gone or no longer owned by the uid that claimed it. */
  async #recheckSome(records: readonly ClaimRecord[]): Promise<number> {
    let dropped = 0;
    const later: Promise<void>[] = [];
    for (const record of records) {
      if (this.#byKey.get(record.key) !== record) continue; // released meanwhile
      const query: OwnerQuery = {
        localAddress: record.local.address,
        localPort: record.local.port,
        remoteAddress: record.remote.address,
        remotePort: record.remote.port,
      };
      const settle = (owner: { uid: number } | null) => {
        if ((owner === null || owner.uid !== record.uid) && this.#byKey.get(record.key) === record) {
          this.#remove(record);
          dropped += 1;
          this.#onEnded(record);
        }
      };
      const now = this.#owners.lookupNow(query);
      if (now !== undefined) settle(now);
      else later.push(this.#owners.lookup(query).then(settle));
    }
    await Promise.all(later);
    return dropped;
  }

  /** How much longer ownerUid's longest hold on the query's remote end lasts, in ms (0: none). */
  #holdLeft(query: OwnerQuery, ownerUid: number): number {
    const remote = canonicalAddress(query.remoteAddress);
    const holds = remote === null ? undefined : this.#holdsByRemote.get(`${remote} ${query.remotePort}`);
    if (holds === undefined) return 0;
    const now = this.#now();
    let left = 0;
    for (const hold of holds) if (hold.uid === ownerUid) left = Math.max(left, hold.expiresAt - now);
    return left;
  }

  #remove(record: ClaimRecord): void {
    if (this.#byKey.get(record.key) === record) this.#byKey.delete(record.key);
    const mine = this.#claimsByUid.get(record.uid);
    mine?.delete(record.id);
    if (mine?.size === 0) this.#claimsByUid.delete(record.uid);
  }

  #removeHold(record: HoldRecord): void {
    const mine = this.#holdsByUid.get(record.uid);
    if (mine?.get(record.id) !== record) return;
    mine.delete(record.id);
    if (mine.size === 0) this.#holdsByUid.delete(record.uid);
    const forRemote = this.#holdsByRemote.get(record.remoteKey);
    forRemote?.delete(record);
    if (forRemote?.size === 0) this.#holdsByRemote.delete(record.remoteKey);
  }
}
