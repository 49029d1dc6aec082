/**
 * systemd socket activation, for real: `identgate serve` with no --listen takes
 * the sockets named by LISTEN_FDS/LISTEN_PID, as deploy/identgate.socket hands
 * them over. Once with Debian's systemd-socket-activate on [::]:113 inside a
 * network namespace (dual-stack, the port the unit uses), and once with a
 * holder that keeps the socket open across a restart, as systemd does, to show
 * that a query sent while no identgate runs waits and is answered.
 */
import { createServer, type Server } from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { connectRaw } from '../../helpers/raw-peer.js';
import { CLI, READY, inFreshNetns, queryInNetns, startDaemon } from './process.js';

const servers: Server[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.close();
});

/** A listening socket on 127.0.0.1 and its file descriptor, to pass on as systemd would. */
async function listeningSocket(): Promise<{ server: Server; fd: number; port: number }> {
  const server = createServer();
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  // A listening net.Server keeps its descriptor in its handle (Unix only); there is no public accessor.
  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
  expect(fd).toBeGreaterThan(2);
  return { server, fd, port: (server.address() as { port: number }).port };
}

describe('socket activation', () => {
  it('answers on the dual-stack port 113 that systemd-socket-activate passes, without --listen', async () => {
    expect(process.getuid?.(), 'unshare -n needs root (CI runs as root)').toBe(0);
    const [command, args] = inFreshNetns([
      'systemd-socket-activate',
      '--listen',
      '113',
      process.execPath,
      CLI,
      'serve',
      '--reply',
      'activated',
    ]);
    // systemd-socket-activate binds, then starts identgate at the first connection.
    const launcher = await startDaemon(command, args, /Listening on \[::\]:113 as 3/, { readyOn: 'stderr' });
    const v6 = await queryInNetns(launcher.pid, '::1', 113, '6193,23');
    expect(v6.stdout).toBe('6193, 23 : USERID : OTHER : activated\n');
    const v4 = await queryInNetns(launcher.pid, '127.0.0.1', 113, '6194,24');
    expect(v4.stdout).toBe('6194, 24 : USERID : OTHER : activated\n');
    expect(launcher.stdout()).toContain('identgate listening on [::]:113 (answers: fixed;');
  });

  it('uses the descriptor named by LISTEN_FDS when LISTEN_PID is its own pid', async () => {
    const { server, fd, port } = await listeningSocket();
    // `exec` keeps the shell's pid, so $$ is identgate's pid, as systemd sets it.
    const serve = await startDaemon(
      'sh',
      ['-c', 'export LISTEN_PID=$$ LISTEN_FDS=1; exec "$@"', 'sh', process.execPath, CLI, 'serve', '--reply', 'passed'],
      READY,
      { extraFds: [fd] },
    );
    server.close(); // identgate has its own copy; this process must not accept on it
    expect(serve.stdout()).toContain(`identgate listening on 127.0.0.1:${port} (answers: fixed;`);
    const peer = await connectRaw(port);
    peer.write('1, 2\r\n');
    expect(await peer.lines(1)).toEqual(['1, 2 : USERID : OTHER : passed']);
  });

  it('answers a query sent while the service restarts, because the socket stays open', async () => {
    const { server, fd, port } = await listeningSocket();
    // The holder plays systemd: it keeps the socket (fd 3), never accepts, and
    // starts identgate again one second after it exits (RestartSec=1s).
    const holder = `n=0; while :; do n=$((n+1)); sh -c 'export LISTEN_PID=$$ LISTEN_FDS=1; exec "$@"' sh "$@" --reply "run$n"; echo "identgate exited $?"; sleep 1; done`;
    const serve = await startDaemon('sh', ['-c', holder, 'sh', process.execPath, CLI, 'serve'], READY, {
      extraFds: [fd],
    });
    server.close();
    const first = await connectRaw(port);
    first.write('1, 2\r\n');
    expect(await first.lines(1)).toEqual(['1, 2 : USERID : OTHER : run1']);
    const serving = await serve.logLine((line) => line.msg === 'identgate serving');
    process.kill(serving.pid as number, 'SIGTERM');
    await serve.stdoutMatching(/identgate exited 0\n/);
    // Nothing runs now: the kernel queues this connection on the held socket.
    const during = await connectRaw(port);
    during.write('3, 4\r\n');
    expect(await during.lines(1, 10_000)).toEqual(['3, 4 : USERID : OTHER : run2']);
  });
});
