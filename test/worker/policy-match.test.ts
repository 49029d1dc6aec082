import { describe, expect, it } from 'vitest';
import { compilePolicy, decide, DEFAULT_POLICY, explain, parsePolicy } from '../../worker/policy/index.js';
import { oneRule, request } from './policy-helpers.js';

const rule = (match: Parameters<typeof oneRule>[0], facts: Parameters<typeof request>[0]) =>
  decide(oneRule(match), request(facts)).rule;

describe('match conditions', () => {
  it('an empty match always holds', () => {
    expect(rule({}, {})).toBe('r');
  });

  it('gateway matches an exact name and not another', () => {
    expect(rule({ gateway: 'gw-eu-1' }, {})).toBe('r');
    expect(rule({ gateway: 'gw-eu-2' }, {})).toBe('default');
  });

  it('gateway globs use * and ? and are anchored and case-sensitive', () => {
    expect(rule({ gateway: 'gw-*' }, {})).toBe('r');
    expect(rule({ gateway: 'gw-eu-?' }, {})).toBe('r');
    expect(rule({ gateway: 'gw-eu' }, {})).toBe('default');
    expect(rule({ gateway: 'eu-*' }, {})).toBe('default');
    expect(rule({ gateway: 'GW-*' }, {})).toBe('default');
    expect(rule({ gateway: 'gw.eu.1' }, {})).toBe('default'); // "." is literal
  });

  it('gateway accepts a list of names and globs', () => {
    expect(rule({ gateway: ['bastion', 'gw-us-*'] }, {})).toBe('default');
    expect(rule({ gateway: ['bastion', 'gw-eu-*'] }, { gateway: 'bastion' })).toBe('r');
    expect(rule({ gateway: ['bastion', 'gw-eu-*'] }, {})).toBe('r');
  });

  it('clientAddress matches the querier (connection.remoteAddress) by IPv4 CIDR', () => {
    expect(rule({ clientAddress: '192.0.2.0/24' }, {})).toBe('r');
    expect(rule({ clientAddress: '192.0.3.0/24' }, {})).toBe('default');
    expect(rule({ clientAddress: '192.0.2.7' }, {})).toBe('r');
    expect(rule({ clientAddress: '0.0.0.0/0' }, { clientAddress: '255.255.255.255' })).toBe('r');
  });

  it('serverAddress matches this host (connection.localAddress), not the querier', () => {
    expect(rule({ serverAddress: '198.51.100.0/24' }, {})).toBe('r');
    expect(rule({ serverAddress: '192.0.2.0/24' }, {})).toBe('default');
  });

  it('an IPv4-mapped IPv6 address is matched as IPv4, by IPv4 and by mapped CIDRs', () => {
    expect(rule({ clientAddress: '10.0.0.0/8' }, { clientAddress: '::ffff:10.1.2.3' })).toBe('r');
    expect(rule({ clientAddress: '::ffff:10.0.0.0/104' }, { clientAddress: '10.9.9.9' })).toBe('r');
    expect(rule({ clientAddress: '10.0.0.0/8' }, { clientAddress: '::FFFF:0a01:0203' })).toBe('r');
    expect(rule({ clientAddress: '::/0' }, { clientAddress: '::ffff:10.1.2.3' })).toBe('default');
  });

  it('IPv6 CIDRs match IPv6 addresses at any prefix length, zone ids ignored', () => {
    expect(rule({ clientAddress: '2001:db8::/32' }, { clientAddress: '2001:db8:1::5' })).toBe('r');
    expect(rule({ clientAddress: '2001:db8::/32' }, { clientAddress: '2001:db9::5' })).toBe('default');
    expect(rule({ clientAddress: '2001:db8:0:0:8000::/65' }, { clientAddress: '2001:db8::8000:0:0:1' })).toBe('r');
    expect(rule({ clientAddress: '2001:db8:0:0:8000::/65' }, { clientAddress: '2001:db8::7fff:0:0:1' })).toBe(
      'default',
    );
    expect(rule({ clientAddress: 'fe80::/10' }, { clientAddress: 'fe80::1%eth0' })).toBe('r');
    expect(rule({ clientAddress: '::1' }, { clientAddress: '::1' })).toBe('r');
    expect(rule({ clientAddress: '::/0' }, { clientAddress: '2001:db8::1' })).toBe('r');
  });

  it('an IPv4 CIDR never matches an IPv6 address and vice versa', () => {
    expect(rule({ clientAddress: '0.0.0.0/0' }, { clientAddress: '2001:db8::1' })).toBe('default');
    expect(rule({ clientAddress: '::/0' }, { clientAddress: '192.0.2.7' })).toBe('default');
  });

  it('an address that does not parse matches no CIDR', () => {
    expect(rule({ clientAddress: '0.0.0.0/0' }, { clientAddress: 'localhost' })).toBe('default');
    expect(rule({ clientAddress: ['0.0.0.0/0', '::/0'] }, { clientAddress: '010.0.0.1' })).toBe('default');
  });

  it('serverPort and clientPort match a number, a range or a list', () => {
    expect(rule({ serverPort: 6193 }, {})).toBe('r');
    expect(rule({ serverPort: '6000-6999' }, {})).toBe('r');
    expect(rule({ serverPort: ['22', '6660-6669'] }, { serverPort: 6667 })).toBe('r');
    expect(rule({ serverPort: ['22', '6660-6669'] }, { serverPort: 6670 })).toBe('default');
    expect(rule({ clientPort: 23 }, {})).toBe('r');
    expect(rule({ clientPort: '1-22' }, {})).toBe('default');
  });

  it('ownerName matches exact names and globs, never an unknown owner or a nameless one', () => {
    expect(rule({ ownerName: 'alice' }, {})).toBe('r');
    expect(rule({ ownerName: ['bob', 'al*'] }, {})).toBe('r');
    expect(rule({ ownerName: 'Alice' }, {})).toBe('default');
    expect(rule({ ownerName: '*' }, { owner: null })).toBe('default');
    expect(rule({ ownerName: '*' }, { owner: { uid: 5, userName: null } })).toBe('default');
  });

  it('ownerUid matches a uid, a range or a list, never an unknown owner', () => {
    expect(rule({ ownerUid: 1000 }, {})).toBe('r');
    expect(rule({ ownerUid: '0-999' }, {})).toBe('default');
    expect(rule({ ownerUid: ['0', '1000-59999'] }, {})).toBe('r');
    expect(rule({ ownerUid: '0-4294967295' }, { owner: null })).toBe('default');
    expect(rule({ ownerUid: 4294967295 }, { owner: { uid: 4294967295, userName: null } })).toBe('r');
  });

  it('ownerKnown tells found owners from unknown ones', () => {
    expect(rule({ ownerKnown: true }, {})).toBe('r');
    expect(rule({ ownerKnown: false }, {})).toBe('default');
    expect(rule({ ownerKnown: false }, { owner: null })).toBe('r');
  });

  it('every given condition must hold', () => {
    expect(rule({ clientAddress: '192.0.2.0/24', serverPort: 6193, ownerName: 'alice' }, {})).toBe('r');
    expect(rule({ clientAddress: '192.0.2.0/24', serverPort: 6193, ownerName: 'bob' }, {})).toBe('default');
  });
});

describe('rule order', () => {
  const compiled = compilePolicy(
    parsePolicy({
      version: 1,
      rules: [
        { name: 'system', match: { ownerUid: '0-999' }, action: { error: 'HIDDEN-USER' } },
        { name: 'lan', match: { clientAddress: '192.0.2.0/24' }, action: { reveal: 'name' } },
        { name: 'lan-too', match: { clientAddress: '192.0.0.0/16' }, action: { userId: 'never' } },
      ],
      default: { action: { error: 'NO-USER' } },
    }),
  );

  it('the first matching rule answers even when later rules match too', () => {
    expect(decide(compiled, request())).toEqual({
      rule: 'lan',
      answer: { type: 'USERID', opsys: 'UNIX', userId: 'alice' },
    });
    expect(decide(compiled, request({ owner: { uid: 0, userName: 'root' } }))).toEqual({
      rule: 'system',
      answer: { type: 'ERROR', error: 'HIDDEN-USER' },
    });
  });

  it('the default answers as rule "default" when no rule matches', () => {
    expect(decide(compiled, request({ clientAddress: '203.0.113.1' }))).toEqual({
      rule: 'default',
      answer: { type: 'ERROR', error: 'NO-USER' },
    });
  });

  it('a decision for one request does not leak into the next (per-decision caches reset)', () => {
    const globs = oneRule({ gateway: 'gw-eu-*', clientAddress: '192.0.2.0/24' });
    expect(decide(globs, request()).rule).toBe('r');
    expect(decide(globs, request({ gateway: 'gw-us-1' })).rule).toBe('default');
    expect(decide(globs, request({ clientAddress: '192.0.3.1' })).rule).toBe('default');
    expect(decide(globs, request()).rule).toBe('r');
  });

  it('explain names the deciding rule and why each earlier rule was skipped', () => {
    const explanation = explain(compiled, request({ clientAddress: '203.0.113.1' }));
    expect(explanation).toEqual({
      rule: 'default',
      ruleIndex: null,
      answer: { type: 'ERROR', error: 'NO-USER' },
      matched: {},
      skipped: [
        { rule: 'system', ruleIndex: 0, failed: 'ownerUid' },
        { rule: 'lan', ruleIndex: 1, failed: 'clientAddress' },
        { rule: 'lan-too', ruleIndex: 2, failed: 'clientAddress' },
      ],
      skippedCount: 3,
    });
    expect(explain(compiled, request())).toMatchObject({
      rule: 'lan',
      ruleIndex: 1,
      matched: { clientAddress: '192.0.2.0/24' },
      skippedCount: 1,
    });
  });

  it('the built-in default policy reveals a found owner and says NO-USER otherwise', () => {
    const compiled = compilePolicy(DEFAULT_POLICY);
    expect(decide(compiled, request()).answer).toEqual({ type: 'USERID', opsys: 'UNIX', userId: 'alice' });
    expect(decide(compiled, request({ owner: { uid: 1234, userName: null } })).answer).toEqual({
      type: 'USERID',
      opsys: 'OTHER',
      userId: '1234',
    });
    expect(decide(compiled, request({ owner: null }))).toEqual({
      rule: 'default',
      answer: { type: 'ERROR', error: 'NO-USER' },
    });
  });
});
