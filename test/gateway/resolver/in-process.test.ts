/**
 * The embedded resolver over the app's in-process lookups (what `identgate
 * serve --policy` uses): no Request and no fetch, concurrent queries in one
 * call, an app's schema refusal failing only the bad request, and typed
 * answers still checked for ids and the RFC 1413 reply rules.
 */
import { describe, expect, it } from 'vitest';
import type { FetchApp } from '../../../gateway/resolver/embedded.js';
import { LookupRequestSchema, type LookupAnswer, type LookupRequest } from '../../../protocol/wire.js';
import { createApp, RequestRejected } from '../../../worker/app.js';
import { parsePolicy } from '../../../worker/policy/index.js';
import { createMemoryStore } from '../../../worker/stores/memory.js';
import { embeddedWithReports, expectFallback, FALLBACK } from '../../helpers/embedded-resolver.js';
import { lookupRequest } from '../../helpers/wire.js';

/** The real app with a policy that names owners to loopback peers; fetch must not be used. */
function policyApp(): FetchApp & { fetches: number } {
  const policy = parsePolicy({
    version: 1,
    rules: [{ name: 'loopback', match: { clientAddress: '127.0.0.0/8' }, action: { reveal: 'name' } }],
    default: { action: { error: 'NO-USER' } },
  });
  const app = createApp({ store: createMemoryStore(policy), secrets: [], mode: 'embedded' });
  const counted = {
    fetches: 0,
    inProcess: app.inProcess,
    fetch: (request: Request) => {
      counted.fetches++;
      return app.fetch(request);
    },
  };
  return counted;
}

/** An app whose in-process lookups answer what `answer` says. */
function fakeApp(answer: (requests: readonly LookupRequest[]) => Promise<LookupAnswer[]>): FetchApp {
  return {
    fetch: () => {
      throw new Error('fetch must not be called');
    },
    inProcess: { lookup: (requests) => answer(requests as readonly LookupRequest[]) },
  };
}

describe('embedded resolver answering at once', () => {
  it('answers through resolveNow, without the asynchronous lookup, once the app has its policy', async () => {
    const real = policyApp();
    let asynchronous = 0;
    const app: FetchApp = {
      fetch: real.fetch,
      inProcess: {
        lookup: (requests) => {
          asynchronous++;
          return real.inProcess!.lookup(requests);
        },
        lookupNow: (requests) => real.inProcess!.lookupNow!(requests),
      },
    };
    const { resolver, causes } = embeddedWithReports(app);
    expect(resolver.resolveNow!(lookupRequest('early'))).toBeUndefined(); // the store compiles on first use
    expect((await resolver.resolve(lookupRequest('early'))).rule).toBe('loopback');
    expect(asynchronous).toBe(1);
    expect(resolver.resolveNow!(lookupRequest('now'))).toEqual({
      v: 1,
      id: 'now',
      answer: { type: 'USERID', opsys: 'UNIX', userId: 'alice' },
      rule: 'loopback',
    });
    expect(asynchronous).toBe(1);
    expect(causes).toEqual([]);
  });

  it('gives undefined for an answer breaking a reply rule, and resolve() then answers the fallback and reports it', async () => {
    const bad = (request: LookupRequest): LookupAnswer => ({
      v: 1,
      id: request.id,
      answer: { type: 'USERID', opsys: 'UNIX', userId: 'a\r\nb' },
      rule: 'r',
    });
    const app: FetchApp = {
      fetch: () => {
        throw new Error('fetch must not be called');
      },
      inProcess: { lookup: async (requests) => requests.map(bad), lookupNow: (requests) => requests.map(bad) },
    };
    const { resolver, causes } = embeddedWithReports(app);
    expect(resolver.resolveNow!(lookupRequest('x'))).toBeUndefined();
    await expectFallback(resolver, 'x');
    expect(causes).toEqual(['invalid_answer']);
  });

  it('gives undefined once closed', async () => {
    const { resolver } = embeddedWithReports(policyApp());
    await resolver.resolve(lookupRequest('load'));
    await resolver.close();
    expect(resolver.resolveNow!(lookupRequest('late'))).toBeUndefined();
  });
});

describe('embedded resolver over in-process lookups', () => {
  it('answers from the app without calling fetch', async () => {
    const app = policyApp();
    const { resolver, causes } = embeddedWithReports(app);
    expect(await resolver.resolve(lookupRequest('q1'))).toEqual({
      v: 1,
      id: 'q1',
      answer: { type: 'USERID', opsys: 'UNIX', userId: 'alice' },
      rule: 'loopback',
    });
    expect(app.fetches).toBe(0);
    expect(causes).toEqual([]);
  });

  it('hands concurrent queries to the app in one call, answers in order', async () => {
    const calls: string[][] = [];
    const real = policyApp();
    const { resolver } = embeddedWithReports(
      fakeApp(async (requests) => {
        calls.push(requests.map((request) => request.id));
        return real.inProcess!.lookup(requests);
      }),
    );
    const answers = await Promise.all(['a', 'b', 'c'].map((id) => resolver.resolve(lookupRequest(id))));
    expect(answers.map((answer) => [answer.id, answer.rule])).toEqual([
      ['a', 'loopback'],
      ['b', 'loopback'],
      ['c', 'loopback'],
    ]);
    expect(calls).toEqual([['a', 'b', 'c']]);
  });

  it('answers the fallback only to a request an app refuses by the wire schema, and the others from the app', async () => {
    // The real app trusts the gateway's typed requests; an app that checks them refuses like the batch route.
    const real = policyApp();
    const checking = fakeApp(async (requests) => {
      const bad = requests.find((request) => !LookupRequestSchema.safeParse(request).success);
      if (bad) throw new RequestRejected(400, 'invalid_request', `request ${bad.id} breaks the wire schema`);
      return real.inProcess!.lookup(requests);
    });
    const { resolver, causes } = embeddedWithReports(checking);
    const [good, bad] = await Promise.all([
      resolver.resolve(lookupRequest('good')),
      resolver.resolve(lookupRequest('bad', 0)),
    ]);
    expect(good).toMatchObject({ id: 'good', rule: 'loopback' });
    expect(bad).toEqual({ v: 1, id: 'bad', answer: FALLBACK, rule: '(fallback)' });
    expect(causes).toEqual(['invalid_request']);
  });

  it('answers the fallback when the app answers a user id with CR in it', async () => {
    const { resolver, causes } = embeddedWithReports(
      fakeApp(async (requests) =>
        requests.map((request) => ({
          v: 1,
          id: request.id,
          answer: { type: 'USERID', opsys: 'UNIX', userId: 'root\r' },
          rule: 'r',
        })),
      ),
    );
    await expectFallback(resolver, 'a');
    expect(causes).toEqual(['invalid_answer']);
  });

  it('answers the fallback when the app answers with another id', async () => {
    const { resolver, causes } = embeddedWithReports(
      fakeApp(async () => [{ v: 1, id: 'someone-else', answer: { type: 'ERROR', error: 'NO-USER' }, rule: 'r' }]),
    );
    await expectFallback(resolver, 'a');
    expect(causes).toEqual(['id_mismatch']);
  });

  it('answers the fallback with app_error when the app throws', async () => {
    const { resolver, causes } = embeddedWithReports(
      fakeApp(async () => {
        throw new Error('policy engine bug');
      }),
    );
    await expectFallback(resolver, 'a');
    expect(causes).toEqual(['app_error']);
  });

  it('answers the fallback within the deadline when the app never answers', async () => {
    const { resolver, causes } = embeddedWithReports(fakeApp(() => new Promise<LookupAnswer[]>(() => undefined)));
    await expectFallback(resolver, 'a');
    expect(causes).toEqual(['timeout']);
  });
});
