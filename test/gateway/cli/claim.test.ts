/**
 * `identgate serve --claims-socket` and `identgate claim` as users meet them: the socket created by root with its
 * mode before `--run-as` drops privileges, served after; claims made, listed and released through the CLI; and
 * the one-line refusals of configurations that cannot work.
 */
import { once } from 'node:events';
import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseServeArgs } from '../../../gateway/cli/config.js';
import { runCli } from '../../helpers/cli.js';
import { onCleanup, startServe } from '../../e2e/harness.js';

let dir: string | undefined;
afterEach(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

function socketDir(): string {
  dir = mkdtempSync(join(tmpdir(), 'identgate-claim-cli-'));
  chmodSync(dir, 0o755);
  return dir;
}

/** A TCP connection held by this process (root) on 127.0.0.1: its local port and the listener's. */
async function holdConnection(): Promise<{ localPort: number; remotePort: number }> {
  const accepted: net.Socket[] = [];
  const server = net.createServer((socket) => accepted.push(socket)).listen(0, '127.0.0.1');
  await once(server, 'listening');
  const remotePort = (server.address() as net.AddressInfo).port;
  const client = net.connect({ host: '127.0.0.1', port: remotePort });
  await once(client, 'connect');
  onCleanup(() => {
    client.destroy();
    for (const socket of accepted) socket.destroy();
    server.close();
  });
  return { localPort: client.localPort!, remotePort };
}

describe('identgate serve --claims-socket with identgate claim', () => {
  it('creates the socket as root with its mode before --run-as, then serves claims as the dropped user', async () => {
    const socket = join(socketDir(), 'claims.sock');
    await startServe(['--claims-socket', socket, '--run-as', 'nobody', '--claims-socket-mode', '0660']);
    const stat = statSync(socket);
    expect(stat.isSocket()).toBe(true);
    expect(stat.uid).toBe(0);
    expect(stat.mode & 0o777).toBe(0o660);

    const { localPort, remotePort } = await holdConnection();
    const added = await runCli([
      'claim',
      'add',
      `127.0.0.1:${localPort}`,
      `127.0.0.1:${remotePort}`,
      'alice',
      '--ident',
      'alice',
      '--socket',
      socket,
    ]);
    expect(added.stderr).toBe('');
    expect(added.code).toBe(0);
    const id = added.stdout.trim();
    expect(id).toMatch(/^c_/);
    const listed = await runCli(['claim', 'list', '--socket', socket]);
    expect(listed.stdout).toBe(`${id}  127.0.0.1:${localPort} -> 127.0.0.1:${remotePort}  alice  ident alice\n`);
    const released = await runCli(['claim', 'release', '--all', '--socket', socket, '--json']);
    expect(JSON.parse(released.stdout)).toEqual({ released: 1 });
  });

  it('exits 1 with the reason when the gateway refuses a claim', async () => {
    const socket = join(socketDir(), 'claims.sock');
    await startServe(['--claims-socket', socket]);
    const refused = await runCli(['claim', 'add', '127.0.0.1:1', '127.0.0.1:2', 'alice', '--socket', socket]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      /^identgate: no open TCP connection 127\.0\.0\.1:1 -> 127\.0\.0\.1:2 .*\(403 no_connection\)\n$/,
    );
  });

  it('exits 2 with one line when no gateway serves the socket', async () => {
    const result = await runCli(['claim', 'list', '--socket', join(socketDir(), 'none.sock')]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^identgate: cannot reach the claims API at .*none\.sock \(ENOENT\)\n$/);
  });

  it.each([
    [['--claims-socket', 'claims.sock'], '--claims-socket "claims.sock": expected an absolute path (or off)'],
    [
      ['--claims-socket', '/tmp/x.sock', '--reply', 'x'],
      '--claims-socket: it needs a policy (not --reply or --reply-error)',
    ],
    [['--claims-socket', '/tmp/x.sock', '--owner-lookup', 'off'], '--claims-socket: it needs owner lookup'],
    [
      ['--claims-socket', '/tmp/x.sock', '--claim-wait', '1000'],
      '--claim-wait 1000: must be below --deadline (1000 ms)',
    ],
    [
      ['--claims-socket', '/tmp/x.sock', '--claims-socket-mode', 'rw'],
      '--claims-socket-mode "rw": expected an octal mode',
    ],
    [['--claim-wait', '100'], '--claim-wait goes with --claims-socket PATH'],
  ])('serve %j exits 2 with one line', async (args, message) => {
    const result = await runCli(['serve', '--listen', '127.0.0.1:0', ...args]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(message);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  });

  it.each([
    [['add', '127.0.0.1', '127.0.0.1:2', 'alice'], 'LOCAL "127.0.0.1": expected IP-ADDRESS:PORT'],
    [['add', '127.0.0.1:1', 'irc.example:6667', 'alice'], 'REMOTE "irc.example:6667": expected IP-ADDRESS:PORT'],
    [['release'], 'usage: identgate claim release'],
    [['pending', '127.0.0.1:6667'], 'usage: identgate claim pending'],
    [['frob'], 'unknown claim command "frob"'],
  ])('claim %j exits 2 with one line', async (args, message) => {
    const result = await runCli(['claim', ...args]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(message);
  });
});

describe('the claims API configuration', () => {
  it('is on by default under systemd’s RUNTIME_DIRECTORY, and off without it or with --claims-socket off', () => {
    expect(parseServeArgs([], { RUNTIME_DIRECTORY: '/run/identgate' }).claims).toEqual({
      socket: { path: '/run/identgate/claims.sock', mode: 0o666, group: undefined },
      waitMs: 500,
      claimsPerUid: 1024,
    });
    expect(parseServeArgs([], {}).claims).toBeUndefined();
    expect(parseServeArgs(['--claims-socket', 'off'], { RUNTIME_DIRECTORY: '/run/identgate' }).claims).toBeUndefined();
  });

  it('stays off by default where it cannot work (a fixed reply, several workers)', () => {
    const env = { RUNTIME_DIRECTORY: '/run/identgate' };
    expect(parseServeArgs(['--reply', 'x'], env).claims).toBeUndefined();
    expect(parseServeArgs(['--workers', '2'], env).claims).toBeUndefined();
  });

  it('waits at most half a short deadline by default', () => {
    const config = parseServeArgs(['--claims-socket', '/run/x.sock', '--deadline', '300'], {});
    expect(config.claims?.waitMs).toBe(150);
  });
});
