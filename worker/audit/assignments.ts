/**
 * The admin-assigned idents as the decision point sees them: a Map in memory,
 * so a decision stays a hash lookup (`identFor`) and never waits for the
 * database. Loaded whole from the store, then kept current two ways: writes
 * made through this worker (PUT/DELETE /v1/assignments) update it at once, and
 * it is read again when older than `ttlMs` (default 10 s), on the next
 * `refresh()` — the caller decides when (after a response on Workers, a timer
 * on Node). So an assignment made elsewhere (another isolate, another process
 * sharing the file) is answered within about ttlMs. docs/audit.md says more.
 *
 * @example
 * const cache = createAssignmentCache(store);
 * await cache.refresh();
 * cache.identFor('gw1', 1000, null); // "alice"
 */
import type { Assignment, AuditStore } from '../stores/audit.js';

export interface AssignmentCache {
  /** The ident assigned to the claim's user, else to the owner's uid, on this gateway; undefined when none. */
  identFor(gateway: string, ownerUid: number | null, claimUser: string | null): string | undefined;
  /** Reads the store again when the copy is older than ttlMs (or `force`); concurrent calls share one read. */
  refresh(force?: boolean): Promise<void>;
  /** True once a read has succeeded. */
  readonly loaded: boolean;
  /** Keeps the copy in step with a write made through this worker. */
  applyPut(assignment: Assignment): void;
  applyDelete(assignment: Assignment): void;
}

export const ASSIGNMENT_CACHE_TTL_MS = 10_000;

const ownerKey = (gateway: string, uid: number) => `${gateway}\0u${uid}`;
const claimKey = (gateway: string, user: string) => `${gateway}\0c${user}`;
const keyOf = (assignment: Assignment) =>
  'ownerUid' in assignment.scope
    ? ownerKey(assignment.scope.gateway, assignment.scope.ownerUid)
    : claimKey(assignment.scope.gateway, assignment.scope.claimUser);

/**
 * @example
 * const cache = createAssignmentCache(store, { ttlMs: 5_000 });
 */
export function createAssignmentCache(
  store: Pick<AuditStore, 'allAssignments'>,
  options: { ttlMs?: number; now?: () => number; log?: (entry: Record<string, unknown>) => void } = {},
): AssignmentCache {
  const ttlMs = options.ttlMs ?? ASSIGNMENT_CACHE_TTL_MS;
  const now = options.now ?? Date.now;
  const log = options.log ?? (() => {});
  let byScope = new Map<string, string>();
  let readAt = -Infinity;
  let loaded = false;
  let reading: Promise<void> | undefined;
  // Writes made while a read is in flight would be lost when it lands: replay them over it.
  let pendingWrites: (() => void)[] = [];

  return {
    identFor(gateway, ownerUid, claimUser) {
      if (byScope.size === 0) return undefined;
      if (claimUser !== null) {
        const ident = byScope.get(claimKey(gateway, claimUser));
        if (ident !== undefined) return ident;
      }
      return ownerUid === null ? undefined : byScope.get(ownerKey(gateway, ownerUid));
    },
    get loaded() {
      return loaded;
    },
    refresh(force = false) {
      if (!force && now() - readAt < ttlMs) return Promise.resolve();
      reading ??= (async () => {
        pendingWrites = [];
        try {
          const next = new Map<string, string>();
          for (const assignment of await store.allAssignments()) next.set(keyOf(assignment), assignment.ident);
          byScope = next;
          for (const write of pendingWrites) write();
          loaded = true;
        } catch (error) {
          log({ msg: 'assignments_unavailable', error: error instanceof Error ? error.message : String(error) });
        } finally {
          // A failed read is retried after ttlMs too: the database is not asked on every request.
          readAt = now();
          reading = undefined;
          pendingWrites = [];
        }
      })();
      return reading;
    },
    applyPut(assignment) {
      const write = () => {
        byScope.set(keyOf(assignment), assignment.ident);
      };
      write();
      if (reading) pendingWrites.push(write);
    },
    applyDelete(assignment) {
      const write = () => {
        if (byScope.get(keyOf(assignment)) === assignment.ident) byScope.delete(keyOf(assignment));
      };
      write();
      if (reading) pendingWrites.push(write);
    },
  };
}
