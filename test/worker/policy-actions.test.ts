import { describe, expect, it } from 'vitest';
import { replyRuleViolation } from '../../protocol/reply.js';
import { compilePolicy, decide, parsePolicy } from '../../worker/policy/index.js';
import { KEY, oneRule, request } from './policy-helpers.js';

const answer = (
  action: Parameters<typeof oneRule>[1],
  facts: Parameters<typeof request>[0] = {},
  extra: Record<string, unknown> = {},
) => decide(oneRule({}, action, extra), request(facts)).answer;

function keyed(key: string, action: object = { pseudonym: {} }) {
  return compilePolicy(
    parsePolicy({ version: 1, key, rules: [{ name: 'p', action }], default: { action: { error: 'NO-USER' } } }),
  );
}

describe('reveal', () => {
  it('reveal name answers the owner name with opsys UNIX', () => {
    expect(answer({ reveal: 'name' })).toEqual({ type: 'USERID', opsys: 'UNIX', userId: 'alice' });
  });

  it('reveal name answers the numeric uid with opsys OTHER when the owner has no name', () => {
    expect(answer({ reveal: 'name' }, { owner: { uid: 1234, userName: null } })).toEqual({
      type: 'USERID',
      opsys: 'OTHER',
      userId: '1234',
    });
  });

  it('reveal name answers ifNoName instead of the uid when set to an error', () => {
    expect(answer({ reveal: 'name', ifNoName: 'HIDDEN-USER' }, { owner: { uid: 1234, userName: null } })).toEqual({
      type: 'ERROR',
      error: 'HIDDEN-USER',
    });
  });

  it('reveal answers NO-USER for an unknown owner, or ifUnknown', () => {
    expect(answer({ reveal: 'name' }, { owner: null })).toEqual({ type: 'ERROR', error: 'NO-USER' });
    expect(answer({ reveal: 'uid', ifUnknown: 'X-NOT-FOUND' }, { owner: null })).toEqual({
      type: 'ERROR',
      error: 'X-NOT-FOUND',
    });
  });

  it('reveal uid answers the numeric uid with opsys OTHER', () => {
    expect(answer({ reveal: 'uid' })).toEqual({ type: 'USERID', opsys: 'OTHER', userId: '1000' });
  });

  it('a rule opsys and charset override the defaults', () => {
    expect(answer({ reveal: 'uid' }, {}, { opsys: 'UNIX', charset: 'US-ASCII' })).toEqual({
      type: 'USERID',
      opsys: 'UNIX',
      charset: 'US-ASCII',
      userId: '1000',
    });
  });

  it('a non-ASCII owner name is answered with charset UTF-8', () => {
    expect(answer({ reveal: 'name' }, { owner: { uid: 1, userName: 'jürgen' } })).toEqual({
      type: 'USERID',
      opsys: 'UNIX',
      charset: 'UTF-8',
      userId: 'jürgen',
    });
  });

  it('an owner name that cannot be written becomes UNKNOWN-ERROR', () => {
    for (const userName of ['a\r\nb', 'nul\0', ' lead', 'x'.repeat(513)]) {
      expect(answer({ reveal: 'name' }, { owner: { uid: 1, userName } })).toEqual({
        type: 'ERROR',
        error: 'UNKNOWN-ERROR',
      });
    }
    expect(answer({ reveal: 'name' }, { owner: { uid: 1, userName: 'jürgen' } }, { charset: 'US-ASCII' })).toEqual({
      type: 'ERROR',
      error: 'UNKNOWN-ERROR',
    });
  });
});

describe('fixed, error and random', () => {
  it('userId answers the fixed id with opsys OTHER', () => {
    expect(answer({ userId: 'nobody' })).toEqual({ type: 'USERID', opsys: 'OTHER', userId: 'nobody' });
  });

  it('error answers the error token', () => {
    expect(answer({ error: 'X-GO-AWAY' })).toEqual({ type: 'ERROR', error: 'X-GO-AWAY' });
  });

  it('random from picks an id from the list using the random source', () => {
    const compiled = oneRule({}, { random: { from: ['a', 'b', 'c'] } });
    expect(decide(compiled, request(), () => 0).answer).toEqual({ type: 'USERID', opsys: 'OTHER', userId: 'a' });
    expect(decide(compiled, request(), () => 0.5).answer).toMatchObject({ userId: 'b' });
    expect(decide(compiled, request(), () => 0.9999999).answer).toMatchObject({ userId: 'c' });
    expect(decide(compiled, request(), () => 1).answer).toMatchObject({ userId: 'c' });
  });

  it('random from with the default source stays within the list', () => {
    const compiled = oneRule({}, { random: { from: ['a', 'b', 'c'] } });
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const result = decide(compiled, request()).answer;
      if (result.type === 'USERID') seen.add(result.userId);
    }
    expect([...seen].sort()).toEqual(['a', 'b', 'c']);
  });

  it('random chars draws that many characters from the alphabet', () => {
    const compiled = oneRule({}, { random: { chars: 10, alphabet: 'xy' } });
    for (let i = 0; i < 50; i++)
      expect(decide(compiled, request()).answer).toMatchObject({
        type: 'USERID',
        opsys: 'OTHER',
        userId: expect.stringMatching(/^[xy]{10}$/),
      });
    expect(decide(oneRule({}, { random: { chars: 8 } }), request()).answer).toMatchObject({
      userId: expect.stringMatching(/^[a-z0-9]{8}$/),
    });
  });
});

describe('pseudonym', () => {
  it('gives the same owner through the same gateway the same token', () => {
    const first = decide(keyed(KEY), request()).answer;
    const second = decide(keyed(KEY), request({ clientAddress: '203.0.113.5', serverPort: 4444 })).answer;
    expect(first).toMatchObject({ type: 'USERID', opsys: 'OTHER', userId: expect.stringMatching(/^u[a-z2-7]{12}$/) });
    expect(second).toEqual(first);
  });

  it('depends on the uid, the gateway and the key', () => {
    const base = decide(keyed(KEY), request()).answer;
    expect(decide(keyed(KEY), request({ owner: { uid: 1001, userName: 'alice' } })).answer).not.toEqual(base);
    expect(decide(keyed(KEY), request({ gateway: 'gw-eu-2' })).answer).not.toEqual(base);
    expect(decide(keyed(`${KEY}!`), request()).answer).not.toEqual(base);
  });

  it('ignores the user name (a renamed account keeps its pseudonym)', () => {
    expect(decide(keyed(KEY), request({ owner: { uid: 1000, userName: 'alice2' } })).answer).toEqual(
      decide(keyed(KEY), request()).answer,
    );
  });

  it('is HMAC-SHA256 of the gateway and uid, in base32, so it can be recomputed with the key', async () => {
    const { createHmac } = await import('node:crypto');
    const digest = createHmac('sha256', KEY)
      .update('identgate-pseudonym-v1\0gw-eu-1\0' + '1000')
      .digest();
    let bits = '';
    for (const octet of digest) bits += octet.toString(2).padStart(8, '0');
    const token = Array.from(
      { length: 12 },
      (_, i) => 'abcdefghijklmnopqrstuvwxyz234567'[parseInt(bits.slice(i * 5, i * 5 + 5), 2)],
    ).join('');
    expect(decide(keyed(KEY), request()).answer).toMatchObject({ userId: `u${token}` });
  });

  it('honours length and prefix', () => {
    expect(decide(keyed(KEY, { pseudonym: { length: 51, prefix: 'anon-' } }), request()).answer).toMatchObject({
      userId: expect.stringMatching(/^anon-[a-z2-7]{51}$/),
    });
    expect(decide(keyed(KEY, { pseudonym: { prefix: '' } }), request()).answer).toMatchObject({
      userId: expect.stringMatching(/^[a-z2-7]{12}$/),
    });
  });

  it('answers ifUnknown (NO-USER by default) for an unknown owner', () => {
    expect(decide(keyed(KEY), request({ owner: null })).answer).toEqual({ type: 'ERROR', error: 'NO-USER' });
    expect(decide(keyed(KEY, { pseudonym: {}, ifUnknown: 'HIDDEN-USER' }), request({ owner: null })).answer).toEqual({
      type: 'ERROR',
      error: 'HIDDEN-USER',
    });
  });

  it('every answer obeys the reply rules', () => {
    for (const facts of [{}, { owner: null }, { owner: { uid: 7, userName: 'a\nb' } }]) {
      expect(replyRuleViolation(decide(keyed(KEY), request(facts)).answer)).toBeUndefined();
    }
  });
});
