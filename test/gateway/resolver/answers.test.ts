/**
 * The pure parts shared by both resolvers: which route and body a group of
 * requests becomes, and how a reply from the worker becomes answers or a
 * ResolverFailure with the right reason.
 */
import { describe, expect, it } from 'vitest';
import { ResolverFailure, type FailureCause } from '../../../gateway/resolver/types.js';
import { buildExchange, fallbackAnswer, parseExchangeReply } from '../../../gateway/resolver/wire.js';
import { ROUTES, type LookupAnswer } from '../../../protocol/wire.js';
import { lookupRequest } from '../../helpers/wire.js';

function answer(id: string): LookupAnswer {
  return { v: 1, id, answer: { type: 'ERROR', error: 'NO-USER' }, rule: 'default' };
}

function reasonFor(status: number, text: string, requests = [lookupRequest('a')]): FailureCause {
  try {
    parseExchangeReply({ status, text }, requests);
  } catch (error) {
    expect(error).toBeInstanceOf(ResolverFailure);
    expect((error as ResolverFailure).code).toBe('ERR_RESOLVER_FAILURE');
    return (error as ResolverFailure).reason;
  }
  throw new Error('expected a ResolverFailure');
}

describe('building exchanges', () => {
  it('sends one request to the lookup route as a bare LookupRequest', () => {
    expect(buildExchange([lookupRequest('a')])).toEqual({
      path: ROUTES.lookup,
      body: JSON.stringify(lookupRequest('a')),
    });
  });

  it('sends several requests to the batch route in a BatchRequest, in order', () => {
    const { path, body } = buildExchange([lookupRequest('a'), lookupRequest('b')]);
    expect(path).toBe(ROUTES.batch);
    expect(JSON.parse(body)).toEqual({ v: 1, requests: [lookupRequest('a'), lookupRequest('b')] });
  });
});

describe('parsing replies', () => {
  it('returns the answer of a single lookup', () => {
    expect(parseExchangeReply({ status: 200, text: JSON.stringify(answer('a')) }, [lookupRequest('a')])).toEqual([
      answer('a'),
    ]);
  });

  it("passes a remote worker's delegated answer through for the gateway to carry out", () => {
    const delegated = {
      ...answer('a'),
      delegate: {
        kind: 'forward',
        host: '127.0.0.1',
        port: 9001,
        opsys: 'OTHER',
        accept: { maxLength: 16, localNames: false },
      },
    };
    expect(parseExchangeReply({ status: 200, text: JSON.stringify(delegated) }, [lookupRequest('a')])).toEqual([
      delegated,
    ]);
  });

  it('refuses a delegate that breaks the schema (an unknown kind, a file outside the two oidentd files)', () => {
    const base = { opsys: 'OTHER', accept: { maxLength: 16, localNames: false } };
    for (const delegate of [
      { kind: 'exec', command: 'sh', ...base },
      { kind: 'userfile', files: ['../../etc/shadow'], allow: ['reply'], ...base },
    ])
      expect(reasonFor(200, JSON.stringify({ ...answer('a'), delegate }))).toBe('schema_mismatch');
  });

  it('returns batch answers in request order', () => {
    const text = JSON.stringify({ v: 1, answers: [answer('a'), answer('b')] });
    expect(parseExchangeReply({ status: 200, text }, [lookupRequest('a'), lookupRequest('b')])).toEqual([
      answer('a'),
      answer('b'),
    ]);
  });

  it('names each kind of bad reply with its own reason', () => {
    expect(reasonFor(500, '')).toBe('http_status');
    expect(reasonFor(302, '')).toBe('http_status');
    expect(reasonFor(401, '')).toBe('auth');
    expect(reasonFor(403, '')).toBe('auth');
    expect(reasonFor(200, '{"v":1,')).toBe('invalid_json');
    expect(reasonFor(200, JSON.stringify({ ...answer('a'), v: 2 }))).toBe('schema_mismatch');
    expect(reasonFor(200, JSON.stringify({ ...answer('a'), extra: true }))).toBe('schema_mismatch');
    expect(reasonFor(200, JSON.stringify({ v: 1, answers: [answer('a')] }))).toBe('schema_mismatch');
    expect(reasonFor(200, JSON.stringify(answer('b')))).toBe('id_mismatch');
    expect(
      reasonFor(200, JSON.stringify({ ...answer('a'), answer: { type: 'USERID', opsys: 'UNIX', userId: 'x\ny' } })),
    ).toBe('invalid_answer');
    expect(
      reasonFor(200, JSON.stringify({ ...answer('a'), answer: { type: 'USERID', opsys: 'UN IX', userId: 'x' } })),
    ).toBe('invalid_answer');
    expect(
      reasonFor(200, JSON.stringify({ ...answer('a'), answer: { type: 'USERID', opsys: 'UNIX', userId: 'héllo' } })),
    ).toBe('invalid_answer');
  });

  it('includes the WireError message of a non-2xx reply in the failure message', () => {
    try {
      parseExchangeReply(
        { status: 503, text: JSON.stringify({ error: { code: 'store_down', message: 'KV unavailable' } }) },
        [lookupRequest('a')],
      );
      throw new Error('expected a ResolverFailure');
    } catch (error) {
      expect((error as Error).message).toBe('worker answered HTTP 503: store_down: KV unavailable');
    }
  });

  it('rejects a batch whose answers are in another order or fewer than the requests', () => {
    const requests = [lookupRequest('a'), lookupRequest('b')];
    expect(reasonFor(200, JSON.stringify({ v: 1, answers: [answer('b'), answer('a')] }), requests)).toBe('id_mismatch');
    expect(reasonFor(200, JSON.stringify({ v: 1, answers: [answer('a')] }), requests)).toBe('id_mismatch');
  });

  it('builds the fallback answer with the request id and the (fallback) rule', () => {
    expect(fallbackAnswer(lookupRequest('a'), { type: 'ERROR', error: 'HIDDEN-USER' })).toEqual({
      v: 1,
      id: 'a',
      answer: { type: 'ERROR', error: 'HIDDEN-USER' },
      rule: '(fallback)',
    });
  });
});
