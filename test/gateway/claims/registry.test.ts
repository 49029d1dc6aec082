/**
 * The claims registry and the claims FactSource without sockets: what a query finds (exact ends, owner's uid
 * only, address forms), the per-uid bounds, pending holds and waiting, and the re-check that ends claims whose
 * connection is gone. The owner lookup is a table the test controls.
 */
import { describe, expect, it } from 'vitest';
import { ClaimRegistry, canonicalAddress } from '../../../gateway/claims/registry.js';
import { claimsSource } from '../../../gateway/claims/source.js';
import type { OwnerLookup, OwnerQuery } from '../../../gateway/owner/index.js';

/** An owner lookup answering from `owners` (key: "local lport remote rport"), synchronously. */
function tableLookup(owners: Map<string, number>): OwnerLookup {
  const find = (q: OwnerQuery) => {
    const uid = owners.get(`${q.localAddress} ${q.localPort} ${q.remoteAddress} ${q.remotePort}`);
    return uid === undefined ? null : { uid, userName: null };
  };
  return {
    method: 'sock_diag',
    lookupNow: find,
    lookup: async (q) => find(q),
    start: async () => {},
    close: async () => {},
  };
}

const LOCAL = { address: '192.0.2.1', port: 40000 };
const REMOTE = { address: '203.0.113.5', port: 6697 };
const QUERY: OwnerQuery = {
  localAddress: '192.0.2.1',
  localPort: 40000,
  remoteAddress: '203.0.113.5',
  remotePort: 6697,
};

describe('canonicalAddress', () => {
  it('gives one form per address', () => {
    expect(canonicalAddress('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(canonicalAddress('192.0.2.1')).toBe('192.0.2.1');
    expect(canonicalAddress('2001:db8::1')).toBe(canonicalAddress('2001:0db8:0:0:0:0:0:0001'));
    expect(canonicalAddress('irc.example')).toBeNull();
  });
});

describe('ClaimRegistry', () => {
  it('finds a claim by its exact ends for the uid that made it, and only for that uid', () => {
    const registry = new ClaimRegistry({ owners: tableLookup(new Map()) });
    registry.add(1000, { local: LOCAL, remote: REMOTE, user: 'alice', ident: 'al' });
    expect(registry.claimFor(QUERY, 1000)?.facts).toEqual({ claim: { user: 'alice', ident: 'al' } });
    expect(registry.claimFor({ ...QUERY, localAddress: '::ffff:192.0.2.1' }, 1000)?.user).toBe('alice');
    expect(registry.claimFor(QUERY, 1001)).toBeNull();
    expect(registry.claimFor({ ...QUERY, localPort: 40001 }, 1000)).toBeNull();
    expect(registry.claimFor({ ...QUERY, remotePort: 6667 }, 1000)).toBeNull();
  });

  it('bounds the claims one uid holds, not another uid', () => {
    const registry = new ClaimRegistry({ owners: tableLookup(new Map()), claimsPerUid: 1 });
    expect(registry.add(1000, { local: LOCAL, remote: REMOTE, user: 'a' }).ok).toBe(true);
    expect(registry.add(1000, { local: { ...LOCAL, port: 40001 }, remote: REMOTE, user: 'b' })).toEqual({
      ok: false,
      reason: 'too_many_claims',
    });
    expect(registry.add(1001, { local: { ...LOCAL, port: 40001 }, remote: REMOTE, user: 'b' }).ok).toBe(true);
  });

  it("releases only the caller's own claims", () => {
    const registry = new ClaimRegistry({ owners: tableLookup(new Map()) });
    const added = registry.add(1000, { local: LOCAL, remote: REMOTE, user: 'a' });
    if (!added.ok) throw new Error('not added');
    expect(registry.release(1001, added.claim.id)).toBe(false);
    expect(registry.releaseAll(1001)).toBe(0);
    expect(registry.release(1000, added.claim.id)).toBe(true);
    expect(registry.size).toBe(0);
  });

  it('drops at the re-check the claims whose connection is gone or owned by another uid now', async () => {
    const owners = new Map([
      ['192.0.2.1 40000 203.0.113.5 6697', 1000],
      ['192.0.2.1 40001 203.0.113.5 6697', 1000],
      ['192.0.2.1 40002 203.0.113.5 6697', 1000],
    ]);
    const ended: string[] = [];
    const registry = new ClaimRegistry({ owners: tableLookup(owners), onEnded: (claim) => ended.push(claim.user) });
    for (const [port, user] of [
      [40000, 'kept'],
      [40001, 'closed'],
      [40002, 'reused'],
    ] as const)
      registry.add(1000, { local: { ...LOCAL, port }, remote: REMOTE, user });
    owners.delete('192.0.2.1 40001 203.0.113.5 6697');
    owners.set('192.0.2.1 40002 203.0.113.5 6697', 1001);
    expect(await registry.recheck()).toBe(2);
    expect(ended.sort()).toEqual(['closed', 'reused']);
    expect(registry.list(1000).map((claim) => claim.user)).toEqual(['kept']);
  });

  it('re-checks on its timer once started', async () => {
    const owners = new Map<string, number>();
    let resolveEnded!: (user: string) => void;
    const ended = new Promise<string>((resolve) => (resolveEnded = resolve));
    const registry = new ClaimRegistry({
      owners: tableLookup(owners),
      recheckMs: 10,
      onEnded: (claim) => resolveEnded(claim.user),
    });
    registry.add(1000, { local: LOCAL, remote: REMOTE, user: 'gone' });
    registry.start();
    expect(await ended).toBe('gone');
    registry.close();
  });

  it('holds only queries about the holding uid’s connections to that remote, and only while the hold lasts', () => {
    let now = 1_000_000;
    const registry = new ClaimRegistry({ owners: tableLookup(new Map()), now: () => now });
    registry.hold(1000, REMOTE, 5_000);
    expect(registry.claimFor(QUERY, 1000)).toBeUndefined();
    expect(registry.claimFor(QUERY, 1001)).toBeNull();
    expect(registry.claimFor({ ...QUERY, remotePort: 6667 }, 1000)).toBeNull();
    now += 5_000;
    expect(registry.claimFor(QUERY, 1000)).toBeNull();
  });

  it('bounds the pending holds one uid holds', () => {
    const registry = new ClaimRegistry({ owners: tableLookup(new Map()), holdsPerUid: 2 });
    expect([1, 2, 3].map(() => registry.hold(1000, REMOTE, 1_000).ok)).toEqual([true, true, false]);
    expect(registry.hold(1001, REMOTE, 1_000).ok).toBe(true);
  });

  it('answers a waiting query with the claim when it arrives, not with another uid’s', async () => {
    const registry = new ClaimRegistry({ owners: tableLookup(new Map()) });
    registry.hold(1000, REMOTE, 5_000);
    const waited = registry.waitFor(QUERY, 1000, 2_000);
    registry.add(1001, { local: LOCAL, remote: REMOTE, user: 'mallory' });
    expect(registry.waiting).toBe(1);
    registry.add(1000, { local: LOCAL, remote: REMOTE, user: 'alice' });
    expect((await waited)?.user).toBe('alice');
    expect(registry.waiting).toBe(0);
  });

  it('answers a waiting query unclaimed after the wait', async () => {
    const registry = new ClaimRegistry({ owners: tableLookup(new Map()) });
    registry.hold(1000, REMOTE, 5_000);
    expect(await registry.waitFor(QUERY, 1000, 20)).toBeNull();
  });
});

describe('claimsSource', () => {
  it('answers at once: the claim, null when unclaimed, null when the owner is unknown', () => {
    const registry = new ClaimRegistry({ owners: tableLookup(new Map()) });
    const source = claimsSource(registry, { waitMs: 100 });
    registry.add(1000, { local: LOCAL, remote: REMOTE, user: 'alice' });
    expect(source.gatherNow!(QUERY, { owner: { uid: 1000, userName: 'znc' } })).toEqual({ claim: { user: 'alice' } });
    expect(source.gatherNow!(QUERY, { owner: { uid: 1001, userName: 'bob' } })).toEqual({ claim: null });
    expect(source.gatherNow!(QUERY, { owner: null })).toEqual({ claim: null });
  });

  it('asks to wait (undefined) only when a hold applies, then waits for the claim', async () => {
    const registry = new ClaimRegistry({ owners: tableLookup(new Map()) });
    const source = claimsSource(registry, { waitMs: 1_000 });
    const facts = { owner: { uid: 1000, userName: 'znc' } };
    registry.hold(1000, REMOTE, 5_000);
    expect(source.gatherNow!(QUERY, facts)).toBeUndefined();
    const gathered = source.gather(QUERY, facts);
    registry.add(1000, { local: LOCAL, remote: REMOTE, user: 'alice', ident: 'alice' });
    expect(await gathered).toEqual({ claim: { user: 'alice', ident: 'alice' } });
  });
});
