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
export {
  openFileStore,
  FileStoreError,
  PolicyFileReadError,
  PolicyFileInvalidError,
  type FileStore,
  type FileStoreOptions,
} from './stores/file.js';
export { startNodeWorker, type NodeWorker, type NodeWorkerOptions } from './node.js';
export * from './policy/index.js';
export {
  createAuditStore,
  CursorError,
  MAX_SEARCH_LIMIT,
  type Assignment,
  type AssignmentScope,
  type AuditEntry,
  type AuditFilter,
  type AuditRecord,
  type AuditStore,
  type GatewaySeen,
} from './stores/audit.js';
export { DatabaseError, sql, type SqlDatabase, type SqlStatement, type SqlValue } from './stores/sql.js';
export { d1Database, type D1Like } from './stores/d1.js';
export { openSqliteDatabase, type SqliteDatabase, type SqliteOptions } from './stores/sqlite.js';
export { openLocalAudit, type LocalAudit, type LocalAuditOptions } from './audit/local.js';
export { createAuditRecorder, type AuditRecorder, type AuditStats } from './audit/recorder.js';
export { createAssignmentCache, type AssignmentCache } from './audit/assignments.js';
