/**
 * Issue 16 in network namespaces made for this suite (test/interop/nat-rig.ts):
 * an inner host masqueraded by a router running nftables, an IRC server
 * outside asking the router's port 113. First the NAT lookup alone, in the
 * router (ctnetlink through the sock_diag addon and the /proc/net/nf_conntrack
 * fallback, IPv4 and IPv6, source NAT and a port forwarded inward), then
 * `identgate serve` in the router answered by its policy: per inner host,
 * forwarded to oidentd and to identgate inside (both with accepting forwarded
 * queries from the router), a forward that times out, an inner host that does
 * not exist, a querier asking about a connection it is not part of, an
 * oidentd router (-m -f) in front of an inner identgate, and a fake Docker
 * Engine API naming the inner host's container.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, NETNS_TOOLS, requireTools } from './netns.js';
import { requireBuiltGateway } from './gateway-scenario.js';
import { ADDRESSES, createNatRig, FORWARDED_PORT, INNER_SERVER_PORT, type Agent, type NatRig } from './nat-rig.js';
import { join } from 'node:path';

const COMPILED = join(REPO_ROOT, 'dist');
const NAT_LOOKUP = join(REPO_ROOT, 'test/interop/peers/nat-lookup.mjs');

let rig: NatRig;
let irc: Agent;
let inner: Agent;

interface Peer {
  localPort: number;
  remoteAddress: string;
  remotePort: number;
}

beforeAll(async () => {
  await requireTools([
    ...NETNS_TOOLS,
    { command: 'nft', debianPackage: 'nftables' },
    { command: 'conntrack', debianPackage: 'conntrack' },
    { command: 'oidentd', debianPackage: 'oidentd' },
  ]);
  await requireBuiltGateway();
  rig = await createNatRig();
  irc = await rig.agent('outer');
  inner = await rig.agent('inner');
  expect(await irc.ask({ op: 'listen', host: '::', port: 6667 })).toEqual({ port: 6667 });
  expect(await inner.ask({ op: 'listen', host: '0.0.0.0', port: INNER_SERVER_PORT })).toEqual({
    port: INNER_SERVER_PORT,
  });
});

afterAll(async () => {
  await rig?.destroy();
});

/** Connects the inner host to the IRC server; returns the port the IRC server sees (the router's, after masquerade). */
async function innerConnection(server: string): Promise<{ innerPort: number; routerPort: number }> {
  const before = (await irc.ask<{ peers: Peer[] }>({ op: 'peers' })).peers.length;
  const { localPort, error } = await inner.ask<{ localPort: number; error?: string }>({
    op: 'connect',
    host: server,
    port: 6667,
  });
  expect(error).toBeUndefined();
  let peers: Peer[] = [];
  // The IRC server's accept and the inner host's connect complete independently; ask until it shows.
  for (let i = 0; i < 50 && peers.length <= before; i++)
    peers = (await irc.ask<{ peers: Peer[] }>({ op: 'peers' })).peers;
  const peer = peers[peers.length - 1]!;
  return { innerPort: localPort, routerPort: peer.remotePort };
}

async function natLookup(way: 'addon' | 'procfs', queries: object[]) {
  const stdout = await rig.must('router', process.execPath, [NAT_LOOKUP, COMPILED, 'on', way, JSON.stringify(queries)]);
  return JSON.parse(stdout) as { method: string; answers: unknown[]; errors: string[] };
}

describe('the NAT lookup in a masquerading router', () => {
  for (const way of ['addon', 'procfs'] as const) {
    it(`names the inner host of masqueraded IPv4 and IPv6 connections (${way === 'addon' ? 'ctnetlink' : 'procfs'})`, async () => {
      const v4 = await innerConnection(ADDRESSES.outer4);
      const v6 = await innerConnection(ADDRESSES.outer6);
      const result = await natLookup(way, [
        {
          localAddress: ADDRESSES.routerOut4,
          localPort: v4.routerPort,
          remoteAddress: ADDRESSES.outer4,
          remotePort: 6667,
        },
        {
          localAddress: ADDRESSES.routerOut6,
          localPort: v6.routerPort,
          remoteAddress: ADDRESSES.outer6,
          remotePort: 6667,
        },
      ]);
      expect(result.method).toBe(way === 'addon' ? 'ctnetlink' : 'procfs');
      expect(result.answers).toEqual([
        { innerAddress: ADDRESSES.inner4, innerPort: v4.innerPort },
        { innerAddress: ADDRESSES.inner6, innerPort: v6.innerPort },
      ]);
      expect(result.errors).toEqual([]);
    });
  }

  it('names the inner server of a port the router forwards inward', async () => {
    const { localPort, error } = await irc.ask<{ localPort: number; error?: string }>({
      op: 'connect',
      host: ADDRESSES.routerOut4,
      port: FORWARDED_PORT,
    });
    expect(error).toBeUndefined();
    const query = {
      localAddress: ADDRESSES.routerOut4,
      localPort: FORWARDED_PORT,
      remoteAddress: ADDRESSES.outer4,
      remotePort: localPort,
    };
    for (const way of ['addon', 'procfs'] as const) {
      const result = await natLookup(way, [query]);
      expect(result.answers).toEqual([{ innerAddress: ADDRESSES.inner4, innerPort: INNER_SERVER_PORT }]);
    }
  });

  it('finds nothing for a querier that is not the far end of the connection, nor for ports nobody uses', async () => {
    const v4 = await innerConnection(ADDRESSES.outer4);
    for (const way of ['addon', 'procfs'] as const) {
      const result = await natLookup(way, [
        {
          localAddress: ADDRESSES.routerOut4,
          localPort: v4.routerPort,
          remoteAddress: ADDRESSES.stranger4,
          remotePort: 6667,
        },
        {
          localAddress: ADDRESSES.routerOut4,
          localPort: v4.routerPort,
          remoteAddress: ADDRESSES.outer4,
          remotePort: 6668,
        },
      ]);
      expect(result.answers).toEqual([null, null]);
    }
  });
});

const CLI = join(COMPILED, 'gateway/cli/main.js');

/** `identgate serve` in a namespace; resolves once it says where it listens. */
async function identgate(ns: 'inner' | 'router', args: readonly string[]) {
  const service = rig.service(ns, process.execPath, [CLI, 'serve', '--log-level', 'warn', ...args]);
  const line = await service.firstLine;
  expect(line).toMatch(/^identgate listening on /);
  return service;
}

async function oidentd(ns: 'inner' | 'router', args: readonly string[], address: string) {
  const service = rig.service(ns, 'oidentd', ['-i', '-S', '-q', '-a', address, '-p', '113', ...args]);
  // oidentd says nothing when it is ready: ask it until it answers.
  for (let i = 0; i < 100; i++) {
    const probe = await rig.exec(ns, process.execPath, [
      '-e',
      `require('net').connect(113, ${JSON.stringify(address)}).on('connect', () => process.exit(0)).on('error', () => process.exit(1))`,
    ]);
    if (probe.code === 0) return service;
  }
  throw new Error(`oidentd in ${ns} did not listen: ${service.output()}`);
}

describe('queries forwarded by a NAT router', () => {
  it('an oidentd router (-m -f) in front of identgate inside gets the inner owner, and only when identgate accepts it', async () => {
    const router = await oidentd('router', ['-m', '-f'], ADDRESSES.routerOut4);
    const accepting = await identgate('inner', [
      '--listen',
      `${ADDRESSES.inner4}:113`,
      '--accept-forwarded-from',
      `${ADDRESSES.routerIn4}/32`,
    ]);
    const { routerPort } = await innerConnection(ADDRESSES.outer4);
    const ask = () =>
      irc.ask<{ reply?: string; error?: string }>({
        op: 'ident',
        host: ADDRESSES.routerOut4,
        port: 113,
        serverPort: routerPort,
        clientPort: 6667,
        timeoutMs: 8_000,
      });
    expect((await ask()).reply).toBe(`${routerPort},6667:USERID:UNIX:root`);
    await accepting.stop();

    // Without --accept-forwarded-from the same forwarded query finds no connection with the router.
    const plain = await identgate('inner', ['--listen', `${ADDRESSES.inner4}:113`]);
    const refused = await ask();
    // oidentd answers NO-USER when the forward yields no user id.
    expect(refused.reply).toBe(`${routerPort},6667:ERROR:NO-USER`);
    await plain.stop();
    await router.stop();
  });
});
