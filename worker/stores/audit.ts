/**
 * The audit trail, the admin-assigned idents and the gateway fleet, as SQL
 * over one SqlDatabase (D1 on Workers, a SQLite file on Node): every statement
 * the worker runs against the schema of worker/migrations/ is in this file.
 * A batch of decisions is one write (one transaction: a D1 batch, or one
 * SQLite transaction in the database's thread): one prepared single-row
 * insert run per record (21 parameters, under D1's 100), and one upsert per
 * gateway. Measured faster in SQLite than one JSON parameter through json_each. docs/audit.md explains the
 * columns; docs/wire.md the JSON shapes the routes answer with.
 *
 * @example
 * const store = createAuditStore(d1Database(env.AUDIT));
 * await store.writeDecisions(records);
 * const { records, next } = await store.search({ userId: 'u7algntdlwuka', limit: 50 });
 */
import type { IdentAnswer } from '../../protocol/reply.js';
import { IdentgateError } from '../../protocol/errors.js';
import { sql, type SqlDatabase, type SqlValue } from './sql.js';

/** One decision as recorded. */
export interface AuditRecord {
  /** Milliseconds since the epoch. */
  readonly at: number;
  readonly gateway: string;
  /** The key that signed the request (signingKeyOf in worker/audit/record.ts); null when unsigned (embedded). */
  readonly signingKey: string | null;
  /** The gateway's identgate version, when it said (User-Agent); null otherwise. */
  readonly gatewayVersion: string | null;
  readonly requestId: string;
  readonly query: { readonly serverPort: number; readonly clientPort: number };
  readonly connection: {
    readonly localAddress: string;
    readonly localPort: number;
    readonly remoteAddress: string;
    readonly remotePort: number;
  };
  readonly owner: { readonly uid: number; readonly userName: string | null } | null;
  readonly claim: { readonly user: string; readonly ident?: string | undefined } | null;
  readonly answer: IdentAnswer;
  readonly rule: string;
  readonly policyVersion: string;
}

/** A record as search answers it: its row id and an ISO 8601 time. */
export type AuditEntry = Omit<AuditRecord, 'at' | 'gatewayVersion'> & { readonly id: number; readonly at: string };

export interface AuditFilter {
  userId?: string;
  remoteAddress?: string;
  serverPort?: number;
  clientPort?: number;
  gateway?: string;
  ownerUid?: number;
  claimUser?: string;
  /** Inclusive, milliseconds since the epoch. */
  from?: number;
  /** Exclusive, milliseconds since the epoch. */
  to?: number;
  /** 1..MAX_SEARCH_LIMIT. */
  limit: number;
  /** From a previous page's `next`. */
  cursor?: string;
}

export const MAX_SEARCH_LIMIT = 1000;

export type AssignmentScope = { gateway: string; ownerUid: number } | { gateway: string; claimUser: string };

export interface Assignment {
  readonly scope: AssignmentScope;
  readonly ident: string;
  /** ISO 8601. */
  readonly createdAt: string;
}

export interface AssignmentFilter {
  gateway?: string;
  ownerUid?: number;
  claimUser?: string;
  ident?: string;
  limit: number;
  cursor?: string;
}

export interface GatewaySeen {
  readonly name: string;
  readonly signingKey: string | null;
  readonly version: string | null;
  /** ISO 8601. */
  readonly firstSeen: string;
  readonly lastSeen: string;
  readonly queries: number;
}

/** How one rule answered over a time range. */
export interface RuleAnswers {
  readonly rule: string;
  readonly answers: number;
  /** Of those, USERID answers (the rest are ERROR). */
  readonly userIds: number;
}

/** What putAssignment did. */
export type PutOutcome =
  | { readonly kind: 'assigned'; readonly assignment: Assignment; readonly replaced: string | null }
  | { readonly kind: 'unchanged'; readonly assignment: Assignment }
  | { readonly kind: 'taken'; readonly holder: Assignment };

/** A cursor that is not one this store handed out. */
export class CursorError extends IdentgateError {
  readonly code = 'ERR_AUDIT_CURSOR';
  override readonly userError = true;
  constructor() {
    super('cursor is not one a previous page answered with');
  }
}

export interface AuditStore {
  /** Records decisions and counts them per gateway, in one transaction. */
  writeDecisions(records: readonly AuditRecord[]): Promise<void>;
  search(filter: AuditFilter): Promise<{ records: AuditEntry[]; next: string | null }>;
  /** Deletes records older than `before` (ms), in chunks; resolves how many. */
  prune(before: number): Promise<number>;
  putAssignment(scope: AssignmentScope, ident: string, now: number): Promise<PutOutcome>;
  listAssignments(filter: AssignmentFilter): Promise<{ assignments: Assignment[]; next: string | null }>;
  /** Every assignment, for the decision-time cache. */
  allAssignments(): Promise<Assignment[]>;
  /** Deletes by ident or by scope; resolves what was deleted (null: nothing was). */
  deleteAssignment(target: { ident: string } | AssignmentScope): Promise<Assignment | null>;
  listGateways(): Promise<GatewaySeen[]>;
  /** Decisions per rule from `from` (inclusive) to `to` (exclusive, ms), the most used first. */
  answersByRule(range: { from: number; to: number }): Promise<RuleAnswers[]>;
}

const RECORD_COLUMNS = [
  'at',
  'gateway',
  'signing_key',
  'request_id',
  'server_port',
  'client_port',
  'local_address',
  'local_port',
  'remote_address',
  'remote_port',
  'owner_uid',
  'owner_name',
  'claim_user',
  'claim_ident',
  'answer_type',
  'opsys',
  'charset',
  'user_id',
  'error',
  'rule',
  'policy_version',
] as const;

const INSERT_RECORD = `INSERT INTO audit_records (${RECORD_COLUMNS.join(', ')}) VALUES (${RECORD_COLUMNS.map(() => '?').join(', ')})`;

const UPSERT_GATEWAY =
  'INSERT INTO gateways (name, signing_key, version, first_seen, last_seen, queries) VALUES (?, ?, ?, ?, ?, ?) ' +
  'ON CONFLICT (name) DO UPDATE SET signing_key = coalesce(excluded.signing_key, gateways.signing_key), ' +
  'version = coalesce(excluded.version, gateways.version), ' +
  'last_seen = max(gateways.last_seen, excluded.last_seen), queries = gateways.queries + excluded.queries';

function row(record: AuditRecord): SqlValue[] {
  const answer = record.answer;
  const ok = answer.type === 'USERID';
  return [
    record.at,
    record.gateway,
    record.signingKey,
    record.requestId,
    record.query.serverPort,
    record.query.clientPort,
    record.connection.localAddress,
    record.connection.localPort,
    record.connection.remoteAddress,
    record.connection.remotePort,
    record.owner?.uid ?? null,
    record.owner?.userName ?? null,
    record.claim?.user ?? null,
    record.claim?.ident ?? null,
    answer.type,
    ok ? answer.opsys : null,
    ok ? (answer.charset ?? null) : null,
    ok ? answer.userId : null,
    ok ? null : answer.error,
    record.rule,
    record.policyVersion,
  ];
}

interface RecordRow {
  id: number;
  at: number;
  gateway: string;
  signing_key: string | null;
  request_id: string;
  server_port: number;
  client_port: number;
  local_address: string;
  local_port: number;
  remote_address: string;
  remote_port: number;
  owner_uid: number | null;
  owner_name: string | null;
  claim_user: string | null;
  claim_ident: string | null;
  answer_type: 'USERID' | 'ERROR';
  opsys: string | null;
  charset: string | null;
  user_id: string | null;
  error: string | null;
  rule: string;
  policy_version: string;
}

function entry(r: RecordRow): AuditEntry {
  const answer: IdentAnswer =
    r.answer_type === 'USERID'
      ? r.charset === null
        ? { type: 'USERID', opsys: r.opsys ?? 'OTHER', userId: r.user_id ?? '' }
        : { type: 'USERID', opsys: r.opsys ?? 'OTHER', charset: r.charset, userId: r.user_id ?? '' }
      : ({ type: 'ERROR', error: r.error ?? 'UNKNOWN-ERROR' } as IdentAnswer);
  return {
    id: r.id,
    at: new Date(r.at).toISOString(),
    gateway: r.gateway,
    signingKey: r.signing_key,
    requestId: r.request_id,
    query: { serverPort: r.server_port, clientPort: r.client_port },
    connection: {
      localAddress: r.local_address,
      localPort: r.local_port,
      remoteAddress: r.remote_address,
      remotePort: r.remote_port,
    },
    owner: r.owner_uid === null ? null : { uid: r.owner_uid, userName: r.owner_name },
    claim:
      r.claim_user === null
        ? null
        : r.claim_ident === null
          ? { user: r.claim_user }
          : { user: r.claim_user, ident: r.claim_ident },
    answer,
    rule: r.rule,
    policyVersion: r.policy_version,
  };
}

interface AssignmentRow {
  ident: string;
  gateway: string;
  owner_uid: number | null;
  claim_user: string | null;
  created_at: number;
}

function assignment(r: AssignmentRow): Assignment {
  return {
    scope:
      r.owner_uid !== null
        ? { gateway: r.gateway, ownerUid: r.owner_uid }
        : { gateway: r.gateway, claimUser: r.claim_user ?? '' },
    ident: r.ident,
    createdAt: new Date(r.created_at).toISOString(),
  };
}

/** The WHERE clause that selects one scope's row. */
function scopeWhere(scope: AssignmentScope): { where: string; params: SqlValue[] } {
  return 'ownerUid' in scope
    ? { where: 'gateway = ? AND owner_uid = ?', params: [scope.gateway, scope.ownerUid] }
    : { where: 'gateway = ? AND claim_user = ?', params: [scope.gateway, scope.claimUser] };
}

function sameScope(a: AssignmentScope, b: AssignmentScope): boolean {
  if (a.gateway !== b.gateway) return false;
  if ('ownerUid' in a) return 'ownerUid' in b && a.ownerUid === b.ownerUid;
  return 'claimUser' in b && a.claimUser === b.claimUser;
}

// Cursors are opaque to callers: base64url of the last row's sort key.
function encodeCursor(parts: readonly (string | number)[]): string {
  const bytes = new TextEncoder().encode(JSON.stringify(parts));
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function decodeCursor(cursor: string): unknown[] {
  try {
    const binary = atob(cursor.replace(/-/g, '+').replace(/_/g, '/'));
    const parsed: unknown = JSON.parse(new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0))));
    if (Array.isArray(parsed)) return parsed;
  } catch {
    // reported below
  }
  throw new CursorError();
}

const PRUNE_CHUNK = 5_000;

/**
 * The store over a database that already has the schema (migrations applied).
 *
 * @example
 * const store = createAuditStore(await openSqliteDatabase('audit.db'));
 */
export function createAuditStore(db: SqlDatabase): AuditStore {
  return {
    async writeDecisions(records) {
      if (records.length === 0) return;
      const fleet = new Map<string, [string, string | null, string | null, number, number, number]>();
      for (const record of records) {
        const seen = fleet.get(record.gateway);
        if (seen === undefined) {
          fleet.set(record.gateway, [
            record.gateway,
            record.signingKey,
            record.gatewayVersion,
            record.at,
            record.at,
            1,
          ]);
        } else {
          if (record.at >= seen[4]) {
            seen[4] = record.at;
            seen[1] = record.signingKey ?? seen[1];
            seen[2] = record.gatewayVersion ?? seen[2];
          }
          seen[3] = Math.min(seen[3], record.at);
          seen[5] += 1;
        }
      }
      await db.write([
        { sql: INSERT_RECORD, params: [], rows: records.map(row) },
        { sql: UPSERT_GATEWAY, params: [], rows: [...fleet.values()] },
      ]);
    },

    async search(filter) {
      const { where, params, equal } = sqlConditions();
      equal('user_id', filter.userId);
      equal('remote_address', filter.remoteAddress);
      equal('server_port', filter.serverPort);
      equal('client_port', filter.clientPort);
      equal('gateway', filter.gateway);
      equal('owner_uid', filter.ownerUid);
      equal('claim_user', filter.claimUser);
      if (filter.from !== undefined) {
        where.push('at >= ?');
        params.push(filter.from);
      }
      if (filter.to !== undefined) {
        where.push('at < ?');
        params.push(filter.to);
      }
      if (filter.cursor !== undefined) {
        const [at, id] = decodeCursor(filter.cursor);
        if (typeof at !== 'number' || typeof id !== 'number') throw new CursorError();
        where.push('(at < ? OR (at = ? AND id < ?))');
        params.push(at, at, id);
      }
      const limit = Math.max(1, Math.min(MAX_SEARCH_LIMIT, Math.floor(filter.limit)));
      const rows = await db.read<RecordRow>(
        sql(
          `SELECT id, ${RECORD_COLUMNS.join(', ')} FROM audit_records` +
            (where.length ? ` WHERE ${where.join(' AND ')}` : '') +
            ' ORDER BY at DESC, id DESC LIMIT ?',
          ...params,
          limit + 1,
        ),
      );
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return {
        records: page.map(entry),
        next: rows.length > limit && last ? encodeCursor([last.at, last.id]) : null,
      };
    },

    async prune(before) {
      let total = 0;
      for (;;) {
        const [deleted = 0] = await db.write([
          sql(
            'DELETE FROM audit_records WHERE id IN (SELECT id FROM audit_records WHERE at < ? LIMIT ?)',
            before,
            PRUNE_CHUNK,
          ),
        ]);
        total += deleted;
        if (deleted < PRUNE_CHUNK) return total;
      }
    },

    async putAssignment(scope, ident, now) {
      const { where, params } = scopeWhere(scope);
      const ownerUid = 'ownerUid' in scope ? scope.ownerUid : null;
      const claimUser = 'claimUser' in scope ? scope.claimUser : null;
      const holderOf = async () =>
        (await db.read<AssignmentRow>(sql('SELECT * FROM assignments WHERE ident = ?', ident))).map(assignment)[0];
      for (let attempt = 0; attempt < 3; attempt++) {
        const previous = (await db.read<AssignmentRow>(sql(`SELECT * FROM assignments WHERE ${where}`, ...params)))[0];
        if (previous?.ident === ident) return { kind: 'unchanged', assignment: assignment(previous) };
        try {
          // One transaction: the scope's old ident goes only if the new one can be had. The primary key
          // on ident decides a race between two scopes: one insert wins, the other fails and rolls back.
          await db.write([
            sql(`DELETE FROM assignments WHERE ${where}`, ...params),
            sql(
              'INSERT INTO assignments (ident, gateway, owner_uid, claim_user, created_at) VALUES (?, ?, ?, ?, ?)',
              ident,
              scope.gateway,
              ownerUid,
              claimUser,
              now,
            ),
          ]);
          const made = assignment({
            ident,
            gateway: scope.gateway,
            owner_uid: ownerUid,
            claim_user: claimUser,
            created_at: now,
          });
          return { kind: 'assigned', assignment: made, replaced: previous?.ident ?? null };
        } catch (error) {
          // Not the message text: whoever holds the ident now says what happened.
          const holder = await holderOf();
          if (holder === undefined) {
            if (attempt === 2) throw error;
            continue; // freed meanwhile: try again
          }
          if (sameScope(holder.scope, scope)) return { kind: 'unchanged', assignment: holder };
          return { kind: 'taken', holder };
        }
      }
      throw new Error('unreachable');
    },

    async listAssignments(filter) {
      const { where, params, equal } = sqlConditions();
      equal('gateway', filter.gateway);
      equal('owner_uid', filter.ownerUid);
      equal('claim_user', filter.claimUser);
      equal('ident', filter.ident);
      if (filter.cursor !== undefined) {
        const [after] = decodeCursor(filter.cursor);
        if (typeof after !== 'string') throw new CursorError();
        where.push('ident > ?');
        params.push(after);
      }
      const limit = Math.max(1, Math.min(MAX_SEARCH_LIMIT, Math.floor(filter.limit)));
      const rows = await db.read<AssignmentRow>(
        sql(
          'SELECT * FROM assignments' +
            (where.length ? ` WHERE ${where.join(' AND ')}` : '') +
            ' ORDER BY ident LIMIT ?',
          ...params,
          limit + 1,
        ),
      );
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return {
        assignments: page.map(assignment),
        next: rows.length > limit && last ? encodeCursor([last.ident]) : null,
      };
    },

    async allAssignments() {
      return (await db.read<AssignmentRow>(sql('SELECT * FROM assignments'))).map(assignment);
    },

    async deleteAssignment(target) {
      const { where, params } = 'ident' in target ? { where: 'ident = ?', params: [target.ident] } : scopeWhere(target);
      const found = (await db.read<AssignmentRow>(sql(`SELECT * FROM assignments WHERE ${where}`, ...params)))[0];
      if (found === undefined) return null;
      const [deleted] = await db.write([sql('DELETE FROM assignments WHERE ident = ?', found.ident)]);
      return deleted ? assignment(found) : null;
    },

    async listGateways() {
      const rows = await db.read<{
        name: string;
        signing_key: string | null;
        version: string | null;
        first_seen: number;
        last_seen: number;
        queries: number;
      }>(sql('SELECT * FROM gateways ORDER BY name'));
      return rows.map((r) => ({
        name: r.name,
        signingKey: r.signing_key,
        version: r.version,
        firstSeen: new Date(r.first_seen).toISOString(),
        lastSeen: new Date(r.last_seen).toISOString(),
        queries: r.queries,
      }));
    },

    async answersByRule({ from, to }) {
      const rows = await db.read<{ rule: string; answers: number; user_ids: number }>(
        sql(
          "SELECT rule, count(*) AS answers, sum(answer_type = 'USERID') AS user_ids FROM audit_records " +
            'WHERE at >= ? AND at < ? GROUP BY rule ORDER BY answers DESC, rule',
          from,
          to,
        ),
      );
      return rows.map((r) => ({ rule: r.rule, answers: r.answers, userIds: r.user_ids }));
    },
  };
}

/** A WHERE clause built up: `equal` adds `column = ?` for a value that is given. */
function sqlConditions() {
  const where: string[] = [];
  const params: SqlValue[] = [];
  const equal = (column: string, value: SqlValue | undefined) => {
    if (value === undefined) return;
    where.push(`${column} = ?`);
    params.push(value);
  };
  return { where, params, equal };
}
