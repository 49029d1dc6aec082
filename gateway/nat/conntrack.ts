/**
 * The NAT fact: when no local socket owns the queried connection, the
 * kernel's connection tracking may know it as a translated one (a masqueraded
 * inner host, a container, a port forwarded inward), and names its inner side.
 * Asked through ctnetlink in the sock_diag addon (conntrack-core.h: one hash
 * lookup, answered at once), or by reading /proc/net/nf_conntrack where
 * ctnetlink is not allowed (no CAP_NET_ADMIN, e.g. after --run-as; the file is
 * opened at start, before privileges drop). Docs: docs/nat.md.
 *
 * @example
 * const nat = createNatSource({ mode: 'auto', onError: (error) => log.warn(error.message) });
 * await nat.start();
 * createQueryPipeline({ ..., sources: [nat] });
 */
import { createRequire } from 'node:module';
import { open, type FileHandle } from 'node:fs/promises';
import { constants } from 'node:os';
import type { Nat } from '../../protocol/index.js';
import { IdentgateError, type ErrorCodeOf } from '../../protocol/errors.js';
import { addressBytes, connectionEnds, type ConnectionEnds, type OwnerQuery } from '../owner/address.js';
import { sockDiagAddonPath } from '../owner/index.js';
import type { ConnectionFacts, FactSource } from '../pipeline.js';

export type NatLookupMode = 'auto' | 'on' | 'off';
export type NatLookupMethod = 'ctnetlink' | 'procfs' | 'off';

export type NatLookupErrorCode = NatLookupError['code'];

/** The base of the NAT lookup's errors; a lookup itself never throws: on a fault it answers null and reports one. */
export abstract class NatLookupError extends IdentgateError {
  abstract override readonly code: ErrorCodeOf<'nat'>;
  override readonly userError = true;
}

/** Mode 'on' where neither ctnetlink nor /proc/net/nf_conntrack can be used. */
export class NatLookupUnsupportedError extends NatLookupError {
  readonly code = 'ERR_NAT_LOOKUP_UNSUPPORTED';
}

/** The kernel refused a request, or the table could not be read; the lookup answered null. */
export class NatLookupKernelError extends NatLookupError {
  readonly code = 'ERR_NAT_LOOKUP_KERNEL';
}

/** The table took longer than the lookup's bound to read; the lookup answered null. */
export class NatLookupTimeoutError extends NatLookupError {
  readonly code = 'ERR_NAT_LOOKUP_TIMEOUT';
}

export interface NatSourceOptions {
  /** 'auto': ctnetlink, else the procfs table, else off; 'on': the same, but neither is an error at start. */
  mode: NatLookupMode;
  /** The sock_diag addon; by default the built one; null: never use ctnetlink. */
  addonPath?: string | null;
  /** The conntrack table as text; '/proc/net/nf_conntrack'. */
  procPath?: string;
  /** Bound on reading the table; 250 ms. */
  timeoutMs?: number;
  onError?: (error: NatLookupError) => void;
}

/** A FactSource giving `nat`, which says how it looks now. */
export interface NatSource extends FactSource {
  readonly method: NatLookupMethod;
  /** Opens the table file and ctnetlink socket now (before privileges drop). Never rejects. */
  start(): Promise<void>;
  close(): Promise<void>;
  /** The inner side of the connection, or null; at once with ctnetlink. Never throws. */
  find(query: OwnerQuery): Nat | Promise<Nat>;
}

/** What sockdiag-addon.c exports for conntrack (see its header comment). */
interface ConntrackAddon {
  open(): number;
  conntrack(
    out: Uint8Array,
    family: 4 | 6,
    remote: Uint8Array,
    remotePort: number,
    local: Uint8Array,
    localPort: number,
  ): number;
}

const require = createRequire(import.meta.url);
const DEFAULT_PROC_PATH = '/proc/net/nf_conntrack';

function errnoName(errno: number): string {
  const entry = Object.entries(constants.errno).find(([, value]) => value === errno);
  return entry ? entry[0] : `errno ${errno}`;
}

/**
 * The `nat` fact source for `mode`. With 'on', throws NatLookupError
 * (ERR_NAT_LOOKUP_UNSUPPORTED) from start() when neither way works here.
 *
 * @example
 * const nat = createNatSource({ mode: 'on' });
 * await nat.start();
 * await nat.find({ localAddress: '198.51.100.1', localPort: 40002, remoteAddress: '198.51.100.2', remotePort: 6667 });
 * // -> { innerAddress: '10.77.0.2', innerPort: 40002 }
 */
export function createNatSource(options: NatSourceOptions): NatSource {
  return new ConntrackSource(options);
}

class ConntrackSource implements NatSource {
  readonly name = 'nat';
  readonly #mode: NatLookupMode;
  readonly #addonPath: string | null;
  readonly #onError: (error: NatLookupError) => void;
  readonly #table: ProcConntrackTable;
  #addon: ConntrackAddon | null = null;
  #method: NatLookupMethod;
  readonly #out = new Uint8Array(20);

  constructor(options: NatSourceOptions) {
    this.#mode = options.mode;
    this.#addonPath = options.addonPath === undefined ? sockDiagAddonPath() : options.addonPath;
    this.#onError = options.onError ?? (() => {});
    this.#table = new ProcConntrackTable(options.procPath ?? DEFAULT_PROC_PATH, options.timeoutMs ?? 250);
    this.#method = options.mode === 'off' ? 'off' : 'ctnetlink';
  }

  get method(): NatLookupMethod {
    return this.#method;
  }

  async start(): Promise<void> {
    if (this.#mode === 'off') return;
    if (this.#addonPath !== null) {
      try {
        const addon = require(this.#addonPath) as ConntrackAddon;
        if (typeof addon.conntrack === 'function' && addon.open() === 0) this.#addon = addon;
      } catch {
        // The table file is the way, or nothing.
      }
    }
    // A probe: ctnetlink answers "no such entry" for a tuple nobody uses, unless it is refused (EPERM).
    const probe = this.#addon?.conntrack(this.#out, 4, PROBE, 1, PROBE, 1);
    if (this.#addon !== null && probe !== undefined && probe >= 0) {
      this.#method = 'ctnetlink';
    } else {
      this.#addon = null;
      const opened = await this.#table.open();
      this.#method = opened === null ? 'procfs' : 'off';
      if (opened !== null && this.#mode === 'on') {
        const why = probe === undefined ? 'the sock_diag addon is not built' : `ctnetlink: ${errnoName(-probe)}`;
        throw new NatLookupUnsupportedError(
          `NAT lookup is on but neither ctnetlink (${why}) nor ${this.#table.path} (${opened}) can be used; run as root or with CAP_NET_ADMIN, load nf_conntrack, or set --nat-lookup auto or off`,
        );
      }
    }
  }

  async close(): Promise<void> {
    this.#addon = null;
    await this.#table.close();
  }

  gatherNow(query: OwnerQuery, facts: ConnectionFacts): Partial<ConnectionFacts> | undefined {
    if (facts.owner !== null || this.#method === 'off') return NO_FACTS;
    const found = this.find(query);
    return found instanceof Promise ? undefined : { nat: found };
  }

  async gather(query: OwnerQuery, facts: ConnectionFacts): Promise<Partial<ConnectionFacts>> {
    if (facts.owner !== null || this.#method === 'off') return NO_FACTS;
    return { nat: await this.find(query) };
  }

  find(query: OwnerQuery): Nat | Promise<Nat> {
    const ends = connectionEnds(query);
    if (ends === null || this.#method === 'off') return null;
    const addon = this.#addon;
    if (addon === null) return this.#table.find(ends).catch((error: unknown) => this.#failed(error));
    const out = this.#out;
    const rc = addon.conntrack(out, ends.family, ends.remote, ends.remotePort, ends.local, ends.localPort);
    if (rc === 1) {
      const octets = ends.family === 4 ? 4 : 16;
      return { innerAddress: addressText(out.subarray(0, octets)), innerPort: (out[16]! << 8) | out[17]! };
    }
    if (rc === 0) return null;
    return this.#failed(new NatLookupKernelError(`ctnetlink request failed: ${errnoName(-rc)}`));
  }

  #failed(error: unknown): null {
    this.#onError(error instanceof NatLookupError ? error : new NatLookupKernelError(String(error), { cause: error }));
    return null;
  }
}

const NO_FACTS: Partial<ConnectionFacts> = {};
const PROBE = Uint8Array.of(0, 0, 0, 0);

/**
 * /proc/net/nf_conntrack, read whole per lookup (it is a seq_file: the
 * kernel renders it on read, so it is always current) from a descriptor
 * opened once. Lookups that arrive while a read runs share the next read.
 * Each tcp line holds the original tuple, then the reply tuple:
 *   ipv4 2 tcp 6 431999 ESTABLISHED src=10.0.0.2 dst=192.0.2.9 sport=40000 dport=6667
 *     src=192.0.2.9 dst=192.0.2.1 sport=6667 dport=40000 [ASSURED] mark=0 zone=0 use=2
 * IPv6 addresses are printed with all eight groups of four digits.
 */
export class ProcConntrackTable {
  readonly path: string;
  readonly #timeoutMs: number;
  #handle: FileHandle | null = null;
  #buffer = Buffer.alloc(1 << 16);
  #next: Promise<Buffer> | null = null;
  #reading: Promise<Buffer> | null = null;

  constructor(path: string, timeoutMs: number) {
    this.path = path;
    this.#timeoutMs = timeoutMs;
  }

  /** Opens the file; null, or why it cannot be read. */
  async open(): Promise<string | null> {
    try {
      this.#handle ??= await open(this.path, 'r');
      return null;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code ?? String(error);
    }
  }

  async close(): Promise<void> {
    const handle = this.#handle;
    this.#handle = null;
    await handle?.close();
  }

  /**
   * The inner side of the connection with these ends (remote the querier), or null.
   *
   * @example
   * await table.find(connectionEnds(query)!) // { innerAddress: '10.77.0.2', innerPort: 40002 }
   */
  async find(ends: ConnectionEnds): Promise<Nat> {
    const text = await this.#read();
    const ours = tupleText(ends.remote, ends.remotePort, ends.local, ends.localPort);
    for (let at = text.indexOf(ours); at !== -1; at = text.indexOf(ours, at + 1)) {
      const lineStart = text.lastIndexOf(10, at) + 1;
      let lineEnd = text.indexOf(10, at);
      if (lineEnd === -1) lineEnd = text.length;
      const line = text.toString('latin1', lineStart, lineEnd);
      const nat = innerSide(line, ours);
      if (nat !== undefined) return nat;
    }
    return null;
  }

  /** The next whole read of the table: lookups asked while one runs wait for the one after it. */
  #read(): Promise<Buffer> {
    if (this.#reading === null) return (this.#reading = this.#readOnce().finally(() => (this.#reading = null)));
    this.#next ??= this.#reading
      .catch(() => undefined)
      .then(() => {
        this.#next = null;
        return this.#read();
      });
    return this.#next;
  }

  async #readOnce(): Promise<Buffer> {
    const handle = this.#handle;
    if (handle === null) throw new NatLookupKernelError(`${this.path} is not open`);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new NatLookupTimeoutError(`reading ${this.path} took over ${this.#timeoutMs} ms`)),
        this.#timeoutMs,
      );
    });
    try {
      return await Promise.race([this.#readAll(handle), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async #readAll(handle: FileHandle): Promise<Buffer> {
    let length = 0;
    for (;;) {
      if (length === this.#buffer.length) {
        const bigger = Buffer.alloc(this.#buffer.length * 2);
        this.#buffer.copy(bigger, 0, 0, length);
        this.#buffer = bigger;
      }
      // Positioned reads (pread) from 0: the kernel renders the table afresh.
      const { bytesRead } = await handle.read(this.#buffer, length, this.#buffer.length - length, length);
      if (bytesRead === 0) return this.#buffer.subarray(0, length);
      length += bytesRead;
    }
  }
}

/** How /proc/net/nf_conntrack prints one direction's tuple. */
function tupleText(src: Uint8Array, sport: number, dst: Uint8Array, dport: number): string {
  return `src=${procAddress(src)} dst=${procAddress(dst)} sport=${sport} dport=${dport} `;
}

function procAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join('.');
  let text = '';
  for (let i = 0; i < 16; i += 2) {
    if (i > 0) text += ':';
    text += ((bytes[i]! << 8) | bytes[i + 1]!).toString(16).padStart(4, '0');
  }
  return text;
}

const TUPLE = /src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+) /g;

/** The inner side from one table line holding `ours`; null when untranslated; undefined when `ours` is not a tuple of a tcp line. */
function innerSide(line: string, ours: string): Nat | undefined {
  if (!/^\S+\s+\d+\s+tcp\s/.test(line)) return undefined;
  const tuples = [...line.matchAll(TUPLE)];
  if (tuples.length < 2) return undefined;
  const [orig, reply] = tuples as [RegExpMatchArray, RegExpMatchArray];
  // Ours is the reply direction: an inner host connected out (source NAT); the original one: the querier connected in.
  const inner = reply[0] === ours ? orig : orig[0] === ours ? reply : null;
  if (inner === null) return undefined;
  const other = inner === orig ? reply : orig;
  // Untranslated: the inner side is this host itself (the reply's destination address and port).
  if (inner[1] === other[2] && inner[3] === other[4]) return null;
  const bytes = addressBytes(inner[1]!);
  if (bytes === null) return undefined;
  return { innerAddress: addressText(bytes), innerPort: Number(inner[3]) };
}

/**
 * An address in its usual text form (RFC 5952 for IPv6: lower case, the longest run of zero groups as "::").
 *
 * @example
 * addressText(Uint8Array.of(0xfd, 0x77, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2)) // 'fd77:1::2'
 */
export function addressText(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join('.');
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  let bestAt = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let end = i;
    while (end < 8 && groups[end] === 0) end++;
    if (end - i > bestLength) [bestAt, bestLength] = [i, end - i];
    i = end;
  }
  const hex = (part: number[]) => part.map((group) => group.toString(16)).join(':');
  if (bestAt === -1) return hex(groups);
  return `${hex(groups.slice(0, bestAt))}::${hex(groups.slice(bestAt + bestLength))}`;
}
