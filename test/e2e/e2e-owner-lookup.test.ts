/**
 * End to end, owner lookup across users: a child process running as the
 * dedicated system user `identgate-e2e` (created if missing; the suite runs as
 * root) holds a TCP connection to a listener of this test, and the embedded
 * gateway names that user to a querier on 127.0.0.1 — the querier's own
 * connection. The same question asked from 127.0.0.2 is about a connection that
 * does not involve the querier, so the owner is not found (RFC 1413: a querier
 * only learns about its own connections) and the policy's owner-unknown rule
 * answers.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import { IdentClient } from '../../gateway/client/client.js';
import { onCleanup, startServe, tempFiles } from './harness.js';

const TEST_USER = 'identgate-e2e';

const POLICY = {
  version: 1,
  rules: [
    { name: 'owner-unknown', match: { ownerKnown: false }, action: { error: 'NO-USER' } },
    { name: 'everyone', action: { reveal: 'name', ifNoName: 'uid' } },
  ],
  default: { action: { error: 'HIDDEN-USER' } },
};

/** The test user's numeric ids, creating the user if it does not exist yet. */
function ensureTestUser(): { uid: number; gid: number } {
  const lookup = () => {
    try {
      const [, , uid, gid] = execFileSync('getent', ['passwd', TEST_USER], { encoding: 'utf8' }).trim().split(':');
      return { uid: Number(uid), gid: Number(gid) };
    } catch {
      return undefined;
    }
  };
  const existing = lookup();
  if (existing) return existing;
  try {
    execFileSync(
      'useradd',
      ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', '--user-group', TEST_USER],
      { stdio: 'pipe' },
    );
  } catch (error) {
    // Another run may have created it meanwhile; only a still-missing user is an error.
    if (!lookup()) throw error;
  }
  const created = lookup();
  if (!created) throw new Error(`useradd did not create ${TEST_USER}`);
  return created;
}

/** The test's own listener on 127.0.0.1, closed after the test. */
async function listen(): Promise<net.Server> {
  const server = net.createServer();
  const accepted: net.Socket[] = [];
  server.on('connection', (socket) => accepted.push(socket));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onCleanup(() => {
    for (const socket of accepted) socket.destroy();
    server.close();
  });
  return server;
}

/**
 * Runs node as the test user, connected to `listenerPort` and staying connected;
 * resolves with its local port and uid once the listener accepted it.
 */
async function connectAsTestUser(
  user: { uid: number; gid: number },
  listener: net.Server,
): Promise<{ child: ChildProcess; clientPort: number; uid: number }> {
  const listenerPort = (listener.address() as net.AddressInfo).port;
  const script = `
    const socket = require('node:net').connect({ host: '127.0.0.1', port: Number(process.argv[1]) }, () => {
      process.stdout.write(JSON.stringify({ clientPort: socket.localPort, uid: process.getuid() }) + '\\n');
    });
    socket.on('error', (error) => { console.error(error.message); process.exit(1); });`;
  const accepted = once(listener, 'connection');
  const child = spawn(
    'setpriv',
    [
      '--reuid',
      String(user.uid),
      '--regid',
      String(user.gid),
      '--clear-groups',
      process.execPath,
      '-e',
      script,
      String(listenerPort),
    ],
    {
      cwd: '/',
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  onCleanup(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'close');
    }
  });
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const line = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (chunk) => {
      stdout += chunk;
      const end = stdout.indexOf('\n');
      if (end >= 0) resolve(stdout.slice(0, end));
    });
    // After the line arrived this rejection is ignored (the promise is settled).
    child.once('close', (code) =>
      reject(new Error(`the child running as ${TEST_USER} exited with ${code}: ${stderr}`)),
    );
  });
  await accepted;
  const { clientPort, uid } = JSON.parse(line) as { clientPort: number; uid: number };
  return { child, clientPort, uid };
}

describe('owner lookup of a connection held by another user', () => {
  let user: { uid: number; gid: number };
  beforeAll(() => {
    user = ensureTestUser();
  });

  async function setUp() {
    const files = tempFiles();
    const gateway = await startServe(['--policy', files.policy(POLICY), '--owner-lookup', 'on', '--deadline', '10000']);
    const listener = await listen();
    const held = await connectAsTestUser(user, listener);
    expect(held.uid).toBe(user.uid);
    const listenerPort = (listener.address() as net.AddressInfo).port;
    const ask = async (localAddress: string, serverPort = held.clientPort, clientPort = listenerPort) => {
      const client = new IdentClient({ hostname: '127.0.0.1', port: gateway.port, localAddress, timeout: 15_000 });
      try {
        return await client.ident(serverPort, clientPort);
      } finally {
        await client.close();
      }
    };
    // The gateway starts its sock_diag helper on the first lookup, and on a busy
    // machine that first lookup can overrun its 500 ms budget (answered as owner
    // unknown). Warm it up with a question about no connection.
    await ask('127.0.0.1', 1, 1);
    return { ask, held, listenerPort, gatewayLog: () => gateway.cli.stderr() };
  }

  // RFC 1413 order: the port on the gateway's host (the child's end) first, then the querier's (the listener's).
  it(`names ${TEST_USER} to the querier at the other end of its connection (127.0.0.1)`, async () => {
    const { ask, held, listenerPort, gatewayLog } = await setUp();
    const response = await ask('127.0.0.1');
    expect(response.raw, gatewayLog()).toBe(`${held.clientPort}, ${listenerPort} : USERID : UNIX : ${TEST_USER}`);
  });

  it('finds no owner when the same ports are asked about from another address (127.0.0.2)', async () => {
    const { ask, held, listenerPort, gatewayLog } = await setUp();
    // Control: the connection exists and is found for its own peer.
    expect((await ask('127.0.0.1')).raw, gatewayLog()).toBe(
      `${held.clientPort}, ${listenerPort} : USERID : UNIX : ${TEST_USER}`,
    );
    const response = await ask('127.0.0.2');
    expect(response.raw, gatewayLog()).toBe(`${held.clientPort}, ${listenerPort} : ERROR : NO-USER`);
  });
});
