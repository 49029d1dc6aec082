/**
 * The console's audit pages on the Workers entry, over the local D1 database: what Chromium sees from
 * `identgate worker` (test/worker/console.test.ts), here as the HTML the Workers runtime answers.
 */
import { createExecutionContext, waitOnExecutionContext } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { beforeAll, describe, expect, it } from 'vitest';
import worker from '../../../worker/workers-entry.js';
import { TEST_POLICY, adminRequest, lookupRequest, signedRequest } from './fixtures.js';

const TOKEN = 'test-admin-token';
const ORIGIN = 'http://worker';
const gateway = `console-gw-${Date.now()}`;
let cookie: string;
let csrf: string;

/** Calls the entry as Workers would, then waits for what it left to ctx.waitUntil (the audit write). */
async function call(request: Request): Promise<Response> {
  const ctx = createExecutionContext();
  const res = await worker.fetch(request as Parameters<typeof worker.fetch>[0], env, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

const get = (path: string) => call(new Request(`${ORIGIN}${path}`, { headers: { cookie } }));
const post = (path: string, form: Record<string, string>) =>
  call(
    new Request(`${ORIGIN}${path}`, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie, origin: ORIGIN, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf, ...form }),
    }),
  );

beforeAll(async () => {
  expect((await call(adminRequest('PUT', '/v1/policy', TOKEN, JSON.stringify(TEST_POLICY)))).status).toBe(200);
  const signIn = await call(
    new Request(`${ORIGIN}/admin/sign-in`, {
      method: 'POST',
      redirect: 'manual',
      headers: { origin: ORIGIN, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: TOKEN }),
    }),
  );
  expect(signIn.status).toBe(303);
  cookie = signIn.headers.get('set-cookie')!.split(';')[0]!;
  csrf = /name="csrf" value="([0-9a-f]+)"/.exec(await (await get('/admin')).text())![1]!;
  for (const id of ['c1', 'c2']) {
    const body = JSON.stringify({ ...lookupRequest({ id, userName: 'carol', uid: 1234 }), gateway });
    const request = await signedRequest(['test-secret-new'], '/v1/ident', body);
    request.headers.set('user-agent', 'identgate/9.8.7 (node v20.20.2)');
    expect((await call(request)).status).toBe(200);
  }
});

describe('the console on the Workers entry, with D1', () => {
  it('shows the gateway and the last hour’s answers by rule on the overview', async () => {
    const html = await (await get('/admin')).text();
    expect(html).toMatch(new RegExp(`<td>${gateway}</td><td><time[^>]*>[^<]+</time></td><td>2</td>`));
    expect(html).toMatch(/<td>lan<\/td><td>\d+<\/td>/);
  });

  it('finds the gateway’s records on the audit page, and answers a bad filter with 400 at its field', async () => {
    const found = await get(`/admin/audit?gateway=${gateway}&userId=carol`);
    expect(found.status).toBe(200);
    const html = await found.text();
    expect(html).toContain('2 records on this page, newest first');
    expect(html).toContain('USERID : UNIX : carol');
    const bad = await get('/admin/audit?clientPort=70000');
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain('<code>clientPort</code>: must be 1..65535');
  });

  it('lists the gateway with its version on the gateways page', async () => {
    const html = await (await get('/admin/gateways')).text();
    expect(html).toMatch(new RegExp(`<td>${gateway}</td><td>k0:[0-9a-f]{8}</td><td>9.8.7</td>`));
  });

  it('assigns an ident from the form and answers a duplicate with 409 naming who has it', async () => {
    const ident = `c${Date.now() % 1_000_000}`;
    const first = await post('/admin/assignments', { gateway, ownerUid: '1234', ident });
    expect(first.status).toBe(303);
    const duplicate = await post('/admin/assignments', { gateway, claimUser: 'dave', ident });
    expect(duplicate.status).toBe(409);
    expect(await duplicate.text()).toContain(
      `ident &quot;${ident}&quot; is already assigned to uid 1234 on gateway ${gateway}`,
    );
  });
});
