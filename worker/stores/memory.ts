/**
 * A policy store in memory: the embedded default (the worker in a gateway's process) and the one
 * tests use. replace() takes effect at once.
 */
import { DEFAULT_POLICY, type Policy } from '../policy/index.js';
import { snapshotOf, type PolicySnapshot, type PolicyStore } from './store.js';

/**
 * Creates a memory store holding `initial` (DEFAULT_POLICY when omitted).
 *
 * @example
 * const app = createApp({ store: createMemoryStore(parsePolicy(json)), secrets: [] });
 */
export function createMemoryStore(initial: Policy = DEFAULT_POLICY): PolicyStore {
  // Compiled lazily so creating a store does no work (and never throws) up front.
  let snapshot: Promise<PolicySnapshot> | undefined;
  let ready: PolicySnapshot | undefined;
  const current = (): Promise<PolicySnapshot> => {
    snapshot ??= snapshotOf(initial).then((first) => (ready ??= first));
    return snapshot;
  };
  return {
    current,
    peek() {
      // Not compiled yet: start now, so the next caller finds it at hand.
      if (ready === undefined) void current().catch(() => undefined);
      return ready;
    },
    async replace(policy) {
      const next = await snapshotOf(policy, await snapshot?.catch(() => undefined));
      snapshot = Promise.resolve(next);
      ready = next;
      return { version: next.version };
    },
  };
}
