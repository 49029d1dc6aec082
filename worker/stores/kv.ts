/**
 * A policy store in Workers KV (key `policy` of the POLICY binding), cached per isolate for a few
 * seconds; absent means DEFAULT_POLICY, a bad value keeps the last good policy (docs/internals.md).
 */
import { DEFAULT_POLICY, parsePolicy, type Policy } from '../policy/index.js';
import { PolicyStoreError, snapshotOf, type PolicySnapshot, type PolicyStore } from './store.js';

/** The part of a Workers KVNamespace the store uses. */
export interface PolicyKvNamespace {
  get(key: string, type: 'text'): Promise<string | null>;
  put(key: string, value: string): Promise<void>;
}

export interface KvStoreOptions {
  /** Key holding the policy JSON. Default "policy". */
  key?: string;
  /** How long an isolate serves what it read before reading KV again. Default 5000 ms. */
  cacheTtlMs?: number;
  now?: () => number;
  log?: (entry: Record<string, unknown>) => void;
}

export const POLICY_KV_KEY = 'policy';
export const KV_CACHE_TTL_MS = 5_000;

/**
 * Creates a store over a KV namespace. Does nothing until the first `current()`.
 *
 * @example
 * const store = createKvStore(env.POLICY, { cacheTtlMs: 1000 });
 */
export function createKvStore(kv: PolicyKvNamespace, options: KvStoreOptions = {}): PolicyStore {
  const key = options.key ?? POLICY_KV_KEY;
  const cacheTtlMs = options.cacheTtlMs ?? KV_CACHE_TTL_MS;
  const now = options.now ?? Date.now;
  const log = options.log ?? (() => {});

  let good: { snapshot: PolicySnapshot; text: string | null } | undefined;
  let fetchedAt = -Infinity;
  let refreshing: Promise<PolicySnapshot> | undefined;

  async function refresh(): Promise<PolicySnapshot> {
    const text = await kv.get(key, 'text');
    if (good && good.text === text) return good.snapshot;
    let policy: Policy;
    try {
      policy = text === null ? DEFAULT_POLICY : parsePolicy(JSON.parse(text));
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      log({ msg: 'policy_rejected', source: `kv:${key}`, error: message });
      if (good) return good.snapshot;
      throw new PolicyStoreError(`KV key "${key}" does not hold a valid policy: ${message}`, { cause: error });
    }
    const snapshot = await snapshotOf(policy, good?.snapshot);
    if (snapshot !== good?.snapshot)
      log({ msg: 'policy_loaded', source: text === null ? 'default' : `kv:${key}`, version: snapshot.version });
    good = { snapshot, text };
    return snapshot;
  }

  return {
    current() {
      if (good && now() - fetchedAt < cacheTtlMs) return Promise.resolve(good.snapshot);
      // One KV read at a time per isolate; concurrent lookups share it.
      refreshing ??= refresh().finally(() => {
        fetchedAt = now();
        refreshing = undefined;
      });
      return refreshing;
    },
    async replace(policy, document = policy) {
      const text = JSON.stringify(document, null, 2);
      const snapshot = await snapshotOf(policy, good?.snapshot);
      await kv.put(key, text);
      good = { snapshot, text };
      fetchedAt = now();
      return { version: snapshot.version };
    },
  };
}
