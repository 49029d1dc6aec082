import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { replyRuleViolation } from '../../protocol/reply.js';
import { STANDARD_ERRORS } from '../../protocol/tokens.js';
import { LookupRequestSchema, type LookupRequest } from '../../protocol/wire.js';
import { compilePolicy, decide, explain, parsePolicy, type Policy } from '../../worker/policy/index.js';
import { oneRule, request } from './policy-helpers.js';

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((octets) => octets.join('.'));
const ipv6 = fc.ipV6();
const address = fc.oneof(
  ipv4,
  ipv6,
  ipv4.map((v4) => `::ffff:${v4}`),
  fc.constantFrom('not-an-address', '::1', '0.0.0.0'),
);

function v4Cidr(): fc.Arbitrary<string> {
  return fc.tuple(fc.nat(0xffffffff), fc.integer({ min: 0, max: 32 })).map(([value, prefix]) => {
    const network = prefix === 0 ? 0 : (value & (~0 << (32 - prefix))) >>> 0;
    return `${[network >>> 24, (network >>> 16) & 255, (network >>> 8) & 255, network & 255].join('.')}/${prefix}`;
  });
}
const v6Cidr = fc.constantFrom('::/0', '2001:db8::/32', 'fe80::/10', '::1/128', 'fc00::/7', '::ffff:10.0.0.0/104');
const cidr = fc.oneof(v4Cidr(), v6Cidr);
const port = fc.integer({ min: 1, max: 65535 });
const portSpec = fc.oneof(
  port,
  fc.tuple(port, port).map(([a, b]) => `${Math.min(a, b)}-${Math.max(a, b)}`),
);
const uidSpec = fc.oneof(
  fc.nat(70000),
  fc.tuple(fc.nat(70000), fc.nat(70000)).map(([a, b]) => `${Math.min(a, b)}-${Math.max(a, b)}`),
);
const nameGlob = fc.constantFrom('alice', 'bob', 'a*', '?ob', '*', 'root', 'gw-*', 'gw-eu-?');
const oneOrMany = <T>(item: fc.Arbitrary<T>) => fc.oneof(item, fc.array(item, { minLength: 1, maxLength: 3 }));
const errorToken = fc.oneof(fc.constantFrom(...STANDARD_ERRORS), fc.constantFrom('X-NOPE', 'X-RATE-LIMITED'));
const userIdText = fc.stringMatching(/^[a-z][a-z0-9._-]{0,15}$/);

const match = fc.record(
  {
    gateway: oneOrMany(nameGlob),
    serverAddress: oneOrMany(cidr),
    clientAddress: oneOrMany(cidr),
    serverPort: oneOrMany(portSpec),
    clientPort: oneOrMany(portSpec),
    ownerName: oneOrMany(nameGlob),
    ownerUid: oneOrMany(uidSpec),
    ownerKnown: fc.boolean(),
  },
  { requiredKeys: [] },
);

const action = fc.oneof(
  fc.record(
    {
      reveal: fc.constant('name' as const),
      ifNoName: fc.oneof(fc.constant('uid' as const), errorToken),
      ifUnknown: errorToken,
    },
    { requiredKeys: ['reveal'] },
  ),
  fc.record({ reveal: fc.constant('uid' as const), ifUnknown: errorToken }, { requiredKeys: ['reveal'] }),
  fc.record({ userId: userIdText }),
  fc.record({
    random: fc.oneof(
      fc.record({ from: fc.array(userIdText, { minLength: 1, maxLength: 4 }) }),
      fc.record({ chars: fc.integer({ min: 1, max: 40 }) }),
    ),
  }),
  fc.record({
    pseudonym: fc.record(
      { length: fc.integer({ min: 6, max: 51 }), prefix: fc.constantFrom('', 'u', 'anon-') },
      { requiredKeys: [] },
    ),
  }),
  fc.record({ error: errorToken }),
);

const userIdAnswerFields = fc.record(
  { opsys: fc.constantFrom('UNIX', 'OTHER'), charset: fc.constantFrom('UTF-8', 'US-ASCII') },
  { requiredKeys: [] },
);

const policy: fc.Arbitrary<Policy> = fc
  .tuple(
    fc.array(fc.tuple(fc.option(match, { nil: undefined }), action, userIdAnswerFields), { maxLength: 8 }),
    action,
    userIdAnswerFields,
  )
  .map(([rules, fallback, fallbackFields]) => {
    const outcome = (act: object, fields: object) => ('error' in act ? { action: act } : { action: act, ...fields });
    return parsePolicy({
      version: 1,
      key: 'property-test-key-0123',
      rules: rules.map(([m, act, fields], index) => ({
        name: `rule-${index}`,
        ...(m ? { match: m } : {}),
        ...outcome(act, fields),
      })),
      default: outcome(fallback, fallbackFields),
    });
  });

const owner = fc.option(
  fc.record({
    uid: fc.oneof(fc.nat(70000), fc.constant(0xffffffff)),
    userName: fc.option(
      fc.oneof(
        fc.constantFrom('alice', 'bob', 'root', 'jürgen', 'a\r\nb', ' x'),
        fc.string({ minLength: 1, maxLength: 20 }),
      ),
      { nil: null },
    ),
  }),
  { nil: null },
);

const lookup: fc.Arbitrary<LookupRequest> = fc.record({
  v: fc.constant(1 as const),
  id: fc.constant('q'),
  gateway: fc.constantFrom('gw-eu-1', 'gw-us-2', 'bastion'),
  query: fc.record({ serverPort: port, clientPort: port }),
  connection: fc.record({
    localAddress: address,
    localPort: fc.constant(113),
    remoteAddress: address,
    remotePort: port,
  }),
  owner,
});

describe('policy properties', () => {
  it('for any valid policy and request, decide answers within the RFC 1413 reply rules', () => {
    fc.assert(
      fc.property(policy, lookup, fc.double({ min: 0, max: 1, noNaN: true }), (parsed, req, r) => {
        expect(LookupRequestSchema.safeParse(req).success).toBe(true);
        const decision = decide(compilePolicy(parsed), req, () => r);
        expect(replyRuleViolation(decision.answer)).toBeUndefined();
        expect(decision.rule === 'default' || parsed.rules.some((rule) => rule.name === decision.rule)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('explain names the same rule and answer as decide', () => {
    fc.assert(
      fc.property(policy, lookup, (parsed, req) => {
        const compiled = compilePolicy(parsed);
        const decision = decide(compiled, req, () => 0.25);
        const explanation = explain(compiled, req, () => 0.25);
        expect(explanation.rule).toBe(decision.rule);
        expect(explanation.answer).toEqual(decision.answer);
        expect(explanation.skippedCount).toBe(explanation.ruleIndex ?? parsed.rules.length);
      }),
      { numRuns: 300 },
    );
  });

  it('an IPv4 CIDR holds exactly for addresses whose leading prefix bits equal the network', () => {
    fc.assert(
      fc.property(v4Cidr(), fc.nat(0xffffffff), fc.boolean(), (block, value, mapped) => {
        const [network, prefixText] = block.split('/');
        const prefix = BigInt(prefixText!);
        const toBig = (text: string) => text.split('.').reduce((sum, octet) => sum * 256n + BigInt(octet), 0n);
        const text = [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.');
        const expected = toBig(text) >> (32n - prefix) === toBig(network!) >> (32n - prefix);
        const rule = decide(
          oneRule({ clientAddress: block }),
          request({ clientAddress: mapped ? `::ffff:${text}` : text }),
        ).rule;
        expect(rule).toBe(expected ? 'r' : 'default');
      }),
      { numRuns: 500 },
    );
  });
});
