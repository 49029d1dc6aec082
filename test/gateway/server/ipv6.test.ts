import { describe, expect, it } from 'vitest';
import { connectRaw } from '../../helpers/raw-peer.js';
import { grimlock, startServer, TRANSPORTS } from '../../helpers/server.js';

describe.each(TRANSPORTS)('IdentServer over IPv6 (%s transport)', (transport) => {
  it('listens on ::1 and reports IPv6 endpoints to the handler', async () => {
    let remote = '';
    const { port } = await startServer(
      (tx) => {
        remote = tx.remoteAddress;
        grimlock(tx);
      },
      { transport, hostname: '::1' },
    );
    const peer = await connectRaw(port, '::1');
    peer.write('400, 500\r\n');
    expect(await peer.lines(1)).toEqual(['400, 500 : USERID : OTHER : grimlock']);
    expect(remote).toBe('::1');
  });

  it('serves IPv4 and IPv6 clients on a dual-stack [::] listener', async () => {
    const seen: string[] = [];
    const { port } = await startServer(
      (tx) => {
        seen.push(tx.remoteAddress);
        tx.replyWithError('NO-USER');
      },
      { transport, hostname: '::' },
    );
    const v4 = await connectRaw(port, '127.0.0.1');
    v4.write('1, 2\r\n');
    await v4.lines(1);
    const v6 = await connectRaw(port, '::1');
    v6.write('1, 2\r\n');
    await v6.lines(1);
    expect(seen).toEqual(['::ffff:127.0.0.1', '::1']);
  });

  it('listens on several addresses at once', async () => {
    const { server } = await startServer(grimlock, {
      transport,
      listen: [
        { hostname: '127.0.0.1', port: 0 },
        { hostname: '::1', port: 0 },
      ],
    });
    const [v4, v6] = server.addresses;
    const a = await connectRaw(v4!.port, '127.0.0.1');
    const b = await connectRaw(v6!.port, '::1');
    a.write('400, 500\r\n');
    b.write('400, 500\r\n');
    expect(await a.lines(1)).toEqual(await b.lines(1));
  });
});
