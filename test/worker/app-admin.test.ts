import { describe, expect, it } from 'vitest';
import { createApp } from '../../worker/app.js';
import { createMemoryStore } from '../../worker/stores/memory.js';
import { parsePolicy } from '../../worker/policy/index.js';
import { WireErrorSchema } from '../../protocol/wire.js';
import { TEST_POLICY, adminRequest, lookupRequest, signedRequest } from './workerd/fixtures.js';

function adminApp(adminTokens?: readonly string[], mode: 'embedded' | 'service' = 'service') {
  return createApp({ store: createMemoryStore(parsePolicy(TEST_POLICY)), secrets: ['hmac'], adminTokens, mode });
}

async function codeOf(res: Response): Promise<string> {
  return WireErrorSchema.parse(await res.json()).error.code;
}

const OTHER_POLICY = { version: 1, rules: [], default: { action: { userId: 'anonymous' } } };

describe('admin routes', () => {
  it('answer 503 not_configured when no admin token is configured, also in embedded mode', async () => {
    for (const app of [adminApp(undefined), adminApp([], 'embedded')]) {
      const res = await app.fetch(adminRequest('GET', '/v1/policy', 'anything'));
      expect(res.status).toBe(503);
      expect(await codeOf(res)).toBe('not_configured');
    }
  });

  it('refuse a request without a bearer token with 401 unauthorized', async () => {
    const res = await adminApp(['admin']).fetch(adminRequest('GET', '/v1/policy', undefined));
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer');
    expect(await codeOf(res)).toBe('unauthorized');
  });

  it('refuse a wrong token', async () => {
    const res = await adminApp(['admin']).fetch(adminRequest('GET', '/v1/policy', 'admin2'));
    expect(await codeOf(res)).toBe('unauthorized');
  });

  it('refuse a malformed Authorization header with 401 unauthorized, not 400', async () => {
    for (const authorization of ['Basic YWRtaW46eA==', 'Bearer', 'Bearer admin extra']) {
      const request = new Request('http://worker/v1/policy', { headers: { authorization } });
      const res = await adminApp(['admin']).fetch(request);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
      expect(await codeOf(res)).toBe('unauthorized');
    }
  });

  it('accept any of several configured tokens, the bearer scheme in any case', async () => {
    const request = new Request('http://worker/v1/policy', { headers: { authorization: 'bearer second' } });
    expect((await adminApp(['first', 'second']).fetch(request)).status).toBe(200);
  });

  it('refuse an HMAC secret used as a bearer token', async () => {
    const res = await adminApp(['admin']).fetch(adminRequest('GET', '/v1/policy', 'hmac'));
    expect(await codeOf(res)).toBe('unauthorized');
  });

  it('GET /v1/policy answers the current policy, its version and an ETag', async () => {
    const res = await adminApp(['other', 'admin']).fetch(adminRequest('GET', '/v1/policy', 'admin'));
    expect(res.status).toBe(200);
    const json = (await res.json()) as { v: number; version: string; policy: unknown };
    expect(json.v).toBe(1);
    expect(json.policy).toEqual(parsePolicy(TEST_POLICY));
    expect(json.version).toMatch(/^[0-9a-f]{16}$/);
    expect(res.headers.get('etag')).toBe(`"${json.version}"`);
  });

  it('PUT /v1/policy stores a valid policy that later lookups use', async () => {
    const app = createApp({
      store: createMemoryStore(parsePolicy(TEST_POLICY)),
      secrets: [],
      adminTokens: ['admin'],
      mode: 'embedded',
    });
    const put = await app.fetch(adminRequest('PUT', '/v1/policy', 'admin', JSON.stringify(OTHER_POLICY)));
    expect(put.status).toBe(200);
    const { version } = (await put.json()) as { version: string };
    const got = (await (await app.fetch(adminRequest('GET', '/v1/policy', 'admin'))).json()) as { version: string };
    expect(got.version).toBe(version);
    const lookup = await app.fetch(await signedRequest([], '/v1/ident', JSON.stringify(lookupRequest())));
    expect(await lookup.json()).toMatchObject({ rule: 'default', answer: { type: 'USERID', userId: 'anonymous' } });
  });

  it('PUT /v1/policy refuses an invalid policy with 400 invalid_policy naming the path, and keeps the old one', async () => {
    const app = adminApp(['admin']);
    const before = (await (await app.fetch(adminRequest('GET', '/v1/policy', 'admin'))).json()) as { version: string };
    const invalid = {
      ...TEST_POLICY,
      rules: [
        TEST_POLICY.rules[0],
        { name: 'bad', match: { clientAddress: '10.0.0.0/33' }, action: { error: 'NO-USER' } },
      ],
    };
    const res = await app.fetch(adminRequest('PUT', '/v1/policy', 'admin', JSON.stringify(invalid)));
    expect(res.status).toBe(400);
    const { error } = WireErrorSchema.parse(await res.json());
    expect(error.code).toBe('invalid_policy');
    expect(error.message).toContain('rules[1].match.clientAddress');
    const after = (await (await app.fetch(adminRequest('GET', '/v1/policy', 'admin'))).json()) as { version: string };
    expect(after.version).toBe(before.version);
  });

  it('PUT /v1/policy refuses a body that is not JSON with invalid_json', async () => {
    const res = await adminApp(['admin']).fetch(adminRequest('PUT', '/v1/policy', 'admin', '{'));
    expect(await codeOf(res)).toBe('invalid_json');
  });

  it('GET /v1/policy hides the pseudonym key, and a PUT of that copy keeps the key', async () => {
    const secretKey = 'pseudonym-key-0123456789';
    const withKey = { version: 1, key: secretKey, rules: [], default: { action: { pseudonym: {} } } };
    const app = createApp({
      store: createMemoryStore(parsePolicy(withKey)),
      secrets: [],
      adminTokens: ['admin'],
      mode: 'embedded',
    });
    const shown = await (await app.fetch(adminRequest('GET', '/v1/policy', 'admin'))).text();
    expect(shown).not.toContain(secretKey);
    const { policy, version } = JSON.parse(shown) as { policy: { key: string }; version: string };
    expect(policy.key).toBe('[redacted]');
    const put = await app.fetch(adminRequest('PUT', '/v1/policy', 'admin', JSON.stringify(policy)));
    expect(put.status).toBe(200);
    expect(((await put.json()) as { version: string }).version).toBe(version);
  });

  it('POST /v1/explain names the rule that would answer and the answer', async () => {
    const query = lookupRequest({ uid: 0 });
    const { v: _v, id: _id, ...withoutIds } = query;
    const res = await adminApp(['admin']).fetch(
      adminRequest('POST', '/v1/explain', 'admin', JSON.stringify(withoutIds)),
    );
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      v: 1,
      rule: 'hide-root',
      ruleIndex: 0,
      answer: { type: 'ERROR', error: 'HIDDEN-USER' },
    });
  });

  it('POST /v1/explain refuses a malformed query with invalid_request', async () => {
    const res = await adminApp(['admin']).fetch(
      adminRequest('POST', '/v1/explain', 'admin', JSON.stringify({ gateway: 'x' })),
    );
    expect(res.status).toBe(400);
    expect(await codeOf(res)).toBe('invalid_request');
  });

  it('PUT /v1/policy takes back what GET answered (the envelope), so GET -> edit -> PUT round-trips', async () => {
    const app = adminApp(['admin']);
    const got = (await (await app.fetch(adminRequest('GET', '/v1/policy', 'admin'))).json()) as {
      version: string;
      policy: { default: unknown };
    };
    got.policy.default = { action: { userId: 'anonymous' } };
    const put = await app.fetch(adminRequest('PUT', '/v1/policy', 'admin', JSON.stringify(got)));
    expect(put.status).toBe(200);
    const after = (await (await app.fetch(adminRequest('GET', '/v1/policy', 'admin'))).json()) as {
      policy: { default: unknown };
    };
    expect(after.policy.default).toEqual({ action: { userId: 'anonymous' } });
  });

  it('PUT /v1/policy of a GET answer refuses it with 409 policy_changed when the policy was replaced since', async () => {
    const app = adminApp(['admin']);
    const got = (await (await app.fetch(adminRequest('GET', '/v1/policy', 'admin'))).json()) as { version: string };
    await app.fetch(adminRequest('PUT', '/v1/policy', 'admin', JSON.stringify(OTHER_POLICY)));
    const stale = await app.fetch(adminRequest('PUT', '/v1/policy', 'admin', JSON.stringify(got)));
    expect(stale.status).toBe(409);
    expect(await codeOf(stale)).toBe('policy_changed');
  });

  it('POST /v1/explain assumes a loopback query for left-out connection fields and says which it assumed', async () => {
    const res = await adminApp(['admin']).fetch(
      adminRequest(
        'POST',
        '/v1/explain',
        'admin',
        JSON.stringify({ query: { serverPort: 6193, clientPort: 23 }, connection: { remoteAddress: '192.0.2.7' } }),
      ),
    );
    expect(res.status).toBe(200);
    const json = (await res.json()) as { assumed: string[]; rule: string };
    expect(json.assumed).toEqual([
      'connection.localAddress',
      'connection.localPort',
      'connection.remotePort',
      'gateway',
      'owner',
    ]);
  });
});
