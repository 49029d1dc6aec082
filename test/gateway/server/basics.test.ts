import net from 'node:net';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { IdentServer } from '../../../gateway/server/server.js';
import { connectRaw } from '../../helpers/raw-peer.js';
import { grimlock, startServer, TRANSPORTS } from '../../helpers/server.js';

describe.each(TRANSPORTS)('IdentServer basics (%s transport)', (transport) => {
  it('answers the seed example: 400, 500 is grimlock with opsys OTHER', async () => {
    const { port } = await startServer(grimlock, { transport });
    const peer = await connectRaw(port);
    peer.write('400, 500\r\n');
    expect(await peer.lines(1)).toEqual(['400, 500 : USERID : OTHER : grimlock']);
  });

  it('answers other ports with the handler error', async () => {
    const { port } = await startServer(grimlock, { transport });
    const peer = await connectRaw(port);
    peer.write('401,500\n');
    expect(await peer.lines(1)).toEqual(['401, 500 : ERROR : NO-USER']);
  });

  it('gives the handler both ports and both ends of the ident connection', async () => {
    let seen: Record<string, unknown> = {};
    const { port } = await startServer(
      (tx) => {
        seen = {
          ...tx.req,
          remoteAddress: tx.remoteAddress,
          remotePort: tx.remotePort,
          localAddress: tx.localAddress,
          localPort: tx.localPort,
        };
        tx.replyWithUser('UNIX', 'bob', 'US-ASCII');
      },
      { transport },
    );
    const peer = await connectRaw(port);
    peer.write('6193, 23\r\n');
    expect(await peer.lines(1)).toEqual(['6193, 23 : USERID : UNIX , US-ASCII : bob']);
    expect(seen).toEqual({
      serverPort: 6193,
      clientPort: 23,
      remoteAddress: '127.0.0.1',
      remotePort: peer.socket.localPort,
      localAddress: '127.0.0.1',
      localPort: port,
    });
  });

  it('binds an ephemeral port with port 0 and reports it through onBind', async () => {
    const bound: unknown[] = [];
    const { port } = await startServer(grimlock, { transport, onBind: (address) => bound.push(address) });
    expect(port).toBeGreaterThan(0);
    expect(bound).toEqual([expect.objectContaining({ port, address: '127.0.0.1' })]);
  });

  it('reports the transport in use while started, and none once stopped', async () => {
    const { server } = await startServer(grimlock, { transport });
    expect(server.transport).toBe(transport);
    await server.stop();
    expect(server.transport).toBeUndefined();
  });

  it('refuses to start twice', async () => {
    const { server } = await startServer(grimlock, { transport });
    await expect(server.start(grimlock)).rejects.toMatchObject({ code: 'ERR_IDENT_SERVER_RUNNING' });
  });

  it('unbinds on stop and can start again', async () => {
    const { server, port } = await startServer(grimlock, { transport });
    await server.stop();
    await expect(connectRaw(port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await server.start(grimlock);
    const peer = await connectRaw(server.port);
    peer.write('400, 500\r\n');
    expect(await peer.lines(1)).toEqual(['400, 500 : USERID : OTHER : grimlock']);
  });

  it('rejects with a clear message when the port is in use', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    const server = new IdentServer({ hostname: '127.0.0.1', port, transport });
    await expect(server.start(grimlock)).rejects.toMatchObject({
      code: 'ERR_IDENT_BIND',
      message: expect.stringContaining('already in use'),
    });
    expect(server.listening).toBe(false);
    blocker.close();
  });

  it('explains what to do when port 113 needs privileges', () => {
    // Run as an unprivileged user in a fresh network namespace so nothing else holds 113.
    // It keeps only the right to read files, since the checkout may sit under a private /root.
    const script = `import('${new URL('../../../gateway/server/server.ts', import.meta.url).pathname.replace(/\.ts$/, '.js').replace('/gateway/', '/dist/gateway/')}')
      .then(({ IdentServer }) => new IdentServer({ hostname: '127.0.0.1', port: 113, transport: '${transport}' }).start(() => {}))
      .then(() => { console.log('BOUND'); process.exit(0); }, (e) => { console.log(e.code + ' ' + e.message); process.exit(0); });`;
    const output = execFileSync(
      'unshare',
      [
        '-n',
        'sh',
        '-c',
        `ip link set lo up && exec setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all,+dac_read_search --ambient-caps=+dac_read_search node -e "$0"`,
        script,
      ],
      {
        encoding: 'utf8',
        timeout: 15_000,
      },
    );
    expect(output).toMatch(
      /^ERR_IDENT_BIND cannot listen on 127\.0\.0\.1:113: ports below 1024 need privileges .*CAP_NET_BIND_SERVICE/,
    );
  });
});
