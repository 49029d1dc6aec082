/**
 * The policy actions for apps that serve many people (issue 13): claim, forward, userFile, and
 * pseudonyms per claim user. Decisions only: the gateway side of forward and userFile is tested in
 * test/gateway/delegate/.
 */
import { describe, expect, it } from 'vitest';
import type { LookupRequest } from '../../protocol/wire.js';
import { compilePolicy, decide, explain, parsePolicy, PolicyError } from '../../worker/policy/index.js';
import { KEY, request } from './policy-helpers.js';

const claimed = (user: string, ident?: string): LookupRequest => ({
  ...request(),
  claim: ident === undefined ? { user } : { user, ident },
});

function policyWith(action: object, extra: Record<string, unknown> = {}, key?: string) {
  return compilePolicy(
    parsePolicy({
      version: 1,
      ...(key && { key }),
      rules: [{ name: 'apps', action, ...extra }],
      default: { action: { error: 'NO-USER' } },
    }),
  );
}

function parseError(action: object): string {
  try {
    policyWith(action);
  } catch (error) {
    if (error instanceof PolicyError) return error.message;
    throw error;
  }
  return '(parsed)';
}

describe('the claim action', () => {
  const policy = policyWith({
    claim: { ident: { pattern: 'znc-*', maxLength: 12 }, user: { deny: ['root', 'admin*'] } },
  });

  it('answers the claimed ident when the rule allows it (opsys OTHER)', () => {
    expect(decide(policy, claimed('alice', 'znc-alice')).answer).toEqual({
      type: 'USERID',
      opsys: 'OTHER',
      userId: 'znc-alice',
    });
  });

  it("answers the claim's user when the claimed ident breaks the rule (pattern, length)", () => {
    expect(decide(policy, claimed('alice', 'root')).answer).toMatchObject({ userId: 'alice' });
    expect(decide(policy, claimed('alice', 'znc-aliceeeeee')).answer).toMatchObject({ userId: 'alice' });
  });

  it('answers HIDDEN-USER (ifRefused) when the user breaks the rule too', () => {
    expect(decide(policy, claimed('root', 'root')).answer).toEqual({ type: 'ERROR', error: 'HIDDEN-USER' });
    expect(decide(policy, claimed('admin2')).answer).toEqual({ type: 'ERROR', error: 'HIDDEN-USER' });
  });

  it('never answers a claimed ident when the rule does not name ident', () => {
    const userOnly = policyWith({ claim: {} });
    expect(decide(userOnly, claimed('alice', 'anything')).answer).toMatchObject({ userId: 'alice' });
  });

  it('answers NO-USER (ifUnclaimed) for a connection nobody claimed, as on the wire without the field', () => {
    expect(decide(policy, request()).answer).toEqual({ type: 'ERROR', error: 'NO-USER' });
    expect(decide(policy, { ...request(), claim: null }).answer).toEqual({ type: 'ERROR', error: 'NO-USER' });
  });

  it('refuses localNames (the worker has no account list) and unknown fields', () => {
    expect(parseError({ claim: { ident: { localNames: true } } })).toMatch(
      /action\.claim\.ident\.localNames: unknown field/,
    );
    expect(parseError({ claim: { idnet: {} } })).toMatch(/unknown field/);
  });
});

describe('a claim changes nothing without a rule that grants it', () => {
  it('reveal name and the plain pseudonym answer the same for a claimed connection', () => {
    const reveal = policyWith({ reveal: 'name' });
    expect(decide(reveal, claimed('bob', 'bob')).answer).toEqual(decide(reveal, request()).answer);
    const pseudonym = policyWith({ pseudonym: {} }, {}, KEY);
    expect(decide(pseudonym, claimed('bob')).answer).toEqual(decide(pseudonym, request()).answer);
  });
});

describe('pseudonyms per claim user', () => {
  const policy = policyWith({ pseudonym: { perClaimUser: true, length: 10 } }, {}, KEY);
  const id = (req: LookupRequest) => (decide(policy, req).answer as { userId: string }).userId;

  it("differ between a bouncer's users and are stable for each", () => {
    expect(id(claimed('alice'))).toBe(id(claimed('alice', 'whatever')));
    expect(id(claimed('alice'))).not.toBe(id(claimed('bob')));
  });

  it('equal the plain pseudonym for an unclaimed connection, so adding perClaimUser changes nobody else', () => {
    const plain = policyWith({ pseudonym: { length: 10 } }, {}, KEY);
    expect(id(request())).toBe((decide(plain, request()).answer as { userId: string }).userId);
    expect(id(claimed('alice'))).not.toBe(id(request()));
  });
});

describe('the forward and userFile actions delegate to the gateway', () => {
  it('forward: the decision carries the delegate and the fallback (default UNKNOWN-ERROR)', () => {
    const decision = decide(policyWith({ forward: { port: 9001 } }), request());
    expect(decision).toEqual({
      rule: 'apps',
      answer: { type: 'ERROR', error: 'UNKNOWN-ERROR' },
      delegate: {
        kind: 'forward',
        host: '127.0.0.1',
        port: 9001,
        opsys: 'OTHER',
        accept: { maxLength: 32, localNames: false },
      },
    });
  });

  it("userFile: oidentd's two files in order, every capability but forward, the rule's opsys, a computed fallback", () => {
    const decision = decide(
      policyWith(
        { userFile: {}, accept: { pattern: ['[a-z]*', 'z*'], maxLength: 10 }, fallback: { reveal: 'name' } },
        { opsys: 'UNIX' },
      ),
      request(),
    );
    expect(decision.answer).toEqual({ type: 'USERID', opsys: 'UNIX', userId: 'alice' });
    expect(decision.delegate).toEqual({
      kind: 'userfile',
      files: ['.config/oidentd.conf', '.oidentd.conf'],
      allow: ['reply', 'hide', 'random', 'numeric', 'random_numeric'],
      opsys: 'UNIX',
      accept: { pattern: ['[a-z]*', 'z*'], maxLength: 10, localNames: false },
    });
  });

  it('explain shows the delegate', () => {
    const explanation = explain(policyWith({ userFile: { files: ['.oidentd.conf'] } }), request());
    expect(explanation.delegate).toMatchObject({ kind: 'userfile', files: ['.oidentd.conf'] });
  });

  it('refuses a fallback that delegates again, a host that is not an address, an unknown file or capability', () => {
    expect(parseError({ forward: { port: 9001 }, fallback: { userFile: {} } })).toMatch(
      /rules\[0\]\.action\.fallback: a fallback cannot itself be "userFile"/,
    );
    expect(parseError({ forward: { port: 9001, host: 'localhost' } })).toMatch(/host: must be an IP address/);
    expect(parseError({ userFile: { files: ['.bashrc'] } })).toMatch(/files\[0\]: must be/);
    expect(parseError({ userFile: { allow: ['spoof'] } })).toMatch(/allow\[0\]: must be one of/);
  });

  it('checks a fixed fallback id against the reply rules and asks for the key a pseudonym fallback needs', () => {
    expect(parseError({ forward: { port: 9001 }, fallback: { userId: 'a\nb' } })).toMatch(
      /action\.fallback\.userId: user id must not contain NUL, CR or LF/,
    );
    expect(parseError({ forward: { port: 9001 }, fallback: { pseudonym: {} } })).toMatch(/^key: required/m);
  });
});

describe('the claimed and claimUser conditions', () => {
  const policy = compilePolicy(
    parsePolicy({
      version: 1,
      rules: [
        { name: 'bots', match: { claimUser: ['bot-*', 'eggdrop'] }, action: { userId: 'bot' } },
        { name: 'claimed', match: { claimed: true }, action: { claim: {} } },
        { name: 'unclaimed', match: { claimed: false, ownerName: 'alice' }, action: { reveal: 'name' } },
      ],
      default: { action: { error: 'NO-USER' } },
    }),
  );

  it('match the claim: a glob on its user, or whether there is one', () => {
    expect(decide(policy, claimed('bot-7')).rule).toBe('bots');
    expect(decide(policy, claimed('eggdrop')).rule).toBe('bots');
    expect(decide(policy, claimed('carol')).rule).toBe('claimed');
    expect(decide(policy, request()).rule).toBe('unclaimed');
    expect(decide(policy, { ...request(), claim: null }).rule).toBe('unclaimed');
  });

  it('are shown by explain: the claim condition that ruled a rule out, and the matching one', () => {
    const explanation = explain(policy, claimed('carol'));
    expect(explanation.skipped).toEqual([{ rule: 'bots', ruleIndex: 0, failed: 'claimUser' }]);
    expect(explanation.matched).toEqual({ claimed: true });
    expect(explain(policy, request()).skipped.map((rule) => rule.failed)).toEqual(['claimUser', 'claimed']);
  });

  it('refuse a value of the wrong kind, by path', () => {
    expect(() =>
      parsePolicy({
        version: 1,
        rules: [{ name: 'r', match: { claimed: 'yes' }, action: { claim: {} } }],
        default: { action: { error: 'NO-USER' } },
      }),
    ).toThrow(/rules\[0\]\.match\.claimed: must be true or false/);
    expect(() =>
      parsePolicy({
        version: 1,
        rules: [{ name: 'r', match: { claimUser: [] }, action: { claim: {} } }],
        default: { action: { error: 'NO-USER' } },
      }),
    ).toThrow(/rules\[0\]\.match\.claimUser: must list at least one user name/);
  });
});
