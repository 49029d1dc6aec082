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
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
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
async function innerConnection(
  server: string,
  from: { localAddress?: string; localPort?: number } = {},
): Promise<{ innerPort: number; routerPort: number }> {
  const before = (await irc.ask<{ peers: Peer[] }>({ op: 'peers' })).peers.length;
  const { localPort, error } = await inner.ask<{ localPort: number; error?: string }>({
    op: 'connect',
    host: server,
    port: 6667,
    ...from,
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
  // oidentd says nothing when it is ready. Watch for its listener with ss rather than by connecting:
  // right after answering one connection, it leaves the next unanswered for a while.
  for (let i = 0; i < 100; i++) {
    const listening = await rig.exec(ns, 'ss', ['-ltnH', 'sport = :113']);
    if (listening.stdout.includes(`${address}:113`)) return service;
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
        localAddress: ADDRESSES.outer4,
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

const KEY = 'nat-interop-key-0123456789';
const DEADLINE_MS = 1_500;
const ROUTER_POLICY = {
  version: 1,
  key: KEY,
  rules: [
    { name: 'container', match: { containerName: 'irc-*' }, action: { label: 'identgate.ident' } },
    {
      name: 'ghost',
      match: { innerAddress: '10.77.0.99' },
      action: { forward: { host: 'inner', port: 113 }, fallback: { userId: 'ghost-fallback' } },
    },
    {
      name: 'to-oidentd',
      match: { innerAddress: ADDRESSES.inner4, innerPort: '20000-20999' },
      action: { forward: { host: 'inner', port: 113 }, accept: { localNames: true }, fallback: { error: 'X-FAILED' } },
    },
    {
      name: 'to-identgate',
      match: { innerAddress: ADDRESSES.inner4, innerPort: '21000-21999' },
      action: { forward: { host: 'inner', port: 1113 }, accept: { localNames: true }, fallback: { error: 'X-FAILED' } },
    },
    {
      name: 'to-silent',
      match: { innerAddress: ADDRESSES.inner4, innerPort: '22000-22999' },
      action: { forward: { host: 'inner', port: 2113 }, fallback: { userId: 'timed-out' } },
    },
    {
      name: 'desk',
      match: { innerAddress: [ADDRESSES.inner4, ADDRESSES.inner6] },
      action: { userId: 'desk-user' },
      opsys: 'UNIX',
    },
  ],
  default: { action: { reveal: 'name' } },
};

/** A fake Docker Engine API: the container at 10.77.0.3 is irc-bouncer, labelled identgate.ident=znc (literal JSON). */
const CONTAINERS = `[{"Id":"8dfafdbc3a40","Names":["/irc-bouncer"],"Labels":{"identgate.ident":"znc"},"NetworkSettings":{"Networks":{"bridge":{"IPAddress":"${ADDRESSES.container4}"}}}}]`;

describe('identgate serve in the router, answered by its policy', () => {
  let dir = '';
  let engine: Server;
  let router: Agent;
  let stranger: Agent;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'identgate-nat-'));
    await writeFile(join(dir, 'policy.json'), JSON.stringify(ROUTER_POLICY));
    engine = createServer((req, res) => {
      if (req.url?.startsWith('/events')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.flushHeaders();
        return;
      }
      res.writeHead(req.url === '/containers/json' ? 200 : 404, { 'content-type': 'application/json' });
      res.end(req.url === '/containers/json' ? CONTAINERS : '{"message":"No such container"}');
    });
    await new Promise<void>((resolve) => engine.listen(join(dir, 'docker.sock'), resolve));
    await identgate('router', [
      '--listen',
      '[::]:113',
      '--policy',
      join(dir, 'policy.json'),
      '--deadline',
      String(DEADLINE_MS),
      '--docker-socket',
      join(dir, 'docker.sock'),
    ]);
    router = await rig.agent('router');
    stranger = await rig.agent('outer');
  });

  afterAll(async () => {
    engine?.closeAllConnections();
    await new Promise<void>((resolve) => (engine ? engine.close(() => resolve()) : resolve()));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  // The outer namespace has two addresses per family: the querier's own is always named.
  const ask = (agent: Agent, host: string, serverPort: number, localAddress?: string) =>
    agent.ask<{ reply?: string; error?: string; ms: number }>({
      op: 'ident',
      host,
      port: 113,
      serverPort,
      clientPort: 6667,
      timeoutMs: 8_000,
      localAddress: localAddress ?? (host.includes(':') ? ADDRESSES.outer6 : ADDRESSES.outer4),
    });

  it('answers per inner host, over IPv4 and IPv6 (masq.conf: a fixed id with its opsys)', async () => {
    const v4 = await innerConnection(ADDRESSES.outer4);
    expect((await ask(irc, ADDRESSES.routerOut4, v4.routerPort)).reply).toBe(
      `${v4.routerPort}, 6667 : USERID : UNIX : desk-user`,
    );
    const v6 = await innerConnection(ADDRESSES.outer6);
    expect((await ask(irc, ADDRESSES.routerOut6, v6.routerPort)).reply).toBe(
      `${v6.routerPort}, 6667 : USERID : UNIX : desk-user`,
    );
  });

  it('refuses a querier that is not the far end of the connection exactly as for a local connection', async () => {
    const nat = await innerConnection(ADDRESSES.outer4);
    const local = await router.ask<{ localPort: number }>({ op: 'connect', host: ADDRESSES.outer4, port: 6667 });
    const natReply = await ask(stranger, ADDRESSES.routerOut4, nat.routerPort, ADDRESSES.stranger4);
    const localReply = await ask(stranger, ADDRESSES.routerOut4, local.localPort, ADDRESSES.stranger4);
    expect(natReply.reply).toBe(`${nat.routerPort}, 6667 : ERROR : NO-USER`);
    expect(localReply.reply).toBe(`${local.localPort}, 6667 : ERROR : NO-USER`);
    // The far end itself is told who: the local connection is root's.
    expect((await ask(irc, ADDRESSES.routerOut4, local.localPort)).reply).toBe(
      `${local.localPort}, 6667 : USERID : UNIX : root`,
    );
  });

  it('forwards to oidentd -P on the inner host and answers its user', async () => {
    const oidentdInner = await oidentd('inner', ['-P', ADDRESSES.routerIn4], ADDRESSES.inner4);
    const conn = await innerConnection(ADDRESSES.outer4, { localPort: 20000 + (process.pid % 1000) });
    expect((await ask(irc, ADDRESSES.routerOut4, conn.routerPort)).reply).toBe(
      `${conn.routerPort}, 6667 : USERID : OTHER : root`,
    );
    await oidentdInner.stop();
  });

  it('forwards to identgate --accept-forwarded-from on the inner host and answers its user', async () => {
    const identgateInner = await identgate('inner', [
      '--listen',
      `${ADDRESSES.inner4}:1113`,
      '--accept-forwarded-from',
      ADDRESSES.routerIn4,
    ]);
    const conn = await innerConnection(ADDRESSES.outer4, { localPort: 21000 + (process.pid % 1000) });
    expect((await ask(irc, ADDRESSES.routerOut4, conn.routerPort)).reply).toBe(
      `${conn.routerPort}, 6667 : USERID : OTHER : root`,
    );
    await identgateInner.stop();
  });

  it('answers the fallback within the deadline when the inner identd never answers', async () => {
    expect(await inner.ask({ op: 'silent', host: ADDRESSES.inner4, port: 2113 })).toEqual({ port: 2113 });
    const conn = await innerConnection(ADDRESSES.outer4, { localPort: 22000 + (process.pid % 1000) });
    const answer = await ask(irc, ADDRESSES.routerOut4, conn.routerPort);
    expect(answer.reply).toBe(`${conn.routerPort}, 6667 : USERID : OTHER : timed-out`);
    expect(answer.ms).toBeLessThan(DEADLINE_MS + 500);
  });

  it('answers the fallback within the deadline for an inner host that does not exist', async () => {
    // A conntrack entry for 10.77.0.99, which nobody has: the forward gets no answer (no ARP reply).
    await rig.must('router', 'conntrack', [
      '-I',
      '-p',
      'tcp',
      '-s',
      '10.77.0.99',
      '-d',
      ADDRESSES.outer4,
      '--sport',
      '40500',
      '--dport',
      '6667',
      '-r',
      ADDRESSES.outer4,
      '-q',
      ADDRESSES.routerOut4,
      '--reply-port-src',
      '6667',
      '--reply-port-dst',
      '40500',
      '--state',
      'ESTABLISHED',
      '-t',
      '120',
      '-u',
      'SEEN_REPLY,ASSURED',
    ]);
    const answer = await ask(irc, ADDRESSES.routerOut4, 40500);
    expect(answer.reply).toBe('40500, 6667 : USERID : OTHER : ghost-fallback');
    expect(answer.ms).toBeLessThan(DEADLINE_MS + 500);
  });

  it("answers a container's label, found through the Docker Engine API", async () => {
    const conn = await innerConnection(ADDRESSES.outer4, { localAddress: ADDRESSES.container4 });
    expect((await ask(irc, ADDRESSES.routerOut4, conn.routerPort)).reply).toBe(
      `${conn.routerPort}, 6667 : USERID : OTHER : znc`,
    );
  });
});
