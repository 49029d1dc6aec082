import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { createKvStore } from '../../../worker/stores/kv.js';
import { DEFAULT_POLICY, parsePolicy } from '../../../worker/policy/index.js';
import { TEST_POLICY } from './fixtures.js';

const OTHER_POLICY = { version: 1, rules: [], default: { action: { userId: 'anonymous' } } };

// Each test uses its own key so tests never see each other's writes.
let counter = 0;
const freshKey = () => `policy-test-${Date.now()}-${++counter}`;

describe('Workers KV policy store', () => {
  it('serves DEFAULT_POLICY when the key is absent', async () => {
    const store = createKvStore(env.POLICY, { key: freshKey() });
    expect((await store.current()).policy).toEqual(DEFAULT_POLICY);
  });

  it('serves the policy stored under its key', async () => {
    const key = freshKey();
    await env.POLICY.put(key, JSON.stringify(TEST_POLICY));
    const store = createKvStore(env.POLICY, { key });
    expect((await store.current()).policy).toEqual(parsePolicy(TEST_POLICY));
  });

  it('writes replace() to KV as JSON and serves it at once', async () => {
    const key = freshKey();
    const store = createKvStore(env.POLICY, { key });
    const { version } = await store.replace(parsePolicy(OTHER_POLICY));
    expect(JSON.parse((await env.POLICY.get(key, 'text')) ?? 'null')).toEqual(parsePolicy(OTHER_POLICY));
    expect((await store.current()).version).toBe(version);
  });

  it('keeps what it read for the cache time, then reads KV again', async () => {
    const key = freshKey();
    let now = 1_000;
    await env.POLICY.put(key, JSON.stringify(TEST_POLICY));
    const store = createKvStore(env.POLICY, { key, cacheTtlMs: 5_000, now: () => now });
    const first = await store.current();
    await env.POLICY.put(key, JSON.stringify(OTHER_POLICY));
    now += 4_999;
    expect(await store.current()).toBe(first);
    now += 2;
    expect((await store.current()).policy).toEqual(parsePolicy(OTHER_POLICY));
  });

  it('compiles once per version: an unchanged value gives the same snapshot', async () => {
    const key = freshKey();
    let now = 0;
    await env.POLICY.put(key, JSON.stringify(TEST_POLICY));
    const store = createKvStore(env.POLICY, { key, cacheTtlMs: 10, now: () => now });
    const first = await store.current();
    now += 100;
    expect(await store.current()).toBe(first);
  });

  it('keeps the last good policy when the stored value becomes invalid, and logs why', async () => {
    const key = freshKey();
    let now = 0;
    const lines: Record<string, unknown>[] = [];
    await env.POLICY.put(key, JSON.stringify(TEST_POLICY));
    const store = createKvStore(env.POLICY, { key, cacheTtlMs: 10, now: () => now, log: (entry) => lines.push(entry) });
    const good = await store.current();
    await env.POLICY.put(key, '{"version":2}');
    now += 100;
    expect(await store.current()).toBe(good);
    expect(lines).toContainEqual(expect.objectContaining({ msg: 'policy_rejected', source: `kv:${key}` }));
  });

  it('throws ERR_POLICY_STORE when the first value it reads is invalid', async () => {
    const key = freshKey();
    await env.POLICY.put(key, 'not json');
    const store = createKvStore(env.POLICY, { key });
    await expect(store.current()).rejects.toMatchObject({ code: 'ERR_POLICY_STORE' });
  });
});
