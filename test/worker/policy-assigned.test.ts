import { describe, expect, it } from 'vitest';
import { compilePolicy, decide, explain, parsePolicy } from '../../worker/policy/index.js';
import type { AssignedIdents } from '../../worker/policy/actions/action.js';
import { request } from './policy-helpers.js';

const assignments = (byScope: Record<string, string>): AssignedIdents => ({
  identFor: (gateway, ownerUid, claimUser) =>
    byScope[claimUser !== null ? `${gateway}/claim/${claimUser}` : `${gateway}/uid/${ownerUid}`],
});

const policyWith = (action: unknown, extra: object = {}) =>
  compilePolicy(parsePolicy({ version: 1, ...extra, rules: [], default: { action } }));

describe('the assigned action', () => {
  const owner = policyWith({ assigned: { otherwise: { error: 'HIDDEN-USER' } } });

  it('answers the ident assigned to the owner on this gateway, with opsys OTHER', () => {
    const answer = decide(owner, request(), undefined, assignments({ 'gw-eu-1/uid/1000': 'alice-irc' })).answer;
    expect(answer).toEqual({ type: 'USERID', opsys: 'OTHER', userId: 'alice-irc' });
  });

  it('answers otherwise when nothing is assigned, on another gateway, for an unknown owner, or without a database', () => {
    const some = assignments({ 'gw-us-1/uid/1000': 'alice-us' });
    const hidden = { type: 'ERROR', error: 'HIDDEN-USER' };
    expect(decide(owner, request(), undefined, some).answer).toEqual(hidden);
    expect(decide(owner, request({ owner: null }), undefined, some).answer).toEqual(hidden);
    expect(decide(owner, request()).answer).toEqual(hidden);
  });

  it('with scope claim answers the claim user’s ident, and never the owner’s', () => {
    const claim = policyWith({ assigned: { scope: 'claim', otherwise: { reveal: 'name' } } });
    const idents = assignments({ 'gw-eu-1/claim/bob': 'bob-q', 'gw-eu-1/uid/1000': 'alice-irc' });
    const claimed = { ...request(), claim: { user: 'bob' } };
    expect(decide(claim, claimed, undefined, idents).answer).toMatchObject({ userId: 'bob-q' });
    expect(decide(claim, request(), undefined, idents).answer).toMatchObject({ userId: 'alice', opsys: 'UNIX' });
  });

  it('falls back to a pseudonym, which then needs the policy key', () => {
    expect(() =>
      parsePolicy({ version: 1, rules: [], default: { action: { assigned: { otherwise: { pseudonym: {} } } } } }),
    ).toThrow(/key/);
    const keyed = policyWith({ assigned: { otherwise: { pseudonym: {} } } }, { key: 'k'.repeat(16) });
    expect(decide(keyed, request()).answer).toMatchObject({ type: 'USERID', userId: expect.stringMatching(/^u/) });
  });

  it('refuses an assigned action as its own fallback, and a bad fixed fallback id by its path', () => {
    expect(() => policyWith({ assigned: { otherwise: { assigned: { otherwise: { error: 'NO-USER' } } } } })).toThrow(
      /another action/,
    );
    expect(() => policyWith({ assigned: { otherwise: { userId: 'a\u00e9' } } })).toThrow(
      /default\.action\.assigned\.otherwise\.userId/,
    );
  });

  it('is explained with the same answer as decided', () => {
    const idents = assignments({ 'gw-eu-1/uid/1000': 'alice-irc' });
    expect(explain(owner, request(), undefined, idents).answer).toEqual(
      decide(owner, request(), undefined, idents).answer,
    );
  });
});
