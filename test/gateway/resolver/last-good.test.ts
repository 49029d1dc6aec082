import { describe, expect, it } from 'vitest';
import { LastGoodPolicy } from '../../../gateway/resolver/last-good.js';
import { mapHttpError } from '../../../gateway/resolver/http.js';
import { ResolverFailure, type Exchange } from '../../../gateway/resolver/types.js';
import { createApp } from '../../../worker/app.js';
import { createMemoryStore } from '../../../worker/stores/memory.js';
import { parsePolicy } from '../../../worker/policy/index.js';
import { ROUTES, type LookupAnswer } from '../../../protocol/wire.js';
import { lookupRequest, signedRequest } from '../../worker/workerd/fixtures.js';

const SECRET = 'last-good-secret';
const POLICY = {
  version: 1,
  key: 'pseudonym-key-0123456789',
  rules: [
    { name: 'edges', match: { gateway: 'edge-*', serverPort: 400 }, action: { reveal: 'name' }, opsys: 'UNIX' },
    { name: 'keyed', match: { serverPort: 401 }, action: { pseudonym: {} } },
    { name: 'assigned', match: { serverPort: 402 }, action: { assigned: { otherwise: { error: 'NO-USER' } } } },
    { name: 'forwarded', match: { serverPort: 403 }, action: { forward: { host: '192.0.2.9', port: 113 } } },
  ],
  default: { action: { error: 'HIDDEN-USER' } },
};

/** The worker app in this process, and an exchange reaching it as the HTTP resolver's does (signed POSTs). */
function setUp(policy: unknown = POLICY) {
  const store = createMemoryStore(parsePolicy(policy));
  const worker = createApp({ store, secrets: [SECRET] });
  let down = false;
  const exchange: Exchange = async (path, body) => {
    if (down) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    const res = await worker.fetch(await signedRequest([SECRET], path, body));
    return { status: res.status, text: await res.text() };
  };
  let nowMs = 1_000_000;
  const failures: ResolverFailure[] = [];
  const lastGood = new LastGoodPolicy({
    exchange,
    mapError: mapHttpError,
    gateway: 'edge-1',
    maxAgeMs: 60_000,
    refreshMs: 5_000,
    now: () => nowMs,
    onPollFailure: (failure) => failures.push(failure),
  });
  /** What the worker itself answers. */
  const fromWorker = async (request: ReturnType<typeof lookupRequest>) => {
    const res = await worker.fetch(await signedRequest([SECRET], ROUTES.lookup, JSON.stringify(request)));
    return (await res.json()) as LookupAnswer;
  };
  return {
    store,
    lastGood,
    failures,
    fromWorker,
    goDown: () => (down = true),
    advance: (ms: number) => (nowMs += ms),
  };
}

const edge = (serverPort: number, id = `q-${serverPort}`) => lookupRequest({ id, gateway: 'edge-1', serverPort });

describe('the last-good policy', () => {
  it('answers as the worker would have, with the rule marked stale, delegates included', async () => {
    const { lastGood, fromWorker } = setUp();
    await lastGood.refresh();
    for (const request of [edge(400), edge(403), edge(404)]) {
      const fresh = await fromWorker(request);
      expect(lastGood.answer(request)).toEqual({ ...fresh, rule: `${fresh.rule} (stale)` });
    }
  });

  it('answers nothing (the fallback) where the worker alone can: the pseudonym key, the assignments', async () => {
    const { lastGood } = setUp();
    await lastGood.refresh();
    expect(lastGood.answer(edge(401))).toBeUndefined();
    expect(lastGood.answer(edge(402))).toBeUndefined();
    expect(lastGood.answer(edge(400))).toBeDefined();
  });

  it("answers nothing for another gateway's queries, nor before a policy was fetched", async () => {
    const { lastGood } = setUp();
    expect(lastGood.answer(edge(400))).toBeUndefined();
    await lastGood.refresh();
    expect(lastGood.answer(lookupRequest({ gateway: 'core', serverPort: 404 }))).toBeUndefined();
  });

  it('keeps answering while polls fail, until maxAgeMs after the worker last confirmed the policy', async () => {
    const { lastGood, failures, goDown, advance } = setUp();
    await lastGood.refresh();
    advance(30_000);
    await lastGood.refresh(); // confirmed again at 30 s
    goDown();
    advance(50_000);
    await lastGood.refresh();
    expect(failures.map((failure) => failure.reason)).toEqual(['refused']);
    expect(lastGood.answer(edge(400))).toBeDefined();
    advance(10_001);
    expect(lastGood.answer(edge(400))).toBeUndefined();
    expect(lastGood.usableVersion).toBeUndefined();
  });

  it('holds a new version once the worker has one, and only the version while nothing changes', async () => {
    const { lastGood, store, fromWorker } = setUp();
    await lastGood.refresh();
    const first = lastGood.version;
    await lastGood.refresh();
    expect(lastGood.version).toBe(first);
    await store.replace(parsePolicy({ ...POLICY, default: { action: { error: 'NO-USER' } } }));
    await lastGood.refresh();
    expect(lastGood.version).not.toBe(first);
    const fresh = await fromWorker(edge(404));
    expect(lastGood.answer(edge(404))).toEqual({ ...fresh, rule: 'default (stale)' });
    expect(fresh.answer).toEqual({ type: 'ERROR', error: 'NO-USER' });
  });
});
