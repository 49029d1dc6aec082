/**
 * The rule index: the first rule whose conditions all hold, found with bitsets per condition kind
 * instead of trying rules one by one (docs/policy.md "Performance", docs/internals.md).
 */
import { failedCondition, KIND_V4, KIND_V6, type CompiledMatch, type Facts, type NameTable } from './match.js';
import { globToRegExpSource, isGlob } from './patterns.js';

/** Most sparse-row entries one kind may hold before it is left out of the index (8 octets each). */
const MAX_ENTRIES_PER_KIND = 1 << 20;
/** Words of bitset a name cache may hold (4 octets each); its entry count follows from the rule count. */
const NAME_CACHE_WORDS = 1 << 18;
const MIN_NAME_CACHE_ENTRIES = 16;
const MAX_NAME_CACHE_ENTRIES = 1024;

export interface RuleIndexLimits {
  /** Most sparse-row entries (8 octets each) a port, uid or address kind may hold; default 2^20. */
  readonly maxEntriesPerKind: number;
}

/** The parts of one partitioned value space, as sparse bitset rows: part p owns entries first[p]..first[p+1]. */
interface Rows {
  readonly first: Uint32Array;
  /** Word index of each entry, ascending within a part. */
  readonly words: Uint32Array;
  readonly bits: Int32Array;
}

/** A port or uid condition: part p holds values in [bounds[p], bounds[p+1]). */
interface RangeKind {
  /** Rules without this condition, and how many. */
  readonly any: Uint32Array;
  readonly anyCount: number;
  readonly bounds: Float64Array;
  readonly rows: Rows;
}

/** An address condition: IPv4 and IPv6 partitioned apart (an IPv4 CIDR never holds for IPv6 and vice versa). */
interface AddressKind {
  readonly any: Uint32Array;
  readonly anyCount: number;
  readonly bounds4: Float64Array;
  readonly rows4: Rows;
  /** IPv6 bounds as 4 unsigned 32-bit words each, most significant first. */
  readonly bounds6: Uint32Array;
  readonly rows6: Rows;
}

/** The rules that list one name or glob, as a sparse bitset row. */
interface NameRules {
  readonly words: Uint32Array;
  readonly bits: Int32Array;
}

interface Glob {
  readonly pattern: RegExp;
  readonly rules: NameRules;
}

interface CachedRow {
  /** Where its bitset starts in the slab. */
  readonly offset: number;
  /** How many rules the bitset allows. */
  readonly count: number;
  stamp: number;
}

/**
 * Gateway or owner names: literal names by a Map, globs grouped by their
 * literal prefix so a name is tested only against globs it can match, and the
 * resulting bitset cached per name in one preallocated slab (so a new name
 * allocates no typed array); when the cache is full, the least recently used
 * half is dropped.
 */
class NameKind {
  private readonly literals = new Map<string, NameRules>();
  private readonly globsByPrefix = new Map<string, Glob[]>();
  /** Distinct literal-prefix lengths of the globs, ascending. */
  private readonly prefixLengths: number[];
  private readonly cache = new Map<string, CachedRow>();
  private readonly slab: Uint32Array;
  private readonly freeOffsets: number[] = [];
  private clock = 0;
  private readonly anyCount: number;
  /** The result of the last lookup: a bitset at `offset` in `row`, allowing `count` rules. */
  row: Uint32Array;
  offset = 0;
  count = 0;

  constructor(
    /** Rules without this condition; also the row of a missing name (unknown owner). */
    readonly any: Uint32Array,
    patternsOfRules: readonly (readonly string[] | null)[],
  ) {
    const literalRules = new Map<string, number[]>();
    const globRules = new Map<string, number[]>();
    patternsOfRules.forEach((patterns, rule) => {
      if (patterns === null) return;
      for (const pattern of patterns) {
        const into = isGlob(pattern) ? globRules : literalRules;
        let rules = into.get(pattern);
        if (rules === undefined) into.set(pattern, (rules = []));
        if (rules[rules.length - 1] !== rule) rules.push(rule);
      }
    });
    for (const [literal, rules] of literalRules) this.literals.set(literal, sparseRow(rules));
    const lengths = new Set<number>();
    for (const [glob, rules] of globRules) {
      const prefix = glob.slice(0, glob.search(/[*?]/));
      let group = this.globsByPrefix.get(prefix);
      if (group === undefined) this.globsByPrefix.set(prefix, (group = []));
      group.push({ pattern: new RegExp(`^(?:${globToRegExpSource(glob)})$`, 'u'), rules: sparseRow(rules) });
      lengths.add(prefix.length);
    }
    this.prefixLengths = [...lengths].sort((a, b) => a - b);
    this.anyCount = countBits(any, 0, any.length);
    const capacity = Math.max(
      MIN_NAME_CACHE_ENTRIES,
      Math.min(MAX_NAME_CACHE_ENTRIES, Math.floor(NAME_CACHE_WORDS / any.length)),
    );
    this.slab = new Uint32Array(capacity * any.length);
    for (let slot = capacity - 1; slot >= 0; slot--) this.freeOffsets.push(slot * any.length);
    this.row = any;
  }

  /** Looks up the rules a name allows (null: no name, which only rules without the condition allow) into row, offset, count. */
  lookup(name: string | null): void {
    if (name === null) {
      this.row = this.any;
      this.offset = 0;
      this.count = this.anyCount;
      return;
    }
    let cached = this.cache.get(name);
    if (cached === undefined) {
      if (this.freeOffsets.length === 0) this.evictOlderHalf();
      const offset = this.freeOffsets.pop()!;
      this.compute(name, offset);
      cached = { offset, count: countBits(this.slab, offset, this.any.length), stamp: 0 };
      this.cache.set(name, cached);
    }
    cached.stamp = ++this.clock;
    this.row = this.slab;
    this.offset = cached.offset;
    this.count = cached.count;
  }

  private compute(name: string, offset: number): void {
    const slab = this.slab;
    slab.set(this.any, offset);
    const literal = this.literals.get(name);
    if (literal !== undefined) setBits(slab, offset, literal);
    for (const length of this.prefixLengths) {
      if (length > name.length) break;
      const group = this.globsByPrefix.get(name.slice(0, length));
      if (group === undefined) continue;
      for (const glob of group) if (glob.pattern.test(name)) setBits(slab, offset, glob.rules);
    }
  }

  private evictOlderHalf(): void {
    const stamps = [...this.cache.values()].map((entry) => entry.stamp).sort((a, b) => a - b);
    const keepFrom = stamps[stamps.length >> 1]!;
    for (const [name, entry] of this.cache) {
      if (entry.stamp >= keepFrom) continue;
      this.cache.delete(name);
      this.freeOffsets.push(entry.offset);
    }
  }
}

/** The index of a compiled policy. Holds per-decision scratch space: decisions are synchronous. */
export interface RuleIndex {
  readonly ruleCount: number;
  readonly wordCount: number;
  /** Bits of every rule (the last word is partial). */
  readonly all: Uint32Array;
  readonly matches: readonly CompiledMatch[];
  /** True when some kind is left out of the index, so candidates must be confirmed rule by rule. */
  readonly confirm: boolean;
  readonly ownerKnown: {
    readonly known: Uint32Array;
    readonly knownCount: number;
    readonly unknown: Uint32Array;
    readonly unknownCount: number;
  } | null;
  readonly gateway: NameKind | null;
  readonly ownerName: NameKind | null;
  readonly serverPort: RangeKind | null;
  readonly clientPort: RangeKind | null;
  readonly ownerUid: RangeKind | null;
  readonly serverAddress: AddressKind | null;
  readonly clientAddress: AddressKind | null;
  readonly scratch: Scratch;
}

/**
 * The rows one decision ANDs, one per condition kind in use, each as a dense
 * part (`any`, from `offset`) ORed with the sparse entries next..end of (words, bits); ordered
 * by how many rules they may allow, fewest first, so that a word of
 * candidates empties as early as possible.
 */
interface Scratch {
  readonly rowAny: Uint32Array[];
  readonly offset: Int32Array;
  readonly rowWords: Uint32Array[];
  readonly rowBits: Int32Array[];
  readonly next: Int32Array;
  readonly end: Int32Array;
  readonly cost: Float64Array;
  /** How many rules each row's dense part allows (0: only its entries can). */
  readonly anyCount: Float64Array;
}

function countBits(row: Uint32Array, from: number, length: number): number {
  let count = 0;
  for (let i = from; i < from + length; i++) {
    let word = row[i]! | 0;
    word -= (word >>> 1) & 0x55555555;
    word = (word & 0x33333333) + ((word >>> 2) & 0x33333333);
    word = (word + (word >>> 4)) & 0x0f0f0f0f;
    count += Math.imul(word, 0x01010101) >>> 24;
  }
  return count;
}

/** Rules (ascending) as a sparse bitset row: the non-zero words only. */
function sparseRow(rules: readonly number[]): NameRules {
  const words: number[] = [];
  const bits: number[] = [];
  for (const rule of rules) {
    const word = rule >>> 5;
    if (words[words.length - 1] !== word) {
      words.push(word);
      bits.push(0);
    }
    bits[bits.length - 1]! |= 1 << (rule & 31);
  }
  return { words: Uint32Array.from(words), bits: Int32Array.from(bits) };
}

function setBits(row: Uint32Array, offset: number, rules: NameRules): void {
  const { words, bits } = rules;
  for (let i = 0; i < words.length; i++) row[offset + words[i]!]! |= bits[i]!;
}

function bitsOf(wordCount: number, rules: Iterable<number>): Uint32Array {
  const row = new Uint32Array(wordCount);
  for (const rule of rules) row[rule >>> 5]! |= 1 << (rule & 31);
  return row;
}

/** An interval [lo, hiEx) of one rule; hiEx null means "to the end of the value space". */
interface Interval<T extends number | bigint> {
  readonly lo: T;
  readonly hiEx: T | null;
}

/** A partition: the start of every part and each part's sparse row. */
interface Partition<T extends number | bigint> {
  readonly bounds: T[];
  readonly rows: Rows;
}

function byValue<T extends number | bigint>(a: T, b: T): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Partitions a value space at every interval bound and records, per part, the
 * rules whose intervals cover it (a sweep over the sorted bounds). Returns
 * null when the rows would hold more than `maxEntries` entries.
 */
function partition<T extends number | bigint>(
  intervalsOfRules: readonly (readonly Interval<T>[] | null)[],
  wordCount: number,
  maxEntries: number,
): Partition<T> | null {
  const events: { at: T; rule: number; add: boolean }[] = [];
  intervalsOfRules.forEach((intervals, rule) => {
    if (intervals === null) return;
    // Merged per rule, so a rule's bit is set and cleared once per covered stretch.
    const sorted = [...intervals].sort((a, b) => byValue(a.lo, b.lo));
    let current: { lo: T; hiEx: T | null } | undefined;
    const flush = () => {
      if (current === undefined) return;
      events.push({ at: current.lo, rule, add: true });
      if (current.hiEx !== null) events.push({ at: current.hiEx, rule, add: false });
    };
    for (const interval of sorted) {
      if (current !== undefined && (current.hiEx === null || interval.lo <= current.hiEx)) {
        if (current.hiEx !== null && (interval.hiEx === null || interval.hiEx > current.hiEx))
          current.hiEx = interval.hiEx;
      } else {
        flush();
        current = { lo: interval.lo, hiEx: interval.hiEx };
      }
    }
    flush();
  });
  events.sort((a, b) => byValue(a.at, b.at));

  const bounds: T[] = [];
  const first: number[] = [0];
  const words: number[] = [];
  const bits: number[] = [];
  const covered = new Int32Array(wordCount);
  const listed = new Uint8Array(wordCount);
  let nonZero: number[] = [];
  for (let i = 0; i < events.length; ) {
    const at = events[i]!.at;
    for (; i < events.length && events[i]!.at === at; i++) {
      const { rule, add } = events[i]!;
      const word = rule >>> 5;
      if (add) {
        covered[word]! |= 1 << (rule & 31);
        if (listed[word] === 0) {
          listed[word] = 1;
          nonZero.push(word);
        }
      } else {
        covered[word]! &= ~(1 << (rule & 31));
      }
    }
    nonZero = nonZero.filter((word) => {
      if (covered[word] !== 0) return true;
      listed[word] = 0;
      return false;
    });
    nonZero.sort((a, b) => a - b);
    for (const word of nonZero) {
      words.push(word);
      bits.push(covered[word]!);
    }
    if (words.length > maxEntries) return null;
    bounds.push(at);
    first.push(words.length);
  }
  return {
    bounds,
    rows: { first: Uint32Array.from(first), words: Uint32Array.from(words), bits: Int32Array.from(bits) },
  };
}

function anyOf(wordCount: number, ruleCount: number, has: (rule: number) => boolean): Uint32Array {
  const rules: number[] = [];
  for (let rule = 0; rule < ruleCount; rule++) if (!has(rule)) rules.push(rule);
  return bitsOf(wordCount, rules);
}

function rangeKind(
  matches: readonly CompiledMatch[],
  wordCount: number,
  maxEntries: number,
  rangesOf: (match: CompiledMatch) => Float64Array | null,
): RangeKind | null | 'unindexed' {
  const intervals = matches.map((match) => {
    const ranges = rangesOf(match);
    if (ranges === null) return null;
    const list: Interval<number>[] = [];
    for (let i = 0; i < ranges.length; i += 2) list.push({ lo: ranges[i]!, hiEx: ranges[i + 1]! + 1 });
    return list;
  });
  if (intervals.every((list) => list === null)) return null;
  const parts = partition(intervals, wordCount, maxEntries);
  if (parts === null) return 'unindexed';
  return {
    any: anyOf(wordCount, matches.length, (rule) => intervals[rule] !== null),
    anyCount: intervals.filter((list) => list === null).length,
    bounds: Float64Array.from(parts.bounds),
    rows: parts.rows,
  };
}

const V6_END = 1n << 128n;

/** Four 32-bit words, most significant first, as one 128-bit value. */
function v6Value(words: readonly number[]): bigint {
  let value = 0n;
  for (const word of words) value = (value << 32n) | BigInt(word >>> 0);
  return value;
}

function addressKind(
  matches: readonly CompiledMatch[],
  wordCount: number,
  maxEntries: number,
  blocksOf: (match: CompiledMatch) => CompiledMatch['clientAddress'],
): AddressKind | null | 'unindexed' {
  const v4 = matches.map((match) => {
    const blocks = blocksOf(match);
    if (blocks === null) return null;
    const list: Interval<number>[] = [];
    for (let i = 0; i < blocks.v4.length; i += 2) {
      const network = blocks.v4[i]! >>> 0;
      list.push({ lo: network, hiEx: network + (~blocks.v4[i + 1]! >>> 0) + 1 });
    }
    return list;
  });
  if (v4.every((list) => list === null)) return null;
  const v6 = matches.map((match) => {
    const blocks = blocksOf(match);
    if (blocks === null) return null;
    const list: Interval<bigint>[] = [];
    for (let i = 0; i < blocks.v6.length; i += 8) {
      const network = v6Value([blocks.v6[i]!, blocks.v6[i + 2]!, blocks.v6[i + 4]!, blocks.v6[i + 6]!]);
      const hostMask = v6Value([~blocks.v6[i + 1]!, ~blocks.v6[i + 3]!, ~blocks.v6[i + 5]!, ~blocks.v6[i + 7]!]);
      const hiEx = network + hostMask + 1n;
      list.push({ lo: network, hiEx: hiEx === V6_END ? null : hiEx });
    }
    return list;
  });
  const parts4 = partition(v4, wordCount, maxEntries);
  const parts6 = partition(v6, wordCount, maxEntries);
  if (parts4 === null || parts6 === null) return 'unindexed';
  const bounds6 = new Uint32Array(parts6.bounds.length * 4);
  parts6.bounds.forEach((bound, part) => {
    for (let i = 3; i >= 0; i--) bounds6[part * 4 + 3 - i] = Number((bound >> BigInt(32 * i)) & 0xffffffffn);
  });
  return {
    any: anyOf(wordCount, matches.length, (rule) => v4[rule] !== null),
    anyCount: v4.filter((list) => list === null).length,
    bounds4: Float64Array.from(parts4.bounds),
    rows4: parts4.rows,
    bounds6,
    rows6: parts6.rows,
  };
}

/**
 * Builds the index of a policy's compiled rule matches. `gateways` and
 * `ownerNames` are the tables the matches' name conditions were interned in.
 * A kind whose rows would pass `limits.maxEntriesPerKind` is left out.
 *
 * @example
 * const index = buildRuleIndex(rules.map((rule) => rule.match), gateways, ownerNames);
 */
export function buildRuleIndex(
  matches: readonly CompiledMatch[],
  gateways: NameTable,
  ownerNames: NameTable,
  limits: RuleIndexLimits = { maxEntriesPerKind: MAX_ENTRIES_PER_KIND },
): RuleIndex {
  const maxEntries = limits.maxEntriesPerKind;
  const ruleCount = matches.length;
  const wordCount = (ruleCount + 31) >>> 5;
  const all = anyOf(wordCount, ruleCount, () => false);
  // The conditions of conditions/ are not indexed: a rule using one is confirmed with the per-rule test.
  let confirm = matches.some((match) => match.extra.length > 0);
  const indexed = <K>(kind: K | null | 'unindexed'): K | null => {
    if (kind !== 'unindexed') return kind;
    confirm = true;
    return null;
  };

  const known = anyOf(wordCount, ruleCount, (rule) => matches[rule]!.ownerKnown === 0);
  const unknown = anyOf(wordCount, ruleCount, (rule) => matches[rule]!.ownerKnown === 1);
  const ownerKnown = matches.some((match) => match.ownerKnown !== -1)
    ? { known, knownCount: countBits(known, 0, wordCount), unknown, unknownCount: countBits(unknown, 0, wordCount) }
    : null;
  const nameKind = (table: NameTable, idOf: (match: CompiledMatch) => number): NameKind | null => {
    const patterns = matches.map((match) => (idOf(match) === -1 ? null : table.matchers[idOf(match)]!.source));
    if (patterns.every((list) => list === null)) return null;
    return new NameKind(
      anyOf(wordCount, ruleCount, (rule) => patterns[rule] !== null),
      patterns,
    );
  };

  const serverPort = indexed(rangeKind(matches, wordCount, maxEntries, (match) => match.serverPorts));
  const clientPort = indexed(rangeKind(matches, wordCount, maxEntries, (match) => match.clientPorts));
  const ownerUid = indexed(rangeKind(matches, wordCount, maxEntries, (match) => match.ownerUids));
  const serverAddress = indexed(addressKind(matches, wordCount, maxEntries, (match) => match.serverAddress));
  const clientAddress = indexed(addressKind(matches, wordCount, maxEntries, (match) => match.clientAddress));
  return {
    ruleCount,
    wordCount,
    all,
    matches,
    confirm,
    ownerKnown,
    gateway: nameKind(gateways, (match) => match.gateway),
    ownerName: nameKind(ownerNames, (match) => match.ownerName),
    serverPort,
    clientPort,
    ownerUid,
    serverAddress,
    clientAddress,
    scratch: {
      rowAny: [],
      offset: new Int32Array(KIND_COUNT),
      rowWords: [],
      rowBits: [],
      next: new Int32Array(KIND_COUNT),
      end: new Int32Array(KIND_COUNT),
      cost: new Float64Array(KIND_COUNT),
      anyCount: new Float64Array(KIND_COUNT),
    },
  };
}

/** The last part whose start is <= value, or -1 when value is below every part. */
function partOf(bounds: Float64Array, value: number): number {
  let lo = 0;
  let hi = bounds.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (bounds[mid]! <= value) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

/** partOf for IPv6: compares four unsigned words, most significant first. */
function partOf6(bounds: Uint32Array, address: Int32Array): number {
  const a0 = address[0]! >>> 0,
    a1 = address[1]! >>> 0,
    a2 = address[2]! >>> 0,
    a3 = address[3]! >>> 0;
  let lo = 0;
  let hi = (bounds.length >>> 2) - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const at = mid << 2;
    const b0 = bounds[at]!,
      b1 = bounds[at + 1]!,
      b2 = bounds[at + 2]!,
      b3 = bounds[at + 3]!;
    const atMost = b0 !== a0 ? b0 < a0 : b1 !== a1 ? b1 < a1 : b2 !== a2 ? b2 < a2 : b3 <= a3;
    if (atMost) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

const KIND_COUNT = 8;
const NO_WORDS = new Uint32Array(0);
const NO_BITS = new Int32Array(0);

/** Adds part `part` of a partition (-1: the empty part) to the scratch; returns the new count. */
function addSparse(
  scratch: Scratch,
  count: number,
  any: Uint32Array,
  anyCount: number,
  rows: Rows,
  part: number,
): number {
  if (part === -1) return addRow(scratch, count, any, 0, anyCount, NO_WORDS, NO_BITS, 0, 0);
  return addRow(scratch, count, any, 0, anyCount, rows.words, rows.bits, rows.first[part]!, rows.first[part + 1]!);
}

/**
 * Adds a row to the scratch, in order of cost (an upper bound of the rules it
 * allows: 32 per sparse entry); returns the new count.
 */
function addRow(
  scratch: Scratch,
  count: number,
  any: Uint32Array,
  offset: number,
  anyCount: number,
  words: Uint32Array,
  bits: Int32Array,
  start: number,
  end: number,
): number {
  const cost = anyCount + (end - start) * 32;
  const { rowAny, offset: offsets, rowWords, rowBits, next, cost: costs, anyCount: anyCounts } = scratch;
  let at = count;
  for (; at > 0 && costs[at - 1]! > cost; at--) {
    rowAny[at] = rowAny[at - 1]!;
    offsets[at] = offsets[at - 1]!;
    rowWords[at] = rowWords[at - 1]!;
    rowBits[at] = rowBits[at - 1]!;
    next[at] = next[at - 1]!;
    scratch.end[at] = scratch.end[at - 1]!;
    costs[at] = costs[at - 1]!;
    anyCounts[at] = anyCounts[at - 1]!;
  }
  rowAny[at] = any;
  offsets[at] = offset;
  rowWords[at] = words;
  rowBits[at] = bits;
  next[at] = start;
  scratch.end[at] = end;
  costs[at] = cost;
  anyCounts[at] = anyCount;
  return count + 1;
}

function addAddress(
  scratch: Scratch,
  count: number,
  kind: AddressKind,
  family: number,
  address4: number,
  address6: Int32Array,
): number {
  if (family === KIND_V4)
    return addSparse(scratch, count, kind.any, kind.anyCount, kind.rows4, partOf(kind.bounds4, address4 >>> 0));
  if (family === KIND_V6)
    return addSparse(scratch, count, kind.any, kind.anyCount, kind.rows6, partOf6(kind.bounds6, address6));
  return addSparse(scratch, count, kind.any, kind.anyCount, kind.rows4, -1);
}

/**
 * The index (in policy order) of the first rule whose conditions all hold for
 * the loaded facts, or -1 when none does.
 *
 * @example
 * facts.load(request);
 * const ruleIndex = firstMatch(compiled.index, facts);
 */
export function firstMatch(index: RuleIndex, facts: Facts): number {
  const scratch = index.scratch;
  let rowCount = 0;
  const ownerKnown = index.ownerKnown;
  if (ownerKnown !== null) {
    rowCount =
      facts.uid === -1
        ? addRow(scratch, rowCount, ownerKnown.unknown, 0, ownerKnown.unknownCount, NO_WORDS, NO_BITS, 0, 0)
        : addRow(scratch, rowCount, ownerKnown.known, 0, ownerKnown.knownCount, NO_WORDS, NO_BITS, 0, 0);
  }
  const gateway = index.gateway;
  if (gateway !== null) {
    gateway.lookup(facts.gateway);
    rowCount = addRow(scratch, rowCount, gateway.row, gateway.offset, gateway.count, NO_WORDS, NO_BITS, 0, 0);
  }
  const ownerName = index.ownerName;
  if (ownerName !== null) {
    ownerName.lookup(facts.userName);
    rowCount = addRow(scratch, rowCount, ownerName.row, ownerName.offset, ownerName.count, NO_WORDS, NO_BITS, 0, 0);
  }

  const serverPort = index.serverPort;
  if (serverPort !== null)
    rowCount = addSparse(
      scratch,
      rowCount,
      serverPort.any,
      serverPort.anyCount,
      serverPort.rows,
      partOf(serverPort.bounds, facts.serverPort),
    );
  const clientPort = index.clientPort;
  if (clientPort !== null)
    rowCount = addSparse(
      scratch,
      rowCount,
      clientPort.any,
      clientPort.anyCount,
      clientPort.rows,
      partOf(clientPort.bounds, facts.clientPort),
    );
  const ownerUid = index.ownerUid;
  if (ownerUid !== null)
    rowCount = addSparse(
      scratch,
      rowCount,
      ownerUid.any,
      ownerUid.anyCount,
      ownerUid.rows,
      facts.uid === -1 ? -1 : partOf(ownerUid.bounds, facts.uid),
    );
  if (index.serverAddress !== null)
    rowCount = addAddress(scratch, rowCount, index.serverAddress, facts.serverAddress(), facts.server4, facts.server6);
  if (index.clientAddress !== null)
    rowCount = addAddress(scratch, rowCount, index.clientAddress, facts.clientAddress(), facts.client4, facts.client6);

  // When the most selective row allows only the rules in its entries (its dense
  // part is empty), only the words of those entries can hold a match: visit just
  // those. Otherwise visit every word. Either way words ascend, so rule order holds.
  const { rowAny, offset, rowWords, rowBits, next, end } = scratch;
  const driven = rowCount > 0 && scratch.anyCount[0] === 0;
  const drivingWords = driven ? rowWords[0]! : NO_WORDS;
  const drivingBits = driven ? rowBits[0]! : NO_BITS;
  const from = driven ? 1 : 0;
  const all = index.all;
  for (let step = driven ? next[0]! : 0, last = driven ? end[0]! : index.wordCount; step < last; step++) {
    const word = driven ? drivingWords[step]! : step;
    let candidates = driven ? drivingBits[step]! : all[word]! | 0;
    for (let row = from; row < rowCount && candidates !== 0; row++) {
      let allowed = rowAny[row]![offset[row]! + word]!;
      const words = rowWords[row]!;
      const rowEnd = end[row]!;
      let entry = next[row]!;
      while (entry < rowEnd && words[entry]! < word) entry++;
      if (entry < rowEnd && words[entry] === word) allowed |= rowBits[row]![entry]!;
      next[row] = entry;
      candidates &= allowed;
    }
    while (candidates !== 0) {
      const lowest = candidates & -candidates;
      const rule = (word << 5) | (31 - Math.clz32(lowest));
      if (!index.confirm || failedCondition(index.matches[rule]!, facts) === 0) return rule;
      candidates ^= lowest;
    }
  }
  return -1;
}
