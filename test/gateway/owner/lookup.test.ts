/**
 * Owner lookup against real loopback TCP connections, all three ways
 * (sock_diag in-process through the freshly built addon, sock_diag through
 * the freshly built helper process, and /proc/net/tcp). As root the
 * "another user" case runs a client as the system user identgate-test
 * (created here when missing); as anyone else it runs a client process as the
 * current user. Also: coalesced procfs scans, helper restart, the addon's
 * name cache, fallback from an addon that does not load and from a helper
 * that cannot start, timeouts, and the three modes.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connectionEnds,
  createOwnerLookup,
  type OwnerLookup,
  type OwnerLookupError,
  type OwnerLookupOptions,
  ProcfsOwnerLookup,
  SockDiagAddonLookup,
  SockDiagOwnerLookup,
} from '../../../gateway/owner/index.js';

const BUILD_SCRIPT = fileURLToPath(new URL('../../../gateway/owner/build-helper.mjs', import.meta.url));
const TEST_USER = 'identgate-test';
const isRoot = process.getuid?.() === 0;
const me = { uid: process.getuid?.() ?? -1, userName: userInfo().username };

let workDir = '';
let helperPath = '';
let addonPath = '';

type Way = 'addon' | 'helper' | 'procfs';

/** createOwnerLookup options that force one way. */
/**
 * These tests check what a lookup finds, not how fast: a scan of a busy /proc/net/tcp on a loaded
 * CI machine (or under the sanitizers) can pass the 500 ms default, so the bound here is generous.
 */
const CORRECTNESS_TIMEOUT_MS = 10_000;

function optionsFor(way: Way): OwnerLookupOptions {
  const timeoutMs = CORRECTNESS_TIMEOUT_MS;
  if (way === 'addon') return { method: 'sock_diag', addonPath, helperPath: join(workDir, 'missing'), timeoutMs };
  if (way === 'helper') return { method: 'sock_diag', addonPath: null, helperPath, timeoutMs };
  return { method: 'procfs', timeoutMs };
}

/** A listening server that keeps every accepted socket until closed. */
async function listen(
  host: string,
): Promise<{ server: net.Server; port: number; accepted: Promise<net.Socket>[]; close: () => Promise<void> }> {
  const sockets: net.Socket[] = [];
  const waiters: ((s: net.Socket) => void)[] = [];
  const accepted: Promise<net.Socket>[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
    waiters.shift()?.(socket);
  });
  for (let i = 0; i < 8; i++) accepted.push(new Promise((resolve) => waiters.push(resolve)));
  server.listen(0, host);
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  return {
    server,
    port,
    accepted,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function connect(port: number, host: string): Promise<net.Socket> {
  const socket = net.connect(port, host);
  await once(socket, 'connect');
  return socket;
}

/** Runs a client in another process (as `user`, when given) and resolves once it has connected. */
async function foreignClient(
  port: number,
  host: string,
  user?: { uid: number; gid: number },
): Promise<{ child: ChildProcess; localPort: number }> {
  const script = `const s=require('net').connect(${port},${JSON.stringify(host)},()=>process.stdout.write(s.localPort+'\\n'));process.stdin.on('end',()=>s.destroy());process.stdin.resume();`;
  const command = user
    ? ([
        'setpriv',
        [
          '--reuid',
          String(user.uid),
          '--regid',
          String(user.gid),
          '--clear-groups',
          '--',
          process.execPath,
          '-e',
          script,
        ],
      ] as const)
    : ([process.execPath, ['-e', script]] as const);
  const child = spawn(command[0], [...command[1]], { stdio: ['pipe', 'pipe', 'inherit'], cwd: '/' });
  const [chunk] = (await once(child.stdout!, 'data')) as [Buffer];
  return { child, localPort: Number(chunk.toString().trim()) };
}

async function stopClient(child: ChildProcess): Promise<void> {
  child.stdin?.end();
  if (child.exitCode === null) await once(child, 'exit');
}

function ensureTestUser(): { uid: number; gid: number } {
  try {
    execFileSync('id', ['-u', TEST_USER], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', TEST_USER], {
      stdio: 'ignore',
    });
  }
  const uid = Number(execFileSync('id', ['-u', TEST_USER]).toString().trim());
  const gid = Number(execFileSync('id', ['-g', TEST_USER]).toString().trim());
  return { uid, gid };
}

beforeAll(() => {
  workDir = mkdtempSync(join(tmpdir(), 'identgate-owner-'));
  helperPath = join(workDir, 'identgate-sockdiag');
  addonPath = `${helperPath}.node`;
  execFileSync(process.execPath, [BUILD_SCRIPT, '--out', helperPath], { stdio: 'ignore' });
});

afterAll(() => {
  rmSync(workDir, { recursive: true, force: true });
});

describe.each(['addon', 'helper', 'procfs'] as const)('owner lookup by the %s', (way) => {
  const method = way === 'procfs' ? 'procfs' : 'sock_diag';
  let owners: OwnerLookup;
  let v4: Awaited<ReturnType<typeof listen>>;
  const errors: OwnerLookupError[] = [];

  beforeAll(async () => {
    owners = createOwnerLookup('on', { ...optionsFor(way), onError: (e) => errors.push(e) });
    v4 = await listen('127.0.0.1');
  });

  afterAll(async () => {
    await owners.close();
    await v4.close();
    expect(errors).toEqual([]);
  });

  it('uses the method it was asked for', () => {
    expect(owners.method).toBe(method);
  });

  it('finds the uid and name of a connection owned by this process', async () => {
    const client = await connect(v4.port, '127.0.0.1');
    try {
      const owner = await owners.lookup({
        localAddress: '127.0.0.1',
        localPort: client.localPort!,
        remoteAddress: '127.0.0.1',
        remotePort: v4.port,
      });
      expect(owner).toEqual(me);
    } finally {
      client.destroy();
    }
  });

  it(
    isRoot
      ? 'finds the uid and name of a connection owned by another user'
      : 'finds the owner of a connection held by another process',
    async () => {
      const user = isRoot ? ensureTestUser() : undefined;
      const { child, localPort } = await foreignClient(v4.port, '127.0.0.1', user);
      try {
        const owner = await owners.lookup({
          localAddress: '127.0.0.1',
          localPort,
          remoteAddress: '127.0.0.1',
          remotePort: v4.port,
        });
        expect(owner).toEqual(user ? { uid: user.uid, userName: TEST_USER } : me);
      } finally {
        await stopClient(child);
      }
    },
  );

  it('answers null when the remote address is not the querier of the connection', async () => {
    const client = await connect(v4.port, '127.0.0.1');
    try {
      // Our end of the accepted connection is 127.0.0.1:v4.port; a query from 127.0.0.2 must not see it (nor the listener).
      const wrongRemote = await owners.lookup({
        localAddress: '127.0.0.1',
        localPort: v4.port,
        remoteAddress: '127.0.0.2',
        remotePort: client.localPort!,
      });
      const rightRemote = await owners.lookup({
        localAddress: '127.0.0.1',
        localPort: v4.port,
        remoteAddress: '127.0.0.1',
        remotePort: client.localPort!,
      });
      expect(wrongRemote).toBeNull();
      expect(rightRemote).toEqual(me);
    } finally {
      client.destroy();
    }
  });

  it('answers null for a port pair no connection uses', async () => {
    const client = await connect(v4.port, '127.0.0.1');
    try {
      const owner = await owners.lookup({
        localAddress: '127.0.0.1',
        localPort: client.localPort!,
        remoteAddress: '127.0.0.1',
        remotePort: v4.port === 1 ? 2 : 1,
      });
      expect(owner).toBeNull();
    } finally {
      client.destroy();
    }
  });

  it('answers null for a listening socket', async () => {
    const owner = await owners.lookup({
      localAddress: '127.0.0.1',
      localPort: v4.port,
      remoteAddress: '127.0.0.1',
      remotePort: 40_000,
    });
    expect(owner).toBeNull();
  });

  it('answers null for a connection in TIME_WAIT', async () => {
    const client = await connect(v4.port, '127.0.0.1');
    const localPort = client.localPort!;
    const server = await v4.accepted[0]!;
    server.on('end', () => server.end());
    client.end(); // we close first, so our end goes to TIME_WAIT
    client.resume();
    await once(client, 'close');
    const owner = await owners.lookup({
      localAddress: '127.0.0.1',
      localPort,
      remoteAddress: '127.0.0.1',
      remotePort: v4.port,
    });
    expect(owner).toBeNull();
  });

  it('finds a connection over IPv6 loopback', async () => {
    const v6 = await listen('::1');
    const client = await connect(v6.port, '::1');
    try {
      const owner = await owners.lookup({
        localAddress: '::1',
        localPort: client.localPort!,
        remoteAddress: '::1',
        remotePort: v6.port,
      });
      const otherRemote = await owners.lookup({
        localAddress: '::1',
        localPort: client.localPort!,
        remoteAddress: '::2',
        remotePort: v6.port,
      });
      expect(owner).toEqual(me);
      expect(otherRemote).toBeNull();
    } finally {
      client.destroy();
      await v6.close();
    }
  });

  it('finds an IPv4 socket from IPv4-mapped addresses and a dual-stack socket from IPv4 addresses', async () => {
    const dual = await listen('::');
    const client = await connect(dual.port, '127.0.0.1');
    try {
      const server = await dual.accepted[0]!;
      expect(server.localAddress).toBe('::ffff:127.0.0.1');
      const plainByMapped = await owners.lookup({
        localAddress: '::ffff:127.0.0.1',
        localPort: client.localPort!,
        remoteAddress: '::ffff:127.0.0.1',
        remotePort: dual.port,
      });
      const dualByMapped = await owners.lookup({
        localAddress: server.localAddress!,
        localPort: dual.port,
        remoteAddress: server.remoteAddress!,
        remotePort: server.remotePort!,
      });
      const dualByPlain = await owners.lookup({
        localAddress: '127.0.0.1',
        localPort: dual.port,
        remoteAddress: '127.0.0.1',
        remotePort: client.localPort!,
      });
      const mixed = await owners.lookup({
        localAddress: '127.0.0.1',
        localPort: dual.port,
        remoteAddress: '::ffff:127.0.0.1',
        remotePort: client.localPort!,
      });
      expect([plainByMapped, dualByMapped, dualByPlain, mixed]).toEqual([me, me, me, me]);
    } finally {
      client.destroy();
      await dual.close();
    }
  });

  it('answers null for addresses no TCP connection can have', async () => {
    const queries = [
      { localAddress: 'localhost', localPort: 1, remoteAddress: '127.0.0.1', remotePort: 1 },
      { localAddress: '127.0.0.1', localPort: 1, remoteAddress: '::1', remotePort: 1 },
      { localAddress: '127.0.0.1', localPort: 70_000, remoteAddress: '127.0.0.1', remotePort: 1 },
    ];
    const owners_ = await Promise.all(queries.map((q) => owners.lookup(q)));
    expect(owners_).toEqual([null, null, null]);
  });

  it('answers many concurrent lookups each with its own connection', async () => {
    const clients = await Promise.all(Array.from({ length: 20 }, () => connect(v4.port, '127.0.0.1')));
    try {
      const found = await Promise.all(
        clients.map((c) =>
          owners.lookup({
            localAddress: '127.0.0.1',
            localPort: c.localPort!,
            remoteAddress: '127.0.0.1',
            remotePort: v4.port,
          }),
        ),
      );
      const missing = await Promise.all(
        clients.map((c) =>
          owners.lookup({
            localAddress: '127.0.0.1',
            localPort: c.localPort!,
            remoteAddress: '127.0.0.3',
            remotePort: v4.port,
          }),
        ),
      );
      expect(found).toEqual(clients.map(() => me));
      expect(missing).toEqual(clients.map(() => null));
    } finally {
      for (const c of clients) c.destroy();
    }
  });
});

describe('procfs owner lookup', () => {
  it('serves concurrent lookups with shared scans', async () => {
    const v4 = await listen('127.0.0.1');
    const clients = await Promise.all(Array.from({ length: 10 }, () => connect(v4.port, '127.0.0.1')));
    const procfs = new ProcfsOwnerLookup();
    try {
      const lookups = Array.from({ length: 50 }, (_, i) => {
        const client = clients[i % clients.length]!;
        return procfs.find(
          connectionEnds({
            localAddress: '127.0.0.1',
            localPort: client.localPort!,
            remoteAddress: '127.0.0.1',
            remotePort: v4.port,
          })!,
        );
      });
      const owners = await Promise.all(lookups);
      expect(owners).toEqual(lookups.map(() => me));
      // The first lookup starts a scan; the other 49 arrive while it runs and share the next one.
      expect(procfs.scans).toBe(2);
    } finally {
      for (const c of clients) c.destroy();
      await v4.close();
    }
  });

  it('reports unreadable tables and answers null', async () => {
    const errors: OwnerLookupError[] = [];
    const dir = mkdtempSync(join(workDir, 'proc-'));
    writeFileSync(join(dir, 'tcp'), '');
    const owners = createOwnerLookup('on', { method: 'procfs', procNetDir: dir, onError: (e) => errors.push(e) });
    rmSync(join(dir, 'tcp'));
    const owner = await owners.lookup({
      localAddress: '127.0.0.1',
      localPort: 1,
      remoteAddress: '127.0.0.1',
      remotePort: 2,
    });
    expect(owner).toBeNull();
    expect(errors.map((e) => e.code)).toEqual(['ERR_OWNER_LOOKUP_KERNEL']);
  });
});

describe('sock_diag owner lookup', () => {
  it('starts its helper on start(), before any lookup, and the first lookup reuses it', async () => {
    const v4 = await listen('127.0.0.1');
    const client = await connect(v4.port, '127.0.0.1');
    const diag = new SockDiagOwnerLookup({ helperPath });
    try {
      expect(diag.helperPid).toBeUndefined();
      await diag.start();
      const pid = diag.helperPid;
      expect(pid).toBeGreaterThan(0);
      const ends = connectionEnds({
        localAddress: '127.0.0.1',
        localPort: client.localPort!,
        remoteAddress: '127.0.0.1',
        remotePort: v4.port,
      })!;
      expect(await diag.find(ends)).toEqual(me);
      expect(diag.helperPid).toBe(pid);
      expect(diag.starts).toBe(1);
    } finally {
      await diag.close();
      client.destroy();
      await v4.close();
    }
  });

  it('starts a new helper when the old one died', async () => {
    const v4 = await listen('127.0.0.1');
    const client = await connect(v4.port, '127.0.0.1');
    const diag = new SockDiagOwnerLookup({ helperPath });
    const ends = connectionEnds({
      localAddress: '127.0.0.1',
      localPort: client.localPort!,
      remoteAddress: '127.0.0.1',
      remotePort: v4.port,
    })!;
    try {
      expect(await diag.find(ends)).toEqual(me);
      const pid = diag.helperPid!;
      process.kill(pid, 'SIGKILL');
      await new Promise<void>((resolve) => {
        const poll = setInterval(() => {
          if (diag.helperPid === undefined) resolve(clearInterval(poll));
        }, 5);
      });
      expect(await diag.find(ends)).toEqual(me);
      expect(diag.starts).toBe(2);
      expect(diag.helperPid).not.toBe(pid);
    } finally {
      await diag.close();
      client.destroy();
      await v4.close();
    }
  });

  it('falls back to procfs when the helper reports sock_diag unavailable', async () => {
    const broken = join(workDir, 'no-netlink');
    writeFileSync(
      broken,
      '#!/bin/sh\necho "fatal E93 NETLINK_SOCK_DIAG unavailable: Protocol not supported"\nexit 1\n',
    );
    chmodSync(broken, 0o755);
    const errors: OwnerLookupError[] = [];
    const owners = createOwnerLookup('auto', { addonPath: null, helperPath: broken, onError: (e) => errors.push(e) });
    const v4 = await listen('127.0.0.1');
    const client = await connect(v4.port, '127.0.0.1');
    try {
      expect(owners.method).toBe('sock_diag');
      const owner = await owners.lookup({
        localAddress: '127.0.0.1',
        localPort: client.localPort!,
        remoteAddress: '127.0.0.1',
        remotePort: v4.port,
      });
      expect(owner).toEqual(me);
      expect(owners.method).toBe('procfs');
      expect(errors.map((e) => e.code)).toEqual(['ERR_OWNER_LOOKUP_UNSUPPORTED']);
    } finally {
      await owners.close();
      client.destroy();
      await v4.close();
    }
  });

  it('answers null within the time bound when the helper stops answering', async () => {
    const silent = join(workDir, 'silent');
    writeFileSync(silent, '#!/bin/sh\necho "ready 1"\nexec sleep 30\n');
    chmodSync(silent, 0o755);
    const errors: OwnerLookupError[] = [];
    const owners = createOwnerLookup('on', {
      method: 'sock_diag',
      addonPath: null,
      helperPath: silent,
      timeoutMs: 100,
      onError: (e) => errors.push(e),
    });
    const started = performance.now();
    const owner = await owners.lookup({
      localAddress: '127.0.0.1',
      localPort: 1,
      remoteAddress: '127.0.0.1',
      remotePort: 2,
    });
    expect(owner).toBeNull();
    expect(performance.now() - started).toBeLessThan(1000);
    expect(errors.map((e) => e.code)).toEqual(['ERR_OWNER_LOOKUP_TIMEOUT']);
    await owners.close();
  });
});

describe('sock_diag addon', () => {
  it('falls back to the helper when the addon does not load, and says so once', async () => {
    const bogus = join(workDir, 'bogus.node');
    writeFileSync(bogus, 'not a shared object');
    const errors: OwnerLookupError[] = [];
    const owners = createOwnerLookup('on', {
      method: 'sock_diag',
      addonPath: bogus,
      helperPath,
      onError: (e) => errors.push(e),
    });
    const v4 = await listen('127.0.0.1');
    const client = await connect(v4.port, '127.0.0.1');
    try {
      const ask = () =>
        owners.lookup({
          localAddress: '127.0.0.1',
          localPort: client.localPort!,
          remoteAddress: '127.0.0.1',
          remotePort: v4.port,
        });
      expect(await ask()).toEqual(me);
      expect(await ask()).toEqual(me);
      expect(errors.map((e) => e.code)).toEqual(['ERR_OWNER_LOOKUP_UNSUPPORTED']);
      expect(errors[0]!.message).toContain('falling back to the sock_diag helper');
    } finally {
      await owners.close();
      client.destroy();
      await v4.close();
    }
  });

  it('asks NSS for a user name once per uid within the name time-to-live, and again after it', async () => {
    const diag = new SockDiagAddonLookup({ addonPath, nameTtlMs: 200 });
    const v4 = await listen('127.0.0.1');
    const client = await connect(v4.port, '127.0.0.1');
    try {
      const ends = connectionEnds({
        localAddress: '127.0.0.1',
        localPort: client.localPort!,
        remoteAddress: '127.0.0.1',
        remotePort: v4.port,
      })!;
      const first = await Promise.all([diag.find(ends), diag.find(ends), diag.find(ends)]);
      expect(first).toEqual([me, me, me]);
      // Remembered: answered at once, without a promise.
      expect(diag.find(ends)).toEqual(me);
      expect([diag.lookups, diag.nameLookups]).toEqual([4, 1]);
      await new Promise((resolve) => setTimeout(resolve, 250));
      expect(await diag.find(ends)).toEqual(me);
      expect(diag.nameLookups).toBe(2);
    } finally {
      await diag.close();
      client.destroy();
      await v4.close();
    }
  });

  it('answers lookupNow at once through the addon once the name is remembered, and never through the helper', async () => {
    const byAddon = createOwnerLookup('on', { method: 'sock_diag', addonPath, helperPath: join(workDir, 'missing') });
    const byHelper = createOwnerLookup('on', { method: 'sock_diag', addonPath: null, helperPath });
    const v4 = await listen('127.0.0.1');
    const client = await connect(v4.port, '127.0.0.1');
    try {
      const query = {
        localAddress: '127.0.0.1',
        localPort: client.localPort!,
        remoteAddress: '127.0.0.1',
        remotePort: v4.port,
      };
      const missing = { ...query, remotePort: 1 };
      expect(byAddon.lookupNow(missing)).toBeNull();
      expect(await byAddon.lookup(query)).toEqual(me); // asks NSS for the name
      expect(byAddon.lookupNow(query)).toEqual(me);
      expect(byHelper.lookupNow(query)).toBeUndefined();
      expect(await byHelper.lookup(query)).toEqual(me);
    } finally {
      await Promise.all([byAddon.close(), byHelper.close()]);
      client.destroy();
      await v4.close();
    }
  });

  it('answers null at once for a listening socket and for no socket at all', async () => {
    const diag = new SockDiagAddonLookup({ addonPath });
    const v4 = await listen('127.0.0.1');
    try {
      expect(
        diag.find(
          connectionEnds({ localAddress: '127.0.0.1', localPort: v4.port, remoteAddress: '0.0.0.0', remotePort: 0 })!,
        ),
      ).toBeNull();
      expect(
        diag.find(
          connectionEnds({ localAddress: '127.0.0.1', localPort: 1, remoteAddress: '127.0.0.1', remotePort: 2 })!,
        ),
      ).toBeNull();
      expect(diag.nameLookups).toBe(0);
    } finally {
      await diag.close();
      await v4.close();
    }
  });
});

describe('createOwnerLookup modes', () => {
  it('answers null for everything when off', async () => {
    const owners = createOwnerLookup('off');
    expect(owners.method).toBe('off');
    expect(
      await owners.lookup({ localAddress: '127.0.0.1', localPort: 1, remoteAddress: '127.0.0.1', remotePort: 2 }),
    ).toBeNull();
  });

  it('throws ERR_OWNER_LOOKUP_UNSUPPORTED when on and the platform cannot look owners up', () => {
    expect(() => createOwnerLookup('on', { platform: 'darwin' })).toThrow(
      expect.objectContaining({ code: 'ERR_OWNER_LOOKUP_UNSUPPORTED' }),
    );
  });

  it('throws ERR_OWNER_LOOKUP_UNSUPPORTED when sock_diag is required and neither its addon nor its helper is built', () => {
    expect(() =>
      createOwnerLookup('on', {
        method: 'sock_diag',
        addonPath: join(workDir, 'missing.node'),
        helperPath: join(workDir, 'missing'),
      }),
    ).toThrow(expect.objectContaining({ code: 'ERR_OWNER_LOOKUP_UNSUPPORTED' }));
  });

  it('turns itself off in auto mode when the platform cannot look owners up', () => {
    expect(createOwnerLookup('auto', { platform: 'win32' }).method).toBe('off');
  });

  it('prefers sock_diag in auto mode and uses procfs when neither addon nor helper is built', async () => {
    const best = createOwnerLookup('auto', { addonPath, helperPath });
    const fallback = createOwnerLookup('auto', {
      addonPath: join(workDir, 'missing.node'),
      helperPath: join(workDir, 'missing'),
    });
    expect([best.method, fallback.method]).toEqual(['sock_diag', 'procfs']);
    await Promise.all([best.close(), fallback.close()]);
  });
});
