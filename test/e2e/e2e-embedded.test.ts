/**
 * End to end, embedded policy: the built CLI (`identgate serve --policy FILE`)
 * answers real ident queries from IdentClient over loopback TCP, deciding with
 * the policy engine inside the gateway process and looking up the real owner of
 * a TCP connection this test process holds.
 */
import { userInfo } from 'node:os';
import { describe, expect, it } from 'vitest';
import { IdentClient } from '../../gateway/client/client.js';
import { holdConnection, onCleanup, startServe, tempFiles } from './harness.js';

/** A policy in the format of docs/policy.md; the owner rule does not hide uid 0. */
const POLICY = {
  version: 1,
  description: 'e2e-embedded',
  rules: [
    { name: 'fixed-answer', match: { serverPort: 400, clientPort: 500 }, action: { userId: 'grimlock' } },
    { name: 'refuse-port', match: { serverPort: 401 }, action: { error: 'X-E2E-REFUSED' } },
    {
      name: 'loopback-names',
      match: { clientAddress: ['127.0.0.0/8', '::1'] },
      action: { reveal: 'name', ifUnknown: 'NO-USER' },
    },
  ],
  default: { action: { error: 'HIDDEN-USER' } },
};

async function gatewayClient(): Promise<IdentClient> {
  const files = tempFiles();
  const gateway = await startServe(['--policy', files.policy(POLICY), '--owner-lookup', 'on', '--deadline', '10000']);
  const client = new IdentClient({ hostname: '127.0.0.1', port: gateway.port, timeout: 15_000 });
  onCleanup(() => client.close());
  // The gateway starts its sock_diag helper on the first lookup, and on a busy
  // machine that first lookup can overrun its 500 ms budget (answered as owner
  // unknown). Warm it up so the tests below see a running helper.
  await client.ident(1, 1);
  return client;
}

describe('identgate serve --policy (embedded worker)', () => {
  it('answers a rule with a fixed user id with that id and opsys OTHER', async () => {
    const client = await gatewayClient();
    const response = await client.ident(400, 500);
    expect(response).toMatchObject({ isSuccess: true, userId: 'grimlock', opsys: 'OTHER' });
    expect(response.raw).toBe('400, 500 : USERID : OTHER : grimlock');
  });

  it('answers a rule with an error action with that error token', async () => {
    const client = await gatewayClient();
    const response = await client.ident(401, 500);
    expect(response.raw).toBe('401, 500 : ERROR : X-E2E-REFUSED');
  });

  it('reveals the user name of the real owner of a held TCP connection, with opsys UNIX', async () => {
    const client = await gatewayClient();
    const held = await holdConnection();
    const expected = userInfo().username;
    // Both ends belong to this process: ask about each, with the port on the gateway's host first (RFC 1413).
    const [listenerEnd, clientEnd] = await Promise.all([
      client.ident(held.listenerPort, held.clientPort),
      client.ident(held.clientPort, held.listenerPort),
    ]);
    expect(listenerEnd.raw).toBe(`${held.listenerPort}, ${held.clientPort} : USERID : UNIX : ${expected}`);
    expect(clientEnd.raw).toBe(`${held.clientPort}, ${held.listenerPort} : USERID : UNIX : ${expected}`);
  });

  it('answers NO-USER about a connection that does not exist', async () => {
    const client = await gatewayClient();
    const held = await holdConnection();
    // The listener's port is real, but nothing connected to it from port 1.
    const response = await client.ident(held.listenerPort, 1);
    expect(response.raw).toBe(`${held.listenerPort}, 1 : ERROR : NO-USER`);
  });
});
