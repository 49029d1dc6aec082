import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { LookupRequest } from '../../protocol/wire.js';
import { IPV6, NOT_AN_ADDRESS, parseAddress, parseCidr } from '../../worker/policy/address.js';
import {
  compilePolicy,
  decide,
  explain,
  parsePolicy,
  type Policy,
  type PolicyMatch,
} from '../../worker/policy/index.js';
import { parseRange } from '../../worker/policy/patterns.js';
import type { BuiltinMatch } from '../../worker/policy/schema.js';
import { buildRuleIndex, firstMatch } from '../../worker/policy/rule-index.js';
import { request } from './policy-helpers.js';

// The reference: try each rule's conditions one by one, straight from the
// policy document, with nothing shared with the index but address parsing.

function list<T>(value: T | T[]): T[] {
  return Array.isArray(value) ? value : [value];
}

/** Whole-name glob match over code points: `*` any run, `?` one code point. */
function globMatches(glob: string, name: string): boolean {
  const pattern = Array.from(glob);
  const subject = Array.from(name);
  // reachable[j]: the pattern so far can match subject[0..j).
  let reachable = subject.map(() => false).concat(false);
  reachable[0] = true;
  for (const token of pattern) {
    const next = reachable.map(() => false);
    for (let j = 0; j <= subject.length; j++) {
      if (token === '*') next[j] = reachable[j]! || (j > 0 && next[j - 1]!);
      else if (j > 0) next[j] = reachable[j - 1]! && (token === '?' || token === subject[j - 1]);
    }
    reachable = next;
  }
  return reachable[subject.length]!;
}

function inRanges(specs: (number | string)[], value: number, min: number, max: number): boolean {
  return specs.some((spec) => {
    const range = parseRange(spec, min, max);
    if (typeof range === 'string') throw new Error(range);
    return value >= range[0] && value <= range[1];
  });
}

function inCidrs(cidrs: string[], text: string): boolean {
  const words = new Int32Array(4);
  const parsed = parseAddress(text, words);
  if (parsed === NOT_AN_ADDRESS) return false;
  const big = (values: ArrayLike<number>) =>
    Array.from(values).reduce((sum, word) => (sum << 32n) | BigInt(word >>> 0), 0n);
  return cidrs.some((cidr) => {
    const block = parseCidr(cidr);
    if (typeof block === 'string') throw new Error(block);
    if ('v4' in block)
      return parsed !== IPV6 && (BigInt(parsed) & BigInt(block.v4[1] >>> 0)) === BigInt(block.v4[0] >>> 0);
    if (parsed !== IPV6) return false;
    const networks = block.v6.filter((_, i) => i % 2 === 0);
    const masks = block.v6.filter((_, i) => i % 2 === 1);
    return (big(words) & big(masks)) === big(networks);
  });
}

function holds(match: PolicyMatch, req: LookupRequest): boolean {
  const owner = req.owner;
  if (match.ownerKnown !== undefined && match.ownerKnown !== (owner !== null)) return false;
  if (match.serverPort !== undefined && !inRanges(list(match.serverPort), req.query.serverPort, 1, 65535)) return false;
  if (match.clientPort !== undefined && !inRanges(list(match.clientPort), req.query.clientPort, 1, 65535)) return false;
  if (match.ownerUid !== undefined && (owner === null || !inRanges(list(match.ownerUid), owner.uid, 0, 0xffffffff)))
    return false;
  if (match.gateway !== undefined && !list(match.gateway).some((glob) => globMatches(glob, req.gateway))) return false;
  if (match.ownerName !== undefined) {
    const name = owner?.userName ?? null;
    if (name === null || !list(match.ownerName).some((glob) => globMatches(glob, name))) return false;
  }
  if (match.serverAddress !== undefined && !inCidrs(list(match.serverAddress), req.connection.localAddress))
    return false;
  if (match.clientAddress !== undefined && !inCidrs(list(match.clientAddress), req.connection.remoteAddress))
    return false;
  const claimUser = req.claim?.user ?? null;
  if (match.claimed !== undefined && match.claimed !== (claimUser !== null)) return false;
  if (match.claimUser !== undefined) {
    if (claimUser === null || !list(match.claimUser).some((glob) => globMatches(glob, claimUser))) return false;
  }
  return true;
}

function referenceRule(policy: Policy, req: LookupRequest): string {
  return policy.rules.find((rule) => holds(rule.match ?? {}, req))?.name ?? 'default';
}

// Random policies whose conditions collide often: few distinct values, nested
// and overlapping ranges and CIDRs, bounds at the ends of each value space.

const PORTS = [1, 2, 22, 23, 113, 6666, 6667, 6668, 40000, 65534, 65535];
const UIDS = [0, 1, 999, 1000, 1001, 65535, 4294967294, 4294967295];
const NAME_PATTERNS = [
  'alice',
  'bob',
  'a*',
  '?ob',
  '*',
  'root',
  'al?ce',
  '*e',
  'gw-*',
  'gw-eu-?',
  '*-1',
  'gw-?',
  'bastion',
  'j?rgen',
  '**',
];
const GATEWAYS = ['gw-eu-1', 'gw-us-2', 'gw-e', 'bastion', 'gw-', 'x-1', 'b'];
const OWNER_NAMES = ['alice', 'bob', 'root', 'alce', 'jürgen', 'j😀rgen', 'e', 'gw-1'];

const v4Address = fc
  .tuple(
    fc.constantFrom(0, 10, 255),
    fc.constantFrom(0, 255),
    fc.constantFrom(0, 127, 128, 255),
    fc.constantFrom(0, 1, 255),
  )
  .map((octets) => octets.join('.'));
const v4Cidr = fc.tuple(v4Address, fc.constantFrom(0, 1, 8, 9, 16, 23, 24, 25, 31, 32)).map(([address, prefix]) => {
  const value = address.split('.').reduce((sum, octet) => sum * 256 + Number(octet), 0);
  const network = prefix === 0 ? 0 : (value & (~0 << (32 - prefix))) >>> 0;
  return `${[network >>> 24, (network >>> 16) & 255, (network >>> 8) & 255, network & 255].join('.')}/${prefix}`;
});
const v6Cidr = fc.constantFrom(
  '::/0',
  '::/1',
  '8000::/1',
  '2001:db8::/32',
  '2001:db8:1::/48',
  '2001:db8:0:0:8000::/65',
  'fe80::/10',
  '::1/128',
  '::/128',
  'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120',
  'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
  '::ffff:10.0.0.0/104',
  '::ffff:0.0.0.0/96',
);
const v6Address = fc.oneof(
  fc.constantFrom(
    '::',
    '::1',
    '2001:db8::1',
    '2001:db8:1::5',
    '2001:db8::8000:0:0:1',
    '2001:db8::7fff:0:0:1',
    'fe80::1%eth0',
    '7fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
    '8000::',
    'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
    'ffff:ffff:ffff:ffff:ffff:ffff:ffff:feff',
  ),
  fc.ipV6(),
);
const address = fc.oneof(
  v4Address,
  v4Address.map((v4) => `::ffff:${v4}`),
  v6Address,
  fc.constantFrom('not-an-address', '010.0.0.1'),
);

const range = (values: number[]) =>
  fc.oneof(
    fc.constantFrom(...values),
    fc
      .tuple(fc.constantFrom(...values), fc.constantFrom(...values))
      .map(([a, b]) => `${Math.min(a, b)}-${Math.max(a, b)}`),
  );
const oneOrMany = <T>(item: fc.Arbitrary<T>) => fc.oneof(item, fc.array(item, { minLength: 1, maxLength: 3 }));
/** Absent `absentWeight` times in `absentWeight + 1` (0: always present). */
const sometimes = <T>(item: fc.Arbitrary<T>, absentWeight: number) =>
  absentWeight === 0
    ? item
    : fc.oneof({ arbitrary: fc.constant(undefined), weight: absentWeight }, { arbitrary: item, weight: 1 });

// The indexed built-ins and the claim conditions (the NAT ones have their own tests: test/worker/policy-nat.test.ts).
type Weights = Record<keyof BuiltinMatch | 'claimed' | 'claimUser', number>;

const match = (weights: Weights): fc.Arbitrary<PolicyMatch> =>
  fc
    .record({
      gateway: sometimes(oneOrMany(fc.constantFrom(...NAME_PATTERNS)), weights.gateway),
      serverAddress: sometimes(oneOrMany(fc.oneof(v4Cidr, v6Cidr)), weights.serverAddress),
      clientAddress: sometimes(oneOrMany(fc.oneof(v4Cidr, v6Cidr)), weights.clientAddress),
      serverPort: sometimes(oneOrMany(range(PORTS)), weights.serverPort),
      clientPort: sometimes(oneOrMany(range(PORTS)), weights.clientPort),
      ownerName: sometimes(oneOrMany(fc.constantFrom(...NAME_PATTERNS)), weights.ownerName),
      ownerUid: sometimes(oneOrMany(range(UIDS)), weights.ownerUid),
      ownerKnown: sometimes(fc.boolean(), weights.ownerKnown),
      claimed: sometimes(fc.boolean(), weights.claimed),
      claimUser: sometimes(oneOrMany(fc.constantFrom(...NAME_PATTERNS)), weights.claimUser),
    })
    .map(
      (record) => Object.fromEntries(Object.entries(record).filter(([, value]) => value !== undefined)) as PolicyMatch,
    );

// Per policy and condition kind: on every rule (0, so the index can visit only the words
// that kind allows), on most, or on few; policies range from rules that often hold to
// rules that rarely do.
const absentWeight = fc.constantFrom(0, 1, 2, 4, 8);
const weights: fc.Arbitrary<Weights> = fc.record({
  gateway: absentWeight,
  serverAddress: absentWeight,
  clientAddress: absentWeight,
  serverPort: absentWeight,
  clientPort: absentWeight,
  ownerName: absentWeight,
  ownerUid: absentWeight,
  ownerKnown: absentWeight,
  claimed: absentWeight,
  claimUser: absentWeight,
});

const policy: fc.Arbitrary<Policy> = weights
  .chain((kindWeights) => fc.array(match(kindWeights), { maxLength: 100, size: 'max' }))
  .map((matches) =>
    parsePolicy({
      version: 1,
      rules: matches.map((m, index) => ({ name: `rule-${index}`, match: m, action: { error: 'HIDDEN-USER' } })),
      default: { action: { error: 'NO-USER' } },
    }),
  );

const lookup: fc.Arbitrary<LookupRequest> = fc
  .record({
    gateway: fc.oneof(fc.constantFrom(...GATEWAYS), fc.string({ maxLength: 6 })),
    serverPort: fc.oneof(fc.constantFrom(...PORTS), fc.integer({ min: 1, max: 65535 })),
    clientPort: fc.oneof(fc.constantFrom(...PORTS), fc.integer({ min: 1, max: 65535 })),
    serverAddress: address,
    clientAddress: address,
    owner: fc.option(
      fc.record({
        uid: fc.oneof(fc.constantFrom(...UIDS), fc.nat()),
        userName: fc.option(fc.oneof(fc.constantFrom(...OWNER_NAMES), fc.string({ maxLength: 6 })), { nil: null }),
      }),
      { nil: null },
    ),
    claimUser: fc.option(fc.oneof(fc.constantFrom(...OWNER_NAMES), fc.string({ maxLength: 6 })), { nil: null }),
  })
  .map(({ claimUser, ...facts }) => ({
    ...request(facts),
    ...(claimUser === null ? {} : { claim: { user: claimUser } }),
  }));

describe('rule index', () => {
  it('decide names the same rule as trying each rule in order, for random policies and requests', () => {
    fc.assert(
      fc.property(policy, fc.array(lookup, { minLength: 1, maxLength: 30 }), (parsed, requests) => {
        const compiled = compilePolicy(parsed);
        // Several requests per compiled policy: the name caches must not carry one request into the next.
        for (const req of requests) expect(decide(compiled, req).rule).toBe(referenceRule(parsed, req));
        for (const req of requests) expect(explain(compiled, req).rule).toBe(referenceRule(parsed, req));
      }),
      { numRuns: 400 },
    );
  });

  it('a condition kind left out of the index (too large to partition) still decides exactly', () => {
    fc.assert(
      fc.property(policy, fc.array(lookup, { minLength: 1, maxLength: 10 }), (parsed, requests) => {
        const compiled = compilePolicy(parsed);
        const unindexed = buildRuleIndex(
          compiled.rules.map((rule) => rule.match),
          compiled.facts.gateways,
          compiled.facts.ownerNames,
          { maxEntriesPerKind: 0 },
        );
        for (const req of requests) {
          compiled.facts.load(req);
          const ruleIndex = firstMatch(unindexed, compiled.facts);
          expect(ruleIndex === -1 ? 'default' : compiled.rules[ruleIndex]!.name).toBe(referenceRule(parsed, req));
        }
      }),
      { numRuns: 200 },
    );
  });

  it('first-match order holds across bitset words (rules 31, 32, 63, 64 and beyond)', () => {
    const rules: { name: string; match: PolicyMatch; action: object }[] = Array.from({ length: 130 }, (_, i) => ({
      name: `r${i}`,
      match: { ownerUid: i },
      action: { error: 'HIDDEN-USER' },
    }));
    rules.push({ name: 'r-any', match: { ownerUid: '0-200' }, action: { error: 'HIDDEN-USER' } });
    const compiled = compilePolicy(parsePolicy({ version: 1, rules, default: { action: { error: 'NO-USER' } } }));
    for (const uid of [0, 31, 32, 63, 64, 95, 96, 127, 128, 129])
      expect(decide(compiled, request({ owner: { uid, userName: 'u' } })).rule).toBe(`r${uid}`);
    expect(decide(compiled, request({ owner: { uid: 130, userName: 'u' } })).rule).toBe('r-any');
    expect(decide(compiled, request({ owner: { uid: 201, userName: 'u' } })).rule).toBe('default');
    expect(decide(compiled, request({ owner: null })).rule).toBe('default');
  });

  it('owner names stay exact when more distinct names are seen than the name cache holds', () => {
    const parsed = parsePolicy({
      version: 1,
      rules: [
        {
          name: 'odd',
          match: { ownerName: ['user-*1', 'user-*3', 'user-*5', 'user-*7', 'user-*9'] },
          action: { error: 'HIDDEN-USER' },
        },
        { name: 'hundreds', match: { ownerName: 'user-?00' }, action: { error: 'HIDDEN-USER' } },
        { name: 'exact', match: { ownerName: 'user-42' }, action: { error: 'HIDDEN-USER' } },
      ],
      default: { action: { error: 'NO-USER' } },
    });
    const compiled = compilePolicy(parsed);
    const check = (userName: string) => {
      const req = request({ owner: { uid: 1, userName } });
      expect(decide(compiled, req).rule).toBe(referenceRule(parsed, req));
    };
    // A hot name seen first and between every new one outlives evictions; new names reuse the evicted space.
    for (let i = 0; i < 3000; i++) {
      check('user-42');
      check(`user-${i}`);
    }
    for (let i = 0; i < 3000; i += 7) check(`user-${i}`);
  });

  it('a policy without rules, or with only unconditional rules, decides without an index', () => {
    const none = compilePolicy(parsePolicy({ version: 1, rules: [], default: { action: { error: 'NO-USER' } } }));
    expect(decide(none, request()).rule).toBe('default');
    const open = compilePolicy(
      parsePolicy({
        version: 1,
        rules: [
          { name: 'a', action: { error: 'HIDDEN-USER' } },
          { name: 'b', match: {}, action: { error: 'HIDDEN-USER' } },
        ],
        default: { action: { error: 'NO-USER' } },
      }),
    );
    expect(decide(open, request({ owner: null, clientAddress: 'nowhere' })).rule).toBe('a');
  });
});
