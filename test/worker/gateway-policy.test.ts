import { describe, expect, it } from 'vitest';
import { createApp } from '../../worker/app.js';
import { createMemoryStore } from '../../worker/stores/memory.js';
import { parsePolicy } from '../../worker/policy/index.js';
import { GatewayPolicyAnswerSchema, ROUTES, WireErrorSchema } from '../../protocol/wire.js';
import { adminRequest, signedRequest } from './workerd/fixtures.js';

const SECRET = 'gateway-policy-secret';
const ADMIN = 'gateway-policy-admin-token';
const POLICY = {
  version: 1,
  key: 'pseudonym-key-0123456789',
  rules: [
    { name: 'edges', match: { gateway: 'edge-*', serverPort: 400 }, action: { userId: 'edge-user' } },
    { name: 'core-only', match: { gateway: 'core', serverPort: 400 }, action: { userId: 'core-secret' } },
    { name: 'everywhere', match: { serverPort: 401 }, action: { pseudonym: {} } },
    { name: 'listed', match: { gateway: ['core', 'edge-1'], serverPort: 402 }, action: { error: 'NO-USER' } },
  ],
  default: { action: { error: 'HIDDEN-USER' } },
};

function app() {
  return createApp({ store: createMemoryStore(parsePolicy(POLICY)), secrets: [SECRET], adminTokens: [ADMIN] });
}

async function ask(worker: ReturnType<typeof app>, body: Record<string, unknown>) {
  const text = JSON.stringify({ v: 1, id: `p-${Math.random()}`, ...body });
  return worker.fetch(await signedRequest([SECRET], ROUTES.gatewayPolicy, text));
}

describe('POST /v1/gateway/policy', () => {
  it('answers the rules that can match the asking gateway, in order, with the default and without the key', async () => {
    const worker = app();
    const res = await ask(worker, { gateway: 'edge-1' });
    expect(res.status).toBe(200);
    const answer = GatewayPolicyAnswerSchema.parse(await res.json());
    const { version } = (await (await worker.fetch(adminRequest('GET', ROUTES.policy, ADMIN))).json()) as {
      version: string;
    };
    expect(answer).toEqual({
      v: 1,
      version,
      policy: { version: 1, rules: [POLICY.rules[0], POLICY.rules[2], POLICY.rules[3]], default: POLICY.default },
    });
  });

  it('answers unchanged, without the policy, when the gateway holds the current version', async () => {
    const worker = app();
    const first = GatewayPolicyAnswerSchema.parse(await (await ask(worker, { gateway: 'core' })).json());
    const again = await ask(worker, { gateway: 'core', have: first.version });
    expect(await again.json()).toEqual({ v: 1, version: first.version, unchanged: true });
    const older = await ask(worker, { gateway: 'core', have: 'not-the-version' });
    expect(await older.json()).toHaveProperty('policy');
  });

  it('refuses an unsigned request with 401 and one without a gateway name with 400', async () => {
    const worker = app();
    const unsigned = await worker.fetch(
      await signedRequest([], ROUTES.gatewayPolicy, '{"v":1,"id":"x","gateway":"core"}'),
    );
    expect(unsigned.status).toBe(401);
    const nameless = await ask(worker, {});
    expect(nameless.status).toBe(400);
    expect(WireErrorSchema.parse(await nameless.json()).error.code).toBe('invalid_request');
  });
});
