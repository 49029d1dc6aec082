/**
 * The app's in-process lookups (embedded mode): the batch route's answers
 * without a Request or a schema pass (the requests are typed values), at once
 * through lookupNow when the store holds its policy, refusals as
 * RequestRejected with the status the route would answer, none in service
 * mode, and decision log entries only when someone reads them.
 */
import { describe, expect, it } from 'vitest';
import { createApp, RequestRejected } from '../../worker/app.js';
import { createMemoryStore } from '../../worker/stores/memory.js';
import { PolicyStoreError } from '../../worker/stores/store.js';
import { decisionLog } from '../../worker/service.js';
import { parsePolicy } from '../../worker/policy/index.js';
import { MAX_BATCH } from '../../protocol/wire.js';
import { TEST_POLICY, lookupRequest, signedRequest } from './workerd/fixtures.js';

function embeddedApp(options: { log?: (entry: Record<string, unknown>) => void; logDecisions?: boolean } = {}) {
  return createApp({ store: createMemoryStore(parsePolicy(TEST_POLICY)), secrets: [], mode: 'embedded', ...options });
}

async function rejectionOf(promise: Promise<unknown>): Promise<RequestRejected> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(RequestRejected);
    return error as RequestRejected;
  }
  throw new Error('expected a RequestRejected');
}

describe('in-process lookups', () => {
  it('answer like the batch route, in the order given', async () => {
    const app = embeddedApp();
    const requests = [
      lookupRequest({ id: 'a' }),
      lookupRequest({ id: 'b', uid: 0 }),
      lookupRequest({ id: 'c', remoteAddress: '203.0.113.9' }),
    ];
    const viaRoute = await (
      await app.fetch(await signedRequest([], '/v1/ident/batch', JSON.stringify({ v: 1, requests })))
    ).json();
    const answers = await app.inProcess!.lookup(requests);
    expect(answers).toEqual((viaRoute as { answers: unknown[] }).answers);
    expect(answers.map((answer) => [answer.id, answer.rule])).toEqual([
      ['a', 'lan'],
      ['b', 'hide-root'],
      ['c', 'default'],
    ]);
  });

  it('answer synchronously through lookupNow once the store holds its policy, like lookup', async () => {
    const app = embeddedApp();
    const requests = [lookupRequest({ id: 'a', remoteAddress: '10.1.2.3' }), lookupRequest({ id: 'b', uid: 0 })];
    expect(app.inProcess!.lookupNow!(requests)).toBeUndefined(); // a memory store compiles on first use
    const later = await app.inProcess!.lookup(requests);
    expect(app.inProcess!.lookupNow!(requests)).toEqual(later);
  });

  it('give undefined from lookupNow when the store cannot hand its policy over without waiting', async () => {
    const store = createMemoryStore(parsePolicy(TEST_POLICY));
    const app = createApp({
      store: { current: () => store.current(), replace: (policy) => store.replace(policy) },
      secrets: [],
      mode: 'embedded',
    });
    await app.inProcess!.lookup([lookupRequest()]);
    expect(app.inProcess!.lookupNow!([lookupRequest()])).toBeUndefined();
  });

  it('answer requests carrying a claim (or a null one) like those without', async () => {
    const app = embeddedApp();
    const requests = [
      lookupRequest({ id: 'a', claim: { user: 'bob', ident: 'bob' } }),
      lookupRequest({ id: 'b', claim: null }),
      lookupRequest({ id: 'c' }),
    ];
    const answers = await app.inProcess!.lookup(requests);
    expect(answers.map((answer) => [answer.id, answer.rule])).toEqual([
      ['a', 'lan'],
      ['b', 'lan'],
      ['c', 'lan'],
    ]);
    expect(app.inProcess!.lookupNow!(requests)).toEqual(answers);
  });

  it('refuse more than MAX_BATCH requests and none at all', async () => {
    const app = embeddedApp();
    const many = Array.from({ length: MAX_BATCH + 1 }, (_, i) => lookupRequest({ id: `m${i}` }));
    expect((await rejectionOf(app.inProcess!.lookup(many))).code).toBe('invalid_request');
    expect((await rejectionOf(app.inProcess!.lookup([]))).code).toBe('invalid_request');
  });

  it('refuse with status 503 policy_unavailable when the store has no policy', async () => {
    const app = createApp({
      store: {
        current: () => Promise.reject(new PolicyStoreError('broken')),
        replace: () => Promise.reject(new Error('no')),
      },
      secrets: [],
      mode: 'embedded',
    });
    const error = await rejectionOf(app.inProcess!.lookup([lookupRequest()]));
    expect([error.status, error.code]).toEqual([503, 'policy_unavailable']);
  });

  it('are not offered in service mode, where every lookup must be signed', () => {
    const app = createApp({ store: createMemoryStore(parsePolicy(TEST_POLICY)), secrets: ['s3cret'], mode: 'service' });
    expect(app.inProcess).toBeUndefined();
  });

  it('log the decisions of one call as one entry listing each, by default', async () => {
    const lines: Record<string, unknown>[] = [];
    await embeddedApp({ log: (entry) => lines.push(entry) }).inProcess!.lookup([
      lookupRequest({ id: 'x' }),
      lookupRequest({ id: 'y' }),
    ]);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ msg: 'decisions', count: 2 });
    expect((lines[0]!.decisions as { id: string }[]).map((decision) => decision.id)).toEqual(['x', 'y']);
  });

  it('log no decision lines when logDecisions is false, but still log other events', async () => {
    const lines: Record<string, unknown>[] = [];
    const app = createApp({
      store: {
        current: () => Promise.reject(new PolicyStoreError('broken')),
        replace: () => Promise.reject(new Error('no')),
      },
      secrets: [],
      mode: 'embedded',
      log: (entry) => lines.push(entry),
      logDecisions: false,
    });
    await rejectionOf(app.inProcess!.lookup([lookupRequest()]));
    await embeddedApp({ log: (entry) => lines.push(entry), logDecisions: false }).inProcess!.lookup([lookupRequest()]);
    expect(lines.map((line) => line.msg)).toEqual(['policy_unavailable']);
  });

  it('reads the Workers decision-log setting: on or unset logs, off does not, anything else logs once and stays on', () => {
    const lines: Record<string, unknown>[] = [];
    const log = (entry: Record<string, unknown>) => lines.push(entry);
    expect([undefined, '', 'on'].map((value) => decisionLog(value, log))).toEqual([true, true, true]);
    expect(decisionLog('off', log)).toBe(false);
    expect(lines).toEqual([]);
    expect(decisionLog('Off', log)).toBe(true);
    expect(lines).toEqual([
      {
        msg: 'config_error',
        error: 'IDENTGATE_DECISION_LOG must be "on" or "off", got "Off"; the decision log stays on',
      },
    ]);
  });
});
