/**
 * The one interface the audit trail, the assignments and the gateway fleet
 * (stores/audit.ts) talk SQL through, so that the same statements run on D1
 * (stores/d1.ts, Workers) and on a SQLite file (stores/sqlite.ts, Node). Both
 * speak SQLite's dialect; both apply the same migrations (worker/migrations/).
 *
 * @example
 * await db.write([{ sql: 'DELETE FROM audit_records WHERE at < ?', params: [cutoff] }]);
 * const rows = await db.read<{ n: number }>({ sql: 'SELECT count(*) AS n FROM gateways', params: [] });
 */
import { IdentgateError } from '../../protocol/errors.js';

export type SqlValue = string | number | null;

export interface SqlStatement {
  readonly sql: string;
  readonly params: readonly SqlValue[];
  /** Instead of `params`: run the statement once per row, each row its parameters (a batch of inserts). */
  readonly rows?: readonly (readonly SqlValue[])[];
}

export interface SqlDatabase {
  /** Runs the statements in order in one transaction (all take effect or none); resolves each one's changed rows (summed over `rows`). */
  write(statements: readonly SqlStatement[]): Promise<number[]>;
  /** Runs one query and resolves its rows as objects keyed by column name. */
  read<Row>(statement: SqlStatement): Promise<Row[]>;
  close(): Promise<void>;
}

/** A database operation that failed, in one line naming the database; `sqliteCode` is the driver's (SQLITE_BUSY, ...). */
export class DatabaseError extends IdentgateError {
  readonly code = 'ERR_AUDIT_DATABASE';
  override readonly userError = true;
  readonly sqliteCode: string;
  constructor(message: string, sqliteCode = 'unknown', options?: { cause?: unknown }) {
    super(message, options);
    this.sqliteCode = sqliteCode;
  }
}

/**
 * A statement from SQL text and its parameters.
 *
 * @example
 * sql('SELECT * FROM assignments WHERE ident = ?', ident)
 */
export function sql(text: string, ...params: SqlValue[]): SqlStatement {
  return { sql: text, params };
}
