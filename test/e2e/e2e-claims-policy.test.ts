/**
 * Claims through the whole gateway and the real policy engine: a claim recorded in the claims
 * registry is attached to the lookup by its FactSource, the embedded worker decides with the claim
 * rule or a per-claim-user pseudonym, and a real IdentClient reads the answer over loopback TCP.
 * A claim without a rule that grants it changes nothing.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ClaimRegistry } from '../../gateway/claims/registry.js';
import { claimsSource } from '../../gateway/claims/source.js';
import { IdentClient } from '../../gateway/client/client.js';
import { createLogger } from '../../gateway/daemon/log.js';
import type { Owner, OwnerLookup } from '../../gateway/owner/index.js';
import { createQueryPipeline } from '../../gateway/pipeline.js';
import { createEmbeddedResolver } from '../../gateway/resolver/embedded.js';
import { createApp } from '../../worker/app.js';
import { parsePolicy } from '../../worker/policy/index.js';
import { createMemoryStore } from '../../worker/stores/memory.js';
import { startServer } from '../helpers/server.js';

const ZNC_UID = 990;
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Every queried connection is the ZNC account's, as owner lookup would find. */
const owners: OwnerLookup = {
  lookupNow: (): Owner => ({ uid: ZNC_UID, userName: 'znc' }),
  lookup: async (): Promise<Owner> => ({ uid: ZNC_UID, userName: 'znc' }),
  start: async () => undefined,
  close: async () => undefined,
  method: 'test',
};

async function gateway(rules: object[]) {
  const policy = parsePolicy({
    version: 1,
    key: 'e2e-claims-policy-key-0123456789',
    rules,
    default: { action: { reveal: 'name' } },
  });
  const app = createApp({ store: createMemoryStore(policy), secrets: [], mode: 'embedded' });
  const resolver = createEmbeddedResolver({ app, deadlineMs: 500 });
  cleanups.push(() => resolver.close());
  const registry = new ClaimRegistry({ owners });
  cleanups.push(() => registry.close());
  const handler = createQueryPipeline({
    gatewayName: 'gw',
    owners,
    resolver,
    sources: [claimsSource(registry, { waitMs: 0 })],
    log: createLogger('silent'),
    bootId: 'e2e',
  });
  const { port } = await startServer(handler);
  const client = new IdentClient({ hostname: '127.0.0.1', port, timeout: 5_000 });
  cleanups.push(() => client.close());
  /** Claims the connection 127.0.0.1:local -> 127.0.0.1:remote for `user` (the ident client's address on both ends). */
  const claim = (local: number, remote: number, user: string, ident?: string) =>
    registry.add(ZNC_UID, {
      local: { address: '127.0.0.1', port: local },
      remote: { address: '127.0.0.1', port: remote },
      user,
      ident,
    });
  return { client, claim };
}

describe('claims decided by the policy', () => {
  it("answers the claimed ident where the rule allows it, else the claim's user, else the account", async () => {
    const { client, claim } = await gateway([
      {
        name: 'znc-claims',
        match: { ownerName: 'znc', claimed: true },
        action: { claim: { ident: { pattern: 'znc-*', maxLength: 12 }, user: { deny: ['root'] } } },
      },
    ]);
    claim(40001, 6667, 'alice', 'znc-alice');
    claim(40002, 6667, 'bob', 'root');
    claim(40003, 6667, 'root', 'root');
    expect((await client.ident(40001, 6667)).raw).toBe('40001, 6667 : USERID : OTHER : znc-alice');
    expect((await client.ident(40002, 6667)).raw).toBe('40002, 6667 : USERID : OTHER : bob');
    expect((await client.ident(40003, 6667)).raw).toBe('40003, 6667 : ERROR : HIDDEN-USER');
    expect((await client.ident(40004, 6667)).raw).toBe('40004, 6667 : USERID : UNIX : znc');
  });

  it("gives each of a bouncer's users a stable pseudonym of their own", async () => {
    const { client, claim } = await gateway([
      { name: 'znc', match: { ownerName: 'znc' }, action: { pseudonym: { perClaimUser: true } } },
    ]);
    claim(40001, 6667, 'alice');
    claim(40002, 6667, 'alice');
    claim(40003, 6667, 'bob');
    const [a1, a2, b, none] = await Promise.all(
      [40001, 40002, 40003, 40004].map(async (port) => (await client.ident(port, 6667)).userId),
    );
    expect(a1).toBe(a2);
    expect(new Set([a1, b, none]).size).toBe(3);
  });

  it('changes nothing without a rule that grants it', async () => {
    const { client, claim } = await gateway([]);
    claim(40001, 6667, 'alice', 'alice');
    expect((await client.ident(40001, 6667)).raw).toBe('40001, 6667 : USERID : UNIX : znc');
  });
});
