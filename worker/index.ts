/**
 * The policy worker's public API: the Hono app, the stores, the Node entry and the policy engine.
 * The Workers entry (workers-entry.ts) is not re-exported: it needs workerd's types.
 */
export { createApp, RequestRejected, MAX_REMEMBERED_SIGNATURES, type AppDeps } from './app.js';
export { PolicyStoreError, policyVersion, snapshotOf, type PolicySnapshot, type PolicyStore } from './stores/store.js';
export { createMemoryStore } from './stores/memory.js';
export {
  createKvStore,
  KV_CACHE_TTL_MS,
  POLICY_KV_KEY,
  type KvStoreOptions,
  type PolicyKvNamespace,
} from './stores/kv.js';
export { openFileStore, FileStoreError, type FileStore, type FileStoreOptions } from './stores/file.js';
export { startNodeWorker, type NodeWorker, type NodeWorkerOptions } from './node.js';
export * from './policy/index.js';
