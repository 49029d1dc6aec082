import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSqliteDatabase, type SqliteDatabase } from '../../../worker/stores/sqlite.js';
import { createAuditStore, type AuditStore } from '../../../worker/stores/audit.js';
import { sql } from '../../../worker/stores/sql.js';
import { T0, auditRecord } from './records.js';

let dir: string;
let db: SqliteDatabase;
let store: AuditStore;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'identgate-audit-'));
  db = await openSqliteDatabase(join(dir, 'audit.db'));
  store = createAuditStore(db);
});

afterEach(async () => {
  await db.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the SQLite audit file', () => {
  it('applies the migrations once and records them in d1_migrations, as wrangler does', async () => {
    expect(db.applied).toEqual(['0001_audit.sql']);
    await db.close();
    db = await openSqliteDatabase(join(dir, 'audit.db'));
    expect(db.applied).toEqual([]);
    const rows = await db.read<{ name: string }>(sql('SELECT name FROM d1_migrations'));
    expect(rows.map((r) => r.name)).toEqual(['0001_audit.sql']);
  });

  it('answers a record as it was written, newest first', async () => {
    const first = auditRecord({ at: T0, requestId: 'a', claimUser: 'quassel:bob', claimIdent: 'bob' });
    const second = auditRecord({ at: T0 + 1, requestId: 'b', uid: null, error: 'NO-USER', signingKey: null });
    await store.writeDecisions([first, second]);
    const { records, next } = await store.search({ limit: 10 });
    expect(next).toBeNull();
    expect(records.map((r) => r.requestId)).toEqual(['b', 'a']);
    const { at: _a, gatewayVersion: _v, ...rest } = first;
    expect(records[1]).toEqual({ ...rest, id: expect.any(Number), at: '2026-12-04T12:00:00.000Z' });
    expect(records[0]).toMatchObject({
      owner: null,
      claim: null,
      signingKey: null,
      answer: { type: 'ERROR', error: 'NO-USER' },
    });
  });

  it('writes every record of a batch as given, in the inserts of 64 rows and the row-by-row rest alike', async () => {
    // 2 x 64 rows in multi-row inserts, then 3 one by one; every tenth differs in every optional field.
    const batch = Array.from({ length: 131 }, (_, i) =>
      i % 10 === 0
        ? auditRecord({ at: T0 + i, requestId: `r${i}`, uid: null, error: 'NO-USER', signingKey: null })
        : auditRecord({ at: T0 + i, requestId: `r${i}`, claimUser: `app:u${i}`, claimIdent: `u${i}` }),
    );
    await store.writeDecisions(batch);
    const { records } = await store.search({ limit: 1000 });
    expect(records).toHaveLength(131);
    const written = new Map(records.map((record) => [record.requestId, record]));
    for (const record of batch) {
      const { at, gatewayVersion: _v, ...rest } = record;
      expect(written.get(record.requestId)).toEqual({
        ...rest,
        id: expect.any(Number),
        at: new Date(at).toISOString(),
      });
    }
  });

  it('filters on every field the abuse desk asks about', async () => {
    await store.writeDecisions([
      auditRecord({
        requestId: 'match',
        userId: 'u7',
        remoteAddress: '192.0.2.7',
        serverPort: 6667,
        clientPort: 4000,
        gateway: 'gw1',
        uid: 1000,
        claimUser: 'bob',
      }),
      auditRecord({ requestId: 'other-id', userId: 'u8' }),
      auditRecord({ requestId: 'other-addr', userId: 'u7', remoteAddress: '192.0.2.8' }),
      auditRecord({ requestId: 'other-gw', userId: 'u7', gateway: 'gw2' }),
      auditRecord({ requestId: 'other-uid', userId: 'u7', uid: 1001 }),
      auditRecord({ requestId: 'other-sport', userId: 'u7', serverPort: 6697 }),
      auditRecord({ requestId: 'other-cport', userId: 'u7', clientPort: 4001 }),
    ]);
    const ids = async (filter: Parameters<AuditStore['search']>[0]) =>
      (await store.search(filter)).records.map((r) => r.requestId).sort();
    expect(
      await ids({
        userId: 'u7',
        remoteAddress: '192.0.2.7',
        serverPort: 6667,
        clientPort: 4000,
        gateway: 'gw1',
        ownerUid: 1000,
        limit: 10,
      }),
    ).toEqual(['match']);
    expect(await ids({ claimUser: 'bob', limit: 10 })).toEqual(['match']);
    expect(await ids({ userId: 'u8', limit: 10 })).toEqual(['other-id']);
    expect(await ids({ gateway: 'gw2', limit: 10 })).toEqual(['other-gw']);
    expect(await ids({ ownerUid: 1001, limit: 10 })).toEqual(['other-uid']);
  });

  it('takes from as inclusive and to as exclusive', async () => {
    await store.writeDecisions([0, 1, 2, 3].map((i) => auditRecord({ at: T0 + i * 60_000, requestId: `m${i}` })));
    const { records } = await store.search({ from: T0 + 60_000, to: T0 + 180_000, limit: 10 });
    expect(records.map((r) => r.requestId)).toEqual(['m2', 'm1']);
  });

  it('pages through every record exactly once, also among records of the same millisecond', async () => {
    await store.writeDecisions(
      Array.from({ length: 25 }, (_, i) => auditRecord({ at: T0 + Math.floor(i / 4), requestId: `r${i}` })),
    );
    const seen: string[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < 10; page++) {
      const result = await store.search({ limit: 7, ...(cursor ? { cursor } : {}) });
      seen.push(...result.records.map((r) => r.requestId));
      if (result.next === null) break;
      cursor = result.next;
    }
    expect(seen).toHaveLength(25);
    expect(new Set(seen).size).toBe(25);
    expect(seen[0]).toBe('r24');
  });

  it('refuses a cursor it did not hand out', async () => {
    await expect(store.search({ limit: 5, cursor: 'bm90LWEtY3Vyc29y' })).rejects.toMatchObject({
      code: 'ERR_AUDIT_CURSOR',
    });
  });

  it('prunes records older than the cut-off and keeps the rest', async () => {
    await store.writeDecisions(
      Array.from({ length: 12_000 }, (_, i) => auditRecord({ at: T0 + i, requestId: `r${i}` })),
    );
    expect(await store.prune(T0 + 11_000)).toBe(11_000);
    const { records } = await store.search({ limit: 1000 });
    expect(records).toHaveLength(1000);
    expect(records.every((r) => Date.parse(r.at) >= T0 + 11_000)).toBe(true);
  });

  it('remembers each gateway with its key, version, first and last seen and query count', async () => {
    await store.writeDecisions([
      auditRecord({ at: T0, gateway: 'gw1' }),
      auditRecord({ at: T0 + 5, gateway: 'gw2', signingKey: 'k1:ffff0000' }),
    ]);
    await store.writeDecisions([
      auditRecord({ at: T0 + 10, gateway: 'gw1', signingKey: 'k1:ffff0000' }),
      auditRecord({ at: T0 + 20, gateway: 'gw1', signingKey: 'k1:ffff0000' }),
    ]);
    expect(await store.listGateways()).toEqual([
      {
        name: 'gw1',
        signingKey: 'k1:ffff0000',
        version: '0.1.0',
        firstSeen: new Date(T0).toISOString(),
        lastSeen: new Date(T0 + 20).toISOString(),
        queries: 3,
      },
      {
        name: 'gw2',
        signingKey: 'k1:ffff0000',
        version: '0.1.0',
        firstSeen: new Date(T0 + 5).toISOString(),
        lastSeen: new Date(T0 + 5).toISOString(),
        queries: 1,
      },
    ]);
  });

  it('counts the answers of each rule in a time range, USERID apart, the most used rule first', async () => {
    await store.writeDecisions([
      auditRecord({ at: T0 - 1, rule: 'lan' }),
      auditRecord({ at: T0, rule: 'lan' }),
      auditRecord({ at: T0 + 1, rule: 'lan', error: 'NO-USER' }),
      auditRecord({ at: T0 + 2, rule: 'hide-root', error: 'HIDDEN-USER' }),
      auditRecord({ at: T0 + 3, rule: 'pseudonyms' }),
      auditRecord({ at: T0 + 10, rule: 'pseudonyms' }),
    ]);
    expect(await store.answersByRule({ from: T0, to: T0 + 10 })).toEqual([
      { rule: 'lan', answers: 2, userIds: 1 },
      { rule: 'hide-root', answers: 1, userIds: 0 },
      { rule: 'pseudonyms', answers: 1, userIds: 1 },
    ]);
    expect(await store.answersByRule({ from: T0 + 11, to: T0 + 20 })).toEqual([]);
  });
});

describe('assignments in the SQLite file', () => {
  it('assigns an ident to a scope and answers it back', async () => {
    const outcome = await store.putAssignment({ gateway: 'gw1', ownerUid: 1000 }, 'alice', T0);
    expect(outcome).toEqual({
      kind: 'assigned',
      replaced: null,
      assignment: { scope: { gateway: 'gw1', ownerUid: 1000 }, ident: 'alice', createdAt: new Date(T0).toISOString() },
    });
    expect((await store.listAssignments({ limit: 10 })).assignments).toEqual([
      outcome.kind === 'assigned' && outcome.assignment,
    ]);
  });

  it('answers taken, naming the holder, for an ident another scope has, and keeps both as they were', async () => {
    await store.putAssignment({ gateway: 'gw1', ownerUid: 1000 }, 'alice', T0);
    await store.putAssignment({ gateway: 'gw2', claimUser: 'bob' }, 'bob', T0);
    const outcome = await store.putAssignment({ gateway: 'gw2', claimUser: 'bob' }, 'alice', T0 + 1);
    expect(outcome).toMatchObject({
      kind: 'taken',
      holder: { scope: { gateway: 'gw1', ownerUid: 1000 }, ident: 'alice' },
    });
    expect((await store.listAssignments({ limit: 10 })).assignments.map((a) => a.ident)).toEqual(['alice', 'bob']);
  });

  it('replaces a scope’s ident with a new one', async () => {
    await store.putAssignment({ gateway: 'gw1', ownerUid: 1000 }, 'alice', T0);
    expect(await store.putAssignment({ gateway: 'gw1', ownerUid: 1000 }, 'alice2', T0)).toMatchObject({
      kind: 'assigned',
      replaced: 'alice',
    });
    expect((await store.allAssignments()).map((a) => a.ident)).toEqual(['alice2']);
    expect(await store.putAssignment({ gateway: 'gw1', ownerUid: 1000 }, 'alice2', T0)).toMatchObject({
      kind: 'unchanged',
    });
  });

  it('lets exactly one of two concurrent assignments of one ident win', async () => {
    // A second connection to the same file: the two writes race in SQLite, not in one queue.
    const other = await openSqliteDatabase(db.path);
    try {
      const rival = createAuditStore(other);
      for (let round = 0; round < 20; round++) {
        const ident = `nick${round}`;
        const outcomes = await Promise.all([
          store.putAssignment({ gateway: 'gw1', ownerUid: round }, ident, T0),
          rival.putAssignment({ gateway: 'gw2', claimUser: `u${round}` }, ident, T0),
        ]);
        expect(outcomes.map((o) => o.kind).sort()).toEqual(['assigned', 'taken']);
      }
      expect(await store.allAssignments()).toHaveLength(20);
    } finally {
      await other.close();
    }
  });

  it('deletes by ident or by scope', async () => {
    await store.putAssignment({ gateway: 'gw1', ownerUid: 1000 }, 'alice', T0);
    await store.putAssignment({ gateway: 'gw1', claimUser: 'bob' }, 'bob', T0);
    expect(await store.deleteAssignment({ ident: 'alice' })).toMatchObject({ ident: 'alice' });
    expect(await store.deleteAssignment({ gateway: 'gw1', claimUser: 'bob' })).toMatchObject({ ident: 'bob' });
    expect(await store.deleteAssignment({ ident: 'alice' })).toBeNull();
  });
});
