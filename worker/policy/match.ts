/**
 * The built-in rule conditions, compiled to integer ranges, address masks and interned name matchers,
 * and the per-decision Facts they are tested against (docs/internals.md).
 */
import type { LookupRequest } from '../../protocol/wire.js';
import { IPV6, NOT_AN_ADDRESS, parseAddress, parseCidr } from './address.js';
import { compileNames, compileRanges, matchesNames, parseRange, type NameMatcher } from './patterns.js';
import type { OneOrMany, PolicyMatch, RangeSpec } from './schema.js';
import type { ConditionDefinition } from './conditions/condition.js';
import { CONDITIONS } from './conditions/index.js';

/** The built-in conditions, as in the policy document; index = condition code. */
const BUILTIN_CONDITIONS = [
  'none',
  'ownerKnown',
  'serverPort',
  'clientPort',
  'ownerUid',
  'gateway',
  'ownerName',
  'serverAddress',
  'clientAddress',
] as const;
export type Condition = Exclude<(typeof BUILTIN_CONDITIONS)[number], 'none'> | (typeof CONDITIONS)[number]['name'];
/** Every condition name; index = condition code (the built-ins', then those of conditions/). */
export const CONDITION_NAMES: readonly string[] = [
  ...BUILTIN_CONDITIONS,
  ...CONDITIONS.map((condition: ConditionDefinition) => condition.name),
];

const OWNER_KNOWN = 1;
const SERVER_PORT = 2;
const CLIENT_PORT = 3;
const OWNER_UID = 4;
const GATEWAY = 5;
const OWNER_NAME = 6;
const SERVER_ADDRESS = 7;
const CLIENT_ADDRESS = 8;

const ANY = -1;

function list<T>(value: OneOrMany<T> | undefined): T[] | undefined {
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value : [value];
}

/** Interns name pattern lists and remembers, per decision, which of them matched. */
export class NameTable {
  private readonly ids = new Map<string, number>();
  readonly matchers: NameMatcher[] = [];
  private stamps = new Uint32Array(0);
  private results = new Uint8Array(0);
  private generation = 0;

  intern(patterns: readonly string[]): number {
    const key = JSON.stringify([...patterns].sort());
    let id = this.ids.get(key);
    if (id === undefined) {
      id = this.matchers.length;
      this.matchers.push(compileNames(patterns));
      this.ids.set(key, id);
    }
    return id;
  }

  /** Starts a new decision: forgets every remembered result in O(1). */
  reset(): void {
    if (this.stamps.length !== this.matchers.length) {
      this.stamps = new Uint32Array(this.matchers.length);
      this.results = new Uint8Array(this.matchers.length);
    }
    if (++this.generation === 0xffffffff) {
      this.stamps.fill(0);
      this.generation = 1;
    }
  }

  test(id: number, subject: string): boolean {
    if (this.stamps[id] === this.generation) return this.results[id] === 1;
    const result = matchesNames(this.matchers[id]!, subject);
    this.stamps[id] = this.generation;
    this.results[id] = result ? 1 : 0;
    return result;
  }
}

/** CIDR blocks: v4 as (network, mask) pairs, v6 as 4 (network, mask) word pairs per block. */
export interface AddressBlocks {
  readonly v4: Int32Array;
  readonly v6: Int32Array;
}

export interface CompiledMatch {
  /** ANY, 0 (owner unknown) or 1 (owner known). */
  readonly ownerKnown: number;
  readonly serverPorts: Float64Array | null;
  readonly clientPorts: Float64Array | null;
  readonly ownerUids: Float64Array | null;
  /** Interned NameTable ids, ANY when not given. */
  readonly gateway: number;
  readonly ownerName: number;
  readonly serverAddress: AddressBlocks | null;
  readonly clientAddress: AddressBlocks | null;
  /** The conditions of conditions/ this rule uses, tested after the built-ins; usually none. */
  readonly extra: readonly CompiledCondition[];
}

export interface CompiledCondition {
  /** Index into CONDITION_NAMES. */
  readonly code: number;
  holds(request: LookupRequest): boolean;
}

function extraConditions(match: PolicyMatch | undefined): CompiledCondition[] {
  const extra: CompiledCondition[] = [];
  CONDITIONS.forEach((condition: ConditionDefinition, index) => {
    const value = (match as Record<string, unknown> | undefined)?.[condition.name];
    if (value === undefined) return;
    const compiled = condition.compile(value);
    extra.push({ code: BUILTIN_CONDITIONS.length + index, holds: (request) => condition.holds(compiled, request) });
  });
  return extra;
}

function ranges(specs: RangeSpec[] | undefined, min: number, max: number): Float64Array | null {
  if (!specs) return null;
  return compileRanges(
    specs.map((spec) => {
      const parsed = parseRange(spec, min, max);
      if (typeof parsed === 'string') throw new TypeError(`unparsed policy: ${parsed}`);
      return parsed;
    }),
  );
}

function addresses(cidrs: string[] | undefined): AddressBlocks | null {
  if (!cidrs) return null;
  const v4: number[] = [];
  const v6: number[] = [];
  for (const text of cidrs) {
    const block = parseCidr(text);
    if (typeof block === 'string') throw new TypeError(`unparsed policy: ${block}`);
    if ('v4' in block) v4.push(...block.v4);
    else v6.push(...block.v6);
  }
  return { v4: Int32Array.from(v4), v6: Int32Array.from(v6) };
}

/** Compiles a parsed match. Gateway and owner-name lists are interned in their own tables. */
export function compileMatch(
  match: PolicyMatch | undefined,
  gateways: NameTable,
  ownerNames: NameTable,
): CompiledMatch {
  const gateway = list(match?.gateway);
  const ownerName = list(match?.ownerName);
  return {
    ownerKnown: match?.ownerKnown === undefined ? ANY : match.ownerKnown ? 1 : 0,
    serverPorts: ranges(list(match?.serverPort), 1, 65535),
    clientPorts: ranges(list(match?.clientPort), 1, 65535),
    ownerUids: ranges(list(match?.ownerUid), 0, 0xffffffff),
    gateway: gateway ? gateways.intern(gateway) : ANY,
    ownerName: ownerName ? ownerNames.intern(ownerName) : ANY,
    serverAddress: addresses(list(match?.serverAddress)),
    clientAddress: addresses(list(match?.clientAddress)),
    extra: extraConditions(match),
  };
}

/** Address kinds in Facts. */
const UNPARSED = 0;
export const KIND_V4 = 4;
export const KIND_V6 = 6;
const KIND_NONE = -1;

/** The facts of one request, loaded once per decision. Reused: one per compiled policy. */
export class Facts {
  /** The request itself, for the conditions of conditions/. */
  request: LookupRequest | undefined = undefined;
  gateway = '';
  serverPort = 0;
  clientPort = 0;
  /** -1 when the owner is unknown. */
  uid = -1;
  userName: string | null = null;
  serverAddressText = '';
  clientAddressText = '';
  /** UNPARSED, KIND_NONE (not an address), KIND_V4 (in server4) or KIND_V6 (in server6). */
  serverKind = UNPARSED;
  clientKind = UNPARSED;
  /** IPv4 address as int32 (compared with `&`). */
  server4 = 0;
  client4 = 0;
  readonly server6 = new Int32Array(4);
  readonly client6 = new Int32Array(4);

  constructor(
    readonly gateways: NameTable,
    readonly ownerNames: NameTable,
  ) {}

  load(request: LookupRequest): void {
    this.request = request;
    this.gateway = request.gateway;
    this.serverPort = request.query.serverPort;
    this.clientPort = request.query.clientPort;
    const owner = request.owner;
    this.uid = owner === null ? -1 : owner.uid;
    this.userName = owner === null ? null : owner.userName;
    this.serverAddressText = request.connection.localAddress;
    this.clientAddressText = request.connection.remoteAddress;
    this.serverKind = UNPARSED;
    this.clientKind = UNPARSED;
    this.gateways.reset();
    if (this.ownerNames !== this.gateways) this.ownerNames.reset();
  }

  /** Parses the server address on first use; returns its kind. */
  serverAddress(): number {
    if (this.serverKind === UNPARSED) {
      const parsed = parseAddress(this.serverAddressText, this.server6);
      this.serverKind = kindOf(parsed);
      this.server4 = parsed | 0;
    }
    return this.serverKind;
  }

  clientAddress(): number {
    if (this.clientKind === UNPARSED) {
      const parsed = parseAddress(this.clientAddressText, this.client6);
      this.clientKind = kindOf(parsed);
      this.client4 = parsed | 0;
    }
    return this.clientKind;
  }
}

function kindOf(parsed: number): number {
  return parsed === IPV6 ? KIND_V6 : parsed === NOT_AN_ADDRESS ? KIND_NONE : KIND_V4;
}

function inBlocks(blocks: AddressBlocks, kind: number, address4: number, words: Int32Array): boolean {
  if (kind === KIND_V4) {
    const v4 = blocks.v4;
    for (let i = 0; i < v4.length; i += 2) if ((address4 & v4[i + 1]!) === v4[i]) return true;
    return false;
  }
  if (kind !== KIND_V6) return false;
  const v6 = blocks.v6;
  const w0 = words[0]!,
    w1 = words[1]!,
    w2 = words[2]!,
    w3 = words[3]!;
  for (let i = 0; i < v6.length; i += 8) {
    if (
      (w0 & v6[i + 1]!) === v6[i] &&
      (w1 & v6[i + 3]!) === v6[i + 2] &&
      (w2 & v6[i + 5]!) === v6[i + 4] &&
      (w3 & v6[i + 7]!) === v6[i + 6]
    )
      return true;
  }
  return false;
}

/**
 * Returns 0 when every condition of `match` holds for the loaded facts, else the
 * code of the first that failed (an index into CONDITION_NAMES).
 */
export function failedCondition(match: CompiledMatch, facts: Facts): number {
  if (match.ownerKnown !== ANY && match.ownerKnown !== (facts.uid === -1 ? 0 : 1)) return OWNER_KNOWN;
  if (match.serverPorts !== null && !inRangesFast(match.serverPorts, facts.serverPort)) return SERVER_PORT;
  if (match.clientPorts !== null && !inRangesFast(match.clientPorts, facts.clientPort)) return CLIENT_PORT;
  if (match.ownerUids !== null && (facts.uid === -1 || !inRangesFast(match.ownerUids, facts.uid))) return OWNER_UID;
  if (match.gateway !== ANY && !facts.gateways.test(match.gateway, facts.gateway)) return GATEWAY;
  if (match.ownerName !== ANY && (facts.userName === null || !facts.ownerNames.test(match.ownerName, facts.userName)))
    return OWNER_NAME;
  if (
    match.serverAddress !== null &&
    !inBlocks(match.serverAddress, facts.serverAddress(), facts.server4, facts.server6)
  )
    return SERVER_ADDRESS;
  if (
    match.clientAddress !== null &&
    !inBlocks(match.clientAddress, facts.clientAddress(), facts.client4, facts.client6)
  )
    return CLIENT_ADDRESS;
  const extra = match.extra;
  for (let i = 0; i < extra.length; i++) if (!extra[i]!.holds(facts.request!)) return extra[i]!.code;
  return 0;
}

function inRangesFast(ranges: Float64Array, value: number): boolean {
  if (ranges.length === 2) return value >= ranges[0]! && value <= ranges[1]!;
  for (let i = 0; i < ranges.length; i += 2) {
    if (value < ranges[i]!) return false;
    if (value <= ranges[i + 1]!) return true;
  }
  return false;
}
