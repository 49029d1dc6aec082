import { createExecutionContext, createScheduledController, waitOnExecutionContext } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { beforeAll, describe, expect, it } from 'vitest';
import { AssignmentPageSchema, AuditPageSchema, GatewaysSchema } from '../../../protocol/audit.js';
import { BatchAnswerSchema, LookupAnswerSchema, WireErrorSchema } from '../../../protocol/wire.js';
import { createAuditStore } from '../../../worker/stores/audit.js';
import { d1Database } from '../../../worker/stores/d1.js';
import worker from '../../../worker/workers-entry.js';
import { auditRecord } from '../audit/records.js';
import { TEST_POLICY, adminRequest, lookupRequest, signedRequest } from './fixtures.js';

const TOKEN = 'test-admin-token';
const SECRETS = ['test-secret-new'];
let counter = 0;
const unique = (what: string) => `${what}-${Date.now()}-${++counter}`;

/** Calls the entry as Workers would, then waits for what it left to ctx.waitUntil (the audit write). */
async function call(request: Request): Promise<Response> {
  const ctx = createExecutionContext();
  const res = await worker.fetch(request as Parameters<typeof worker.fetch>[0], env, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

const admin = (method: string, path: string, body?: unknown) =>
  call(adminRequest(method, path, TOKEN, body === undefined ? undefined : JSON.stringify(body)));

async function signed(path: string, body: unknown): Promise<Request> {
  const request = await signedRequest(SECRETS, path, JSON.stringify(body));
  request.headers.set('user-agent', 'identgate/9.8.7 (node v20.20.2)');
  return request;
}

beforeAll(async () => {
  const res = await call(adminRequest('PUT', '/v1/policy', TOKEN, JSON.stringify(TEST_POLICY)));
  expect(res.status).toBe(200);
});

describe('the Workers entry: the audit trail in D1', () => {
  it('records every decision of a batch after the response, with the key, owner, claim, answer, rule and version', async () => {
    const gateway = unique('gw');
    const requests = [
      { ...lookupRequest({ id: 'a1', uid: 0 }), gateway },
      { ...lookupRequest({ id: 'a2', claim: { user: 'bob', ident: 'bob' } }), gateway },
    ];
    const res = await call(await signed('/v1/ident/batch', { v: 1, requests }));
    expect(res.status).toBe(200);
    BatchAnswerSchema.parse(await res.json());
    const page = AuditPageSchema.parse(await (await admin('GET', `/v1/audit?gateway=${gateway}`)).json());
    expect(page.next).toBeNull();
    expect(page.records.map((r) => r.requestId).sort()).toEqual(['a1', 'a2']);
    const a2 = page.records.find((r) => r.requestId === 'a2')!;
    expect(a2).toMatchObject({
      gateway,
      signingKey: expect.stringMatching(/^k0:[0-9a-f]{8}$/),
      owner: { uid: 1000, userName: 'alice' },
      claim: { user: 'bob', ident: 'bob' },
      answer: { type: 'USERID', userId: 'alice' },
      rule: 'lan',
      policyVersion: expect.stringMatching(/^[0-9a-f]{16}$/),
    });
    expect(page.records.find((r) => r.requestId === 'a1')).toMatchObject({ rule: 'hide-root', claim: null });
  });

  it('finds who answered as a user id at a time, the abuse desk’s question, in one call', async () => {
    const gateway = unique('gw');
    await call(await signed('/v1/ident', { ...lookupRequest({ id: 'who', userName: 'carol', uid: 1234 }), gateway }));
    const from = new Date(Date.now() - 60_000).toISOString();
    const res = await admin('GET', `/v1/audit?userId=carol&remoteAddress=192.0.2.7&from=${from}&limit=5`);
    const page = AuditPageSchema.parse(await res.json());
    expect(page.records.find((r) => r.gateway === gateway)).toMatchObject({ owner: { uid: 1234, userName: 'carol' } });
  });

  it('lists the gateway with its signing key, version, first and last seen and queries', async () => {
    const gateway = unique('gw');
    for (const id of ['g1', 'g2']) await call(await signed('/v1/ident', { ...lookupRequest({ id }), gateway }));
    const { gateways } = GatewaysSchema.parse(await (await admin('GET', '/v1/gateways')).json());
    const seen = gateways.find((g) => g.name === gateway)!;
    expect(seen).toMatchObject({ version: '9.8.7', queries: 2, signingKey: expect.stringMatching(/^k0:/) });
    expect(Date.parse(seen.lastSeen)).toBeGreaterThanOrEqual(Date.parse(seen.firstSeen));
  });

  it('refuses the audit routes without the admin token', async () => {
    for (const path of ['/v1/audit', '/v1/assignments', '/v1/gateways']) {
      const res = await call(adminRequest('GET', path, undefined));
      expect(res.status).toBe(401);
    }
  });

  it('refuses a bad filter with invalid_request naming it', async () => {
    const res = await admin('GET', '/v1/audit?serverPort=70000');
    expect(res.status).toBe(400);
    const { error } = WireErrorSchema.parse(await res.json());
    expect(error).toMatchObject({ code: 'invalid_request' });
    expect(error.message).toContain('serverPort');
  });

  it('prunes records past the retention from the scheduled handler', async () => {
    const store = createAuditStore(d1Database(env.AUDIT));
    const gateway = unique('old');
    const now = Date.now();
    await store.writeDecisions([
      auditRecord({ gateway, at: now - 31 * 86_400_000, requestId: 'stale' }),
      auditRecord({ gateway, at: now - 29 * 86_400_000, requestId: 'kept' }),
    ]);
    await worker.scheduled(createScheduledController({ scheduledTime: now, cron: '17 * * * *' }), env);
    expect((await store.search({ gateway, limit: 10 })).records.map((r) => r.requestId)).toEqual(['kept']);
  });
});

describe('the Workers entry: assignments in D1', () => {
  it('answers with the assigned ident at once in this isolate, and the fallback once it is deleted', async () => {
    const scope = { gateway: 'assign-gw', ownerUid: 4242 };
    const ident = unique('nick');
    const put = await admin('PUT', '/v1/assignments', { scope, ident });
    expect(put.status).toBe(200);
    expect(await put.json()).toMatchObject({ assignment: { scope, ident }, replaced: null });
    const ask = async () =>
      LookupAnswerSchema.parse(
        await (
          await call(
            await signed(
              '/v1/ident',
              lookupRequest({ id: unique('q'), gateway: 'assign-gw', uid: 4242, remoteAddress: '203.0.113.5' }),
            ),
          )
        ).json(),
      );
    expect((await ask()).answer).toEqual({ type: 'USERID', opsys: 'OTHER', userId: ident });
    const listed = AssignmentPageSchema.parse(await (await admin('GET', `/v1/assignments?ident=${ident}`)).json());
    expect(listed.assignments).toHaveLength(1);
    expect((await admin('DELETE', `/v1/assignments?ident=${ident}`)).status).toBe(200);
    expect((await ask()).answer).toEqual({ type: 'ERROR', error: 'NO-USER' });
    expect((await admin('DELETE', `/v1/assignments?ident=${ident}`)).status).toBe(404);
  });

  it('answers 409 ident_taken naming who has the ident', async () => {
    const ident = unique('taken');
    await admin('PUT', '/v1/assignments', { scope: { gateway: 'gw1', ownerUid: 1 }, ident });
    const res = await admin('PUT', '/v1/assignments', { scope: { gateway: 'gw2', claimUser: 'eve' }, ident });
    expect(res.status).toBe(409);
    const { error } = WireErrorSchema.parse(await res.json());
    expect(error.code).toBe('ident_taken');
    expect(error.message).toContain('uid 1 on gateway gw1');
  });

  it('lets exactly one of two concurrent PUTs of one ident win', async () => {
    const ident = unique('race');
    const statuses = await Promise.all([
      admin('PUT', '/v1/assignments', { scope: { gateway: 'gw1', ownerUid: 77 }, ident }),
      admin('PUT', '/v1/assignments', { scope: { gateway: 'gw1', claimUser: 'mallory' }, ident }),
    ]).then((responses) => responses.map((r) => r.status));
    expect(statuses.sort()).toEqual([200, 409]);
  });

  it('refuses an ident that could not be written as an RFC 1413 user id', async () => {
    const res = await admin('PUT', '/v1/assignments', { scope: { gateway: 'gw1', ownerUid: 1 }, ident: ' lead' });
    expect(res.status).toBe(400);
  });
});
