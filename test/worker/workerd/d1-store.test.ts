import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { createAuditStore } from '../../../worker/stores/audit.js';
import { d1Database } from '../../../worker/stores/d1.js';
import { sql } from '../../../worker/stores/sql.js';
import { T0, auditRecord } from '../audit/records.js';

const db = d1Database(env.AUDIT);
const store = createAuditStore(db);

describe('the audit store on D1', () => {
  it('has the migrations applied and recorded in d1_migrations', async () => {
    const rows = await db.read<{ name: string }>(sql('SELECT name FROM d1_migrations'));
    expect(rows.map((r) => r.name)).toEqual(['0001_audit.sql']);
  });

  it('writes a batch of 256 decisions in one write and answers them newest first', async () => {
    const records = Array.from({ length: 256 }, (_, i) =>
      auditRecord({ at: T0 + i, requestId: `d1-${i}`, gateway: 'd1-gw' }),
    );
    await store.writeDecisions(records);
    const { records: found, next } = await store.search({ gateway: 'd1-gw', limit: 1000 });
    expect(found).toHaveLength(256);
    expect(next).toBeNull();
    expect(found[0]!.requestId).toBe('d1-255');
    const [gateway] = (await store.listGateways()).filter((g) => g.name === 'd1-gw');
    expect(gateway).toMatchObject({ queries: 256, signingKey: 'k0:0123abcd', version: '0.1.0' });
  });

  it('pages with the cursor and filters like the SQLite file', async () => {
    await store.writeDecisions(
      Array.from({ length: 9 }, (_, i) =>
        auditRecord({ at: T0, requestId: `p-${i}`, userId: 'pager', claimUser: i % 3 === 0 ? 'bob' : undefined }),
      ),
    );
    const first = await store.search({ userId: 'pager', limit: 5 });
    const second = await store.search({ userId: 'pager', limit: 5, cursor: first.next! });
    expect(second.next).toBeNull();
    expect(new Set([...first.records, ...second.records].map((r) => r.requestId)).size).toBe(9);
    expect((await store.search({ userId: 'pager', claimUser: 'bob', limit: 10 })).records).toHaveLength(3);
  });

  it('counts the answers of each rule in a time range (the console overview)', async () => {
    const at = T0 + 86_400_000;
    await store.writeDecisions([
      auditRecord({ at, requestId: 'r-1', rule: 'lan' }),
      auditRecord({ at: at + 1, requestId: 'r-2', rule: 'lan', error: 'NO-USER' }),
      auditRecord({ at: at + 2, requestId: 'r-3', rule: 'hide-root', error: 'HIDDEN-USER' }),
    ]);
    expect(await store.answersByRule({ from: at, to: at + 3 })).toEqual([
      { rule: 'lan', answers: 2, userIds: 1 },
      { rule: 'hide-root', answers: 1, userIds: 0 },
    ]);
  });

  it('prunes what is older than the cut-off', async () => {
    await store.writeDecisions([
      auditRecord({ at: 1_000, requestId: 'ancient', gateway: 'prune-gw' }),
      auditRecord({ at: T0, requestId: 'recent', gateway: 'prune-gw' }),
    ]);
    expect(await store.prune(2_000)).toBeGreaterThanOrEqual(1);
    expect((await store.search({ gateway: 'prune-gw', limit: 10 })).records.map((r) => r.requestId)).toEqual([
      'recent',
    ]);
  });

  it('lets exactly one of two concurrent assignments of one ident win', async () => {
    for (let round = 0; round < 10; round++) {
      const outcomes = await Promise.all([
        store.putAssignment({ gateway: 'gw1', ownerUid: 5000 + round }, `race${round}`, T0),
        store.putAssignment({ gateway: 'gw2', claimUser: `racer${round}` }, `race${round}`, T0),
      ]);
      expect(outcomes.map((o) => o.kind).sort()).toEqual(['assigned', 'taken']);
    }
  });
});
