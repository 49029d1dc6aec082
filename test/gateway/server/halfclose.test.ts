import { describe, expect, it } from 'vitest';
import { connectRaw } from '../../helpers/raw-peer.js';
import { grimlock, startServer, TRANSPORTS } from '../../helpers/server.js';

describe.each(TRANSPORTS)('IdentServer half-close and shutdown (%s transport)', (transport) => {
  it('answers queries received before the client half-closes, then closes', async () => {
    const { port } = await startServer(
      async (tx) => {
        await new Promise((resolve) => setTimeout(resolve, 50));
        tx.replyWithUser('late');
      },
      { transport },
    );
    const peer = await connectRaw(port);
    peer.socket.end('1, 2\r\n3, 4\r\n');
    expect(await peer.closed()).toBe('1, 2 : USERID : OTHER : late\r\n3, 4 : USERID : OTHER : late\r\n');
  });

  it('ignores an unterminated last line at half-close', async () => {
    const { port } = await startServer(grimlock, { transport });
    const peer = await connectRaw(port);
    peer.socket.end('400, 500\r\n1, 2');
    expect(await peer.closed()).toBe('400, 500 : USERID : OTHER : grimlock\r\n');
  });

  it('answers queries in flight when stopped, then closes', async () => {
    const { server, port } = await startServer(
      async (tx) => {
        await new Promise((resolve) => setTimeout(resolve, 100));
        tx.replyWithUser('drained');
      },
      { transport },
    );
    const peer = await connectRaw(port);
    const idle = await connectRaw(port);
    peer.write('1, 2\r\n');
    await expect.poll(() => server.connectionCount).toBe(2);
    await new Promise((resolve) => setTimeout(resolve, 20));
    await server.stop({ graceMs: 2_000 });
    expect(await peer.closed()).toBe('1, 2 : USERID : OTHER : drained\r\n');
    expect(await idle.closed()).toBe('');
  });

  it('survives a client that resets mid-query', async () => {
    const { port } = await startServer(
      async (tx) => {
        await new Promise((resolve) => setTimeout(resolve, 30));
        tx.replyWithUser('nobody-listening');
      },
      { transport },
    );
    const peer = await connectRaw(port);
    peer.write('1, 2\r\n');
    peer.socket.resetAndDestroy();
    await new Promise((resolve) => setTimeout(resolve, 60));
    const next = await connectRaw(port);
    next.write('5, 6\r\n');
    expect(await next.lines(1)).toEqual(['5, 6 : USERID : OTHER : nobody-listening']);
  });
});
