import { env, exports } from 'cloudflare:workers';
import { beforeAll, describe, expect, it } from 'vitest';
import { WireErrorSchema } from '../../../protocol/wire.js';
import { parsePolicy } from '../../../worker/policy/index.js';
import { TEST_POLICY, adminRequest, lookupRequest } from './fixtures.js';

const TOKEN = 'test-admin-token';
const worker = exports.default;

async function codeOf(res: Response): Promise<string> {
  return WireErrorSchema.parse(await res.json()).error.code;
}

beforeAll(async () => {
  // Every workerd test file stores the same policy, so files may run in any order.
  const res = await worker.fetch(adminRequest('PUT', '/v1/policy', TOKEN, JSON.stringify(TEST_POLICY)));
  expect(res.status).toBe(200);
});

describe('the Workers entry: admin API', () => {
  it('refuses GET /v1/policy without a token', async () => {
    const res = await worker.fetch(adminRequest('GET', '/v1/policy', undefined));
    expect(res.status).toBe(401);
    expect(await codeOf(res)).toBe('unauthorized');
  });

  it('refuses GET /v1/policy with a wrong token', async () => {
    const res = await worker.fetch(adminRequest('GET', '/v1/policy', 'test-admin-tokem'));
    expect(res.status).toBe(401);
  });

  it('refuses an HMAC secret as an admin token', async () => {
    const res = await worker.fetch(adminRequest('GET', '/v1/policy', 'test-secret-new'));
    expect(res.status).toBe(401);
  });

  it('answers GET /v1/policy with the stored policy for the right token', async () => {
    const res = await worker.fetch(adminRequest('GET', '/v1/policy', TOKEN));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ v: 1, policy: parsePolicy(TEST_POLICY) });
  });

  it('stores a PUT policy in the KV key "policy"', async () => {
    const res = await worker.fetch(adminRequest('PUT', '/v1/policy', TOKEN, JSON.stringify(TEST_POLICY)));
    expect(res.status).toBe(200);
    expect(JSON.parse((await env.POLICY.get('policy', 'text')) ?? 'null')).toEqual(parsePolicy(TEST_POLICY));
  });

  it('refuses an invalid policy with invalid_policy naming its path', async () => {
    const invalid = { ...TEST_POLICY, default: { action: { reveal: 'everything' } } };
    const res = await worker.fetch(adminRequest('PUT', '/v1/policy', TOKEN, JSON.stringify(invalid)));
    expect(res.status).toBe(400);
    const { error } = WireErrorSchema.parse(await res.json());
    expect(error.code).toBe('invalid_policy');
    expect(error.message).toContain('default.action.reveal');
  });

  it('refuses PUT /v1/policy without a token and leaves KV alone', async () => {
    const res = await worker.fetch(
      adminRequest(
        'PUT',
        '/v1/policy',
        undefined,
        JSON.stringify({ version: 1, rules: [], default: { action: { userId: 'x' } } }),
      ),
    );
    expect(res.status).toBe(401);
    expect(JSON.parse((await env.POLICY.get('policy', 'text')) ?? 'null')).toEqual(parsePolicy(TEST_POLICY));
  });

  it('explains which rule would answer a query and what', async () => {
    const { v: _v, id: _id, ...query } = lookupRequest({ remoteAddress: '203.0.113.50' });
    const res = await worker.fetch(adminRequest('POST', '/v1/explain', TOKEN, JSON.stringify(query)));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ v: 1, rule: 'default', answer: { type: 'ERROR', error: 'NO-USER' } });
  });

  it('refuses POST /v1/explain without a token', async () => {
    const res = await worker.fetch(adminRequest('POST', '/v1/explain', undefined, '{}'));
    expect(res.status).toBe(401);
  });
});
