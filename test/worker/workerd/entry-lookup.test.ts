import { env, exports } from 'cloudflare:workers';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  BatchAnswerSchema,
  GatewayPolicyAnswerSchema,
  LookupAnswerSchema,
  MAX_BODY_OCTETS,
  ROUTES,
  WireErrorSchema,
} from '../../../protocol/wire.js';
import { SIGNATURE_HEADER } from '../../../protocol/signature.js';
import { TEST_POLICY, adminRequest, lookupRequest, signedRequest } from './fixtures.js';

// Bindings from vitest.config.ts: IDENTGATE_SECRETS = "test-secret-new\ntest-secret-old",
// IDENTGATE_ADMIN_TOKENS = "test-admin-token"; KV namespace POLICY from wrangler.toml.
const NEW = ['test-secret-new'];
const OLD = ['test-secret-old'];
const worker = exports.default;

let counter = 0;
const uniqueId = () => `wq-${Date.now()}-${++counter}`;

async function codeOf(res: Response): Promise<string> {
  return WireErrorSchema.parse(await res.json()).error.code;
}

beforeAll(async () => {
  // Every workerd test file stores the same policy, so files may run in any order.
  const res = await worker.fetch(adminRequest('PUT', '/v1/policy', 'test-admin-token', JSON.stringify(TEST_POLICY)));
  expect(res.status).toBe(200);
});

describe('the Workers entry: lookups', () => {
  it('reads its secrets from the bindings', () => {
    expect(env.IDENTGATE_SECRETS.split('\n')).toEqual(['test-secret-new', 'test-secret-old']);
  });

  it("answers a gateway's policy poll with the rules that can match its name", async () => {
    const body = JSON.stringify({ v: 1, id: uniqueId(), gateway: 'test-gw' });
    const res = await worker.fetch(await signedRequest(NEW, ROUTES.gatewayPolicy, body));
    expect(res.status).toBe(200);
    const answer = GatewayPolicyAnswerSchema.parse(await res.json());
    const rules = 'policy' in answer ? (answer.policy as { rules: { name: string }[] }).rules : [];
    // "assigned" matches gateway assign-gw only.
    expect(rules.map((rule) => rule.name)).toEqual(['hide-root', 'apps-claim', 'apps-forward', 'apps-userfile', 'lan']);
  });

  it('answers a lookup signed with the current secret', async () => {
    const id = uniqueId();
    const res = await worker.fetch(await signedRequest(NEW, '/v1/ident', JSON.stringify(lookupRequest({ id }))));
    expect(res.status).toBe(200);
    expect(LookupAnswerSchema.parse(await res.json())).toMatchObject({
      v: 1,
      id,
      rule: 'lan',
      answer: { type: 'USERID', userId: 'alice' },
    });
  });

  it('answers a signed lookup that carries a claim', async () => {
    const id = uniqueId();
    const body = JSON.stringify(lookupRequest({ id, claim: { user: 'bob', ident: 'bob' } }));
    const res = await worker.fetch(await signedRequest(NEW, '/v1/ident', body));
    expect(res.status).toBe(200);
    expect(LookupAnswerSchema.parse(await res.json())).toMatchObject({ id, rule: 'lan' });
  });

  it("answers a claimed connection's ident where a rule allows it, and a claim only where a rule matches", async () => {
    const lookup = async (facts: Parameters<typeof lookupRequest>[0]) => {
      const res = await worker.fetch(await signedRequest(NEW, '/v1/ident', JSON.stringify(lookupRequest(facts))));
      return LookupAnswerSchema.parse(await res.json());
    };
    const claim = { user: 'alice', ident: 'znc-alice' };
    expect(await lookup({ id: uniqueId(), serverPort: 7001, claim })).toMatchObject({
      rule: 'apps-claim',
      answer: { type: 'USERID', opsys: 'OTHER', userId: 'znc-alice' },
    });
    expect(await lookup({ id: uniqueId(), serverPort: 7001 })).toMatchObject({ rule: 'lan' });
  });

  it('answers a forward or userFile rule with the delegate for the gateway and the fallback', async () => {
    const batch = {
      v: 1,
      requests: [
        lookupRequest({ id: uniqueId(), serverPort: 7002 }),
        lookupRequest({ id: uniqueId(), serverPort: 7003 }),
      ],
    };
    const res = await worker.fetch(await signedRequest(NEW, '/v1/ident/batch', JSON.stringify(batch)));
    const { answers } = BatchAnswerSchema.parse(await res.json());
    expect(answers[0]).toMatchObject({
      rule: 'apps-forward',
      answer: { type: 'ERROR', error: 'HIDDEN-USER' },
      delegate: { kind: 'forward', host: '127.0.0.1', port: 9001, accept: { maxLength: 10, localNames: false } },
    });
    expect(answers[1]).toMatchObject({
      rule: 'apps-userfile',
      answer: { type: 'ERROR', error: 'UNKNOWN-ERROR' },
      delegate: { kind: 'userfile', files: ['.oidentd.conf'] },
    });
  });

  it('answers a lookup signed with the previous secret during a rotation', async () => {
    const res = await worker.fetch(
      await signedRequest(OLD, '/v1/ident', JSON.stringify(lookupRequest({ id: uniqueId() }))),
    );
    expect(res.status).toBe(200);
  });

  it('refuses an unsigned lookup with missing_signature', async () => {
    const res = await worker.fetch(
      await signedRequest([], '/v1/ident', JSON.stringify(lookupRequest({ id: uniqueId() }))),
    );
    expect(res.status).toBe(401);
    expect(await codeOf(res)).toBe('missing_signature');
  });

  it('refuses a lookup signed with a wrong secret with bad_signature', async () => {
    const res = await worker.fetch(
      await signedRequest(['guess'], '/v1/ident', JSON.stringify(lookupRequest({ id: uniqueId() }))),
    );
    expect(await codeOf(res)).toBe('bad_signature');
  });

  it('refuses a lookup signed two minutes ago with stale_signature', async () => {
    const then = Math.floor(Date.now() / 1000) - 120;
    const res = await worker.fetch(
      await signedRequest(NEW, '/v1/ident', JSON.stringify(lookupRequest({ id: uniqueId() })), then),
    );
    expect(await codeOf(res)).toBe('stale_signature');
  });

  it('refuses a malformed signature header with malformed_signature', async () => {
    const request = await signedRequest(NEW, '/v1/ident', JSON.stringify(lookupRequest({ id: uniqueId() })));
    request.headers.set(SIGNATURE_HEADER, 'sha1=abc');
    expect(await codeOf(await worker.fetch(request))).toBe('malformed_signature');
  });

  it('refuses a replayed request with replayed_signature', async () => {
    const request = await signedRequest(NEW, '/v1/ident', JSON.stringify(lookupRequest({ id: uniqueId() })));
    const replay = request.clone();
    expect((await worker.fetch(request)).status).toBe(200);
    const res = await worker.fetch(replay);
    expect(res.status).toBe(401);
    expect(await codeOf(res)).toBe('replayed_signature');
  });

  it('refuses a signed request that breaks the schema with invalid_request naming the field', async () => {
    const body = JSON.stringify({ ...lookupRequest({ id: uniqueId() }), v: 2 });
    const res = await worker.fetch(await signedRequest(NEW, '/v1/ident', body));
    expect(res.status).toBe(400);
    const { error } = WireErrorSchema.parse(await res.json());
    expect(error.code).toBe('invalid_request');
    expect(error.message).toMatch(/^v: /);
  });

  it('refuses a signed body that is not JSON with invalid_json', async () => {
    const res = await worker.fetch(await signedRequest(NEW, '/v1/ident', `{"id":"${uniqueId()}"`));
    expect(await codeOf(res)).toBe('invalid_json');
  });

  it('answers a batch in the order of its requests', async () => {
    const ids = [uniqueId(), uniqueId(), uniqueId()];
    const requests = [
      lookupRequest({ id: ids[0], remoteAddress: '203.0.113.5' }),
      lookupRequest({ id: ids[1], uid: 0 }),
      lookupRequest({ id: ids[2] }),
    ];
    const res = await worker.fetch(await signedRequest(NEW, '/v1/ident/batch', JSON.stringify({ v: 1, requests })));
    expect(res.status).toBe(200);
    const { answers } = BatchAnswerSchema.parse(await res.json());
    expect(answers.map((answer) => [answer.id, answer.rule])).toEqual([
      [ids[0], 'default'],
      [ids[1], 'hide-root'],
      [ids[2], 'lan'],
    ]);
  });

  it('refuses a body larger than the limit with body_too_large', async () => {
    const body = JSON.stringify({ ...lookupRequest({ id: uniqueId() }), pad: 'x'.repeat(MAX_BODY_OCTETS) });
    const res = await worker.fetch(await signedRequest(NEW, '/v1/ident', body));
    expect(res.status).toBe(413);
    expect(await codeOf(res)).toBe('body_too_large');
  });

  it('answers /healthz without authentication', async () => {
    const res = await worker.fetch(new Request('http://worker/healthz'));
    expect(res.status).toBe(200);
    // With the AUDIT binding it also tells what this isolate recorded.
    expect(await res.json()).toEqual({
      status: 'ok',
      mode: 'service',
      configured: true,
      audit: expect.objectContaining({ written: expect.any(Number), dropped: expect.any(Number) }),
    });
  });

  it('answers an unknown route with not_found', async () => {
    const res = await worker.fetch(new Request('http://worker/nope'));
    expect(res.status).toBe(404);
    expect(await codeOf(res)).toBe('not_found');
  });
});
