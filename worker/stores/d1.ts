/**
 * SqlDatabase over a Cloudflare D1 binding (the `AUDIT` binding in
 * wrangler.toml; its schema is managed with `wrangler d1 migrations`). A write
 * is one `db.batch()`, which D1 runs as one transaction.
 *
 * @example
 * const db = d1Database(env.AUDIT);
 * const store = createAuditStore(db);
 */
import { DatabaseError, type SqlDatabase, type SqlStatement } from './sql.js';

/** The part of a D1Database binding used here (structural, so Node code type-checks without workerd's types). */
export interface D1Like {
  prepare(sql: string): D1StatementLike;
  batch(statements: D1StatementLike[]): Promise<{ meta: { changes?: number } }[]>;
}
export interface D1StatementLike {
  bind(...values: unknown[]): D1StatementLike;
  all<Row>(): Promise<{ results: Row[] }>;
}

function failure(error: unknown): DatabaseError {
  const message = error instanceof Error ? error.message : String(error);
  return new DatabaseError(`D1: ${message}`, 'unknown', { cause: error });
}

/**
 * Wraps a D1 binding.
 *
 * @example
 * const rows = await d1Database(env.AUDIT).read(sql('SELECT name FROM gateways'));
 */
export function d1Database(d1: D1Like): SqlDatabase {
  const prepare = (statement: SqlStatement) => d1.prepare(statement.sql).bind(...statement.params);
  return {
    async write(statements) {
      if (statements.length === 0) return [];
      // A statement with rows becomes one bound statement per row; the changes are summed back per statement.
      const bound: D1StatementLike[] = [];
      const counts: number[] = [];
      for (const statement of statements) {
        if (statement.rows === undefined) {
          bound.push(prepare(statement));
          counts.push(1);
        } else {
          for (const row of statement.rows) bound.push(d1.prepare(statement.sql).bind(...row));
          counts.push(statement.rows.length);
        }
      }
      try {
        const results = bound.length ? await d1.batch(bound) : [];
        let next = 0;
        return counts.map((count) => {
          let changes = 0;
          for (let i = 0; i < count; i++) changes += results[next++]?.meta.changes ?? 0;
          return changes;
        });
      } catch (error) {
        throw failure(error);
      }
    },
    async read<Row>(statement: SqlStatement) {
      try {
        return (await prepare(statement).all<Row>()).results;
      } catch (error) {
        throw failure(error);
      }
    },
    close: () => Promise.resolve(),
  };
}
