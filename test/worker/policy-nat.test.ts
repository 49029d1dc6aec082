/**
 * The policy for connections a NAT router translates (docs/nat.md): the conditions innerAddress, innerPort,
 * containerName and containerLabel, and the actions that answer per inner host (a fixed id with the rule's opsys,
 * as masq.conf does; an error; a pseudonym keyed by the inner address; a container label).
 */
import { describe, expect, it } from 'vitest';
import type { Container, LookupRequest, Nat } from '../../protocol/wire.js';
import { compilePolicy, decide, explain, parsePolicy } from '../../worker/policy/index.js';
import { KEY, request } from './policy-helpers.js';

function natRequest(nat: Nat | undefined, container?: Container, gateway = 'router'): LookupRequest {
  return {
    ...request({ owner: null, gateway }),
    ...(nat !== undefined && { nat }),
    ...(container !== undefined && { container }),
  };
}

const inner = (innerAddress: string, innerPort = 40002): Nat => ({ innerAddress, innerPort });

// What a masq.conf with three lines says, plus the rest.
const POLICY = compilePolicy(
  parsePolicy({
    version: 1,
    key: KEY,
    rules: [
      { name: 'bouncer', match: { containerName: 'irc-*' }, action: { label: 'identgate.ident' } },
      { name: 'team', match: { containerLabel: { team: ['chat', 'ops'] } }, action: { userId: 'team' } },
      { name: 'printer', match: { innerAddress: '10.0.0.9' }, action: { error: 'HIDDEN-USER' } },
      { name: 'desk', match: { innerAddress: '10.0.0.2' }, action: { userId: 'alice' }, opsys: 'UNIX' },
      {
        name: 'high-ports',
        match: { innerAddress: '10.0.0.0/24', innerPort: '50000-65535' },
        action: { userId: 'hi' },
      },
      {
        name: 'lan',
        match: { innerAddress: ['10.0.0.0/24', 'fd00:1::/64'] },
        action: { pseudonym: { of: 'innerAddress' } },
      },
    ],
    default: { action: { reveal: 'name' } },
  }),
);

describe('NAT conditions', () => {
  it('match the inner host by address, in IPv4 and IPv6, and by its port', () => {
    expect(decide(POLICY, natRequest(inner('10.0.0.2'))).answer).toEqual({
      type: 'USERID',
      opsys: 'UNIX',
      userId: 'alice',
    });
    expect(decide(POLICY, natRequest(inner('10.0.0.9'))).answer).toEqual({ type: 'ERROR', error: 'HIDDEN-USER' });
    expect(decide(POLICY, natRequest(inner('10.0.0.3', 51000))).rule).toBe('high-ports');
    expect(decide(POLICY, natRequest(inner('10.0.0.3', 40000))).rule).toBe('lan');
    expect(decide(POLICY, natRequest(inner('fd00:1::7'))).rule).toBe('lan');
    expect(decide(POLICY, natRequest(inner('::ffff:10.0.0.2'))).rule).toBe('desk');
  });

  it('never hold without an inner host: nat null, nat absent, or another network', () => {
    expect(decide(POLICY, natRequest(null)).rule).toBe('default');
    expect(decide(POLICY, natRequest(undefined)).rule).toBe('default');
    expect(decide(POLICY, natRequest(inner('10.0.1.2'))).rule).toBe('default');
    expect(decide(POLICY, natRequest(null)).answer).toEqual({ type: 'ERROR', error: 'NO-USER' });
  });

  it('match a container by name glob and by label values', () => {
    const bouncer = { name: 'irc-znc', labels: { 'identgate.ident': 'znc' } };
    expect(decide(POLICY, natRequest(inner('172.17.0.2'), bouncer)).answer).toEqual({
      type: 'USERID',
      opsys: 'OTHER',
      userId: 'znc',
    });
    expect(decide(POLICY, natRequest(inner('172.17.0.3'), { name: 'web', labels: { team: 'ops' } })).rule).toBe('team');
    expect(decide(POLICY, natRequest(inner('172.17.0.3'), { name: 'web', labels: { team: 'web' } })).rule).toBe(
      'default',
    );
    expect(decide(POLICY, natRequest(inner('172.17.0.3'), null)).rule).toBe('default');
  });

  it('are named by explain when they rule a rule out', () => {
    const explanation = explain(POLICY, natRequest(inner('10.0.0.3', 40000)));
    expect(explanation.rule).toBe('lan');
    expect(explanation.skipped).toContainEqual({ rule: 'desk', ruleIndex: 3, failed: 'innerAddress' });
    expect(explanation.skipped).toContainEqual({ rule: 'high-ports', ruleIndex: 4, failed: 'innerPort' });
    expect(explanation.skipped).toContainEqual({ rule: 'bouncer', ruleIndex: 0, failed: 'containerName' });
  });

  it('refuse bad values, naming the field', () => {
    const bad =
      (match: object, action: object = { error: 'NO-USER' }) =>
      () =>
        parsePolicy({
          version: 1,
          key: KEY,
          rules: [{ name: 'r', match, action }],
          default: { action: { error: 'NO-USER' } },
        });
    expect(bad({ innerAddress: '10.0.0.1/8' })).toThrow('rules[0].match.innerAddress: not a CIDR: 10.0.0.1/8');
    expect(bad({ innerPort: '9-1' })).toThrow('rules[0].match.innerPort');
    expect(bad({ containerLabel: {} })).toThrow('rules[0].match.containerLabel: must name 1..16 labels');
    expect(bad({ containerLabel: { team: [] } })).toThrow('rules[0].match.containerLabel.team');
    expect(bad({ containerName: '' })).toThrow('rules[0].match.containerName: must not be empty');
    expect(bad({}, { pseudonym: { of: 'mac' } })).toThrow(
      'rules[0].action.pseudonym.of: must be "uid" or "innerAddress"',
    );
    expect(bad({}, { label: '' })).toThrow('rules[0].action.label: must name a label');
  });
});

describe('per-inner-host answers', () => {
  it('give each inner host a stable pseudonym of its own, unlike any uid pseudonym', () => {
    const a = decide(POLICY, natRequest(inner('10.0.0.3', 40000))).answer;
    const again = decide(POLICY, natRequest(inner('10.0.0.3', 41000))).answer;
    const b = decide(POLICY, natRequest(inner('10.0.0.4', 40000))).answer;
    const otherGateway = decide(POLICY, natRequest(inner('10.0.0.3', 40000), undefined, 'router2')).answer;
    expect(a.type).toBe('USERID');
    expect(a).toEqual(again);
    expect(a).not.toEqual(b);
    expect(a).not.toEqual(otherGateway);
    expect(a.type === 'USERID' && a.userId).toMatch(/^u[a-z2-7]{12}$/);
  });

  it('answer ifUnknown for a pseudonym of no inner host', () => {
    const policy = compilePolicy(
      parsePolicy({
        version: 1,
        key: KEY,
        rules: [],
        default: { action: { pseudonym: { of: 'innerAddress' }, ifUnknown: 'HIDDEN-USER' } },
      }),
    );
    expect(decide(policy, natRequest(null)).answer).toEqual({ type: 'ERROR', error: 'HIDDEN-USER' });
  });

  it('take a label value as the user id, ifMissing without one, UNKNOWN-ERROR for one that cannot be written', () => {
    const policy = compilePolicy(
      parsePolicy({
        version: 1,
        rules: [],
        default: { action: { label: 'identgate.ident', ifMissing: 'HIDDEN-USER' } },
      }),
    );
    const withLabel = (value: string) =>
      natRequest(inner('172.17.0.2'), { name: 'c', labels: { 'identgate.ident': value } });
    expect(decide(policy, withLabel('lounge')).answer).toEqual({ type: 'USERID', opsys: 'OTHER', userId: 'lounge' });
    expect(decide(policy, withLabel('ünïcode')).answer).toEqual({
      type: 'USERID',
      opsys: 'OTHER',
      charset: 'UTF-8',
      userId: 'ünïcode',
    });
    expect(decide(policy, withLabel('a\r\n1,2:USERID:UNIX:root')).answer).toEqual({
      type: 'ERROR',
      error: 'UNKNOWN-ERROR',
    });
    expect(decide(policy, withLabel('')).answer).toEqual({ type: 'ERROR', error: 'HIDDEN-USER' });
    expect(decide(policy, natRequest(inner('172.17.0.2'), { name: 'c', labels: {} })).answer).toEqual({
      type: 'ERROR',
      error: 'HIDDEN-USER',
    });
    expect(decide(policy, natRequest(inner('172.17.0.2'), null)).answer).toEqual({
      type: 'ERROR',
      error: 'HIDDEN-USER',
    });
  });
});

describe('forwarding to the inner host', () => {
  const policy = compilePolicy(
    parsePolicy({
      version: 1,
      rules: [
        {
          name: 'lan',
          match: { innerAddress: '10.0.0.0/24' },
          action: {
            forward: { host: 'inner', port: 113 },
            accept: { maxLength: 10 },
            fallback: { userId: 'lan-user' },
          },
        },
      ],
      default: { action: { forward: { host: 'inner', port: 1113 } } },
    }),
  );

  it('delegates a forward to the inner address, asking about the inner port and the remote port', () => {
    const decision = decide(policy, natRequest(inner('10.0.0.2', 40002)));
    expect(decision.answer).toEqual({ type: 'USERID', opsys: 'OTHER', userId: 'lan-user' });
    expect(decision.delegate).toEqual({
      kind: 'forward',
      host: '10.0.0.2',
      port: 113,
      query: { serverPort: 40002, clientPort: 23 },
      opsys: 'OTHER',
      accept: { maxLength: 10, localNames: false },
    });
    expect(decide(policy, natRequest(inner('fd00::2', 40003))).delegate).toMatchObject({ host: 'fd00::2', port: 1113 });
  });

  it('answers the fallback at once, with no delegate, when there is no inner host', () => {
    const decision = decide(policy, natRequest(null));
    expect(decision.delegate).toBeUndefined();
    expect(decision.answer).toEqual({ type: 'ERROR', error: 'UNKNOWN-ERROR' });
  });

  it('refuses a host that is neither an address nor "inner"', () => {
    expect(() =>
      parsePolicy({ version: 1, rules: [], default: { action: { forward: { host: 'router.lan', port: 113 } } } }),
    ).toThrow('default.action.forward.host: must be an IP address (127.0.0.1, ::1, ...) or "inner"');
  });
});
