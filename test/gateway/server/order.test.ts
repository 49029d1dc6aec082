import { describe, expect, it } from 'vitest';
import { connectRaw } from '../../helpers/raw-peer.js';
import { grimlock, startServer, TRANSPORTS } from '../../helpers/server.js';

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(TRANSPORTS)('IdentServer pipelining and order (%s transport)', (transport) => {
  it('answers several queries sent in one packet, in order', async () => {
    const { port } = await startServer(grimlock, { transport });
    const peer = await connectRaw(port);
    peer.write('400, 500\r\n1, 2\n400,500\r\n');
    expect(await peer.lines(3)).toEqual([
      '400, 500 : USERID : OTHER : grimlock',
      '1, 2 : ERROR : NO-USER',
      '400, 500 : USERID : OTHER : grimlock',
    ]);
  });

  it('answers a query split across packets', async () => {
    const { port } = await startServer(grimlock, { transport });
    const peer = await connectRaw(port);
    for (const piece of ['4', '00', ', ', '50', '0\r']) {
      peer.write(piece);
      await delay(5);
    }
    expect(peer.text()).toBe('');
    peer.write('\n');
    expect(await peer.lines(1)).toEqual(['400, 500 : USERID : OTHER : grimlock']);
  });

  it('keeps request order when async handlers finish out of order', async () => {
    const { port } = await startServer(
      async (tx) => {
        await delay(tx.req.serverPort === 1 ? 120 : tx.req.serverPort === 2 ? 10 : 60);
        tx.replyWithUser(`user${tx.req.serverPort}`);
      },
      { transport },
    );
    const peer = await connectRaw(port);
    peer.write('1, 9\r\n2, 9\r\n3, 9\r\n');
    expect(await peer.lines(3)).toEqual([
      '1, 9 : USERID : OTHER : user1',
      '2, 9 : USERID : OTHER : user2',
      '3, 9 : USERID : OTHER : user3',
    ]);
  });

  it('lets a handler reply later, outside its own call', async () => {
    const pending: ((name: string) => void)[] = [];
    const { port } = await startServer(
      (tx) => {
        pending.push((name) => tx.replyWithUser(name));
      },
      { transport },
    );
    const peer = await connectRaw(port);
    peer.write('10, 20\r\n11, 21\r\n');
    await expect.poll(() => pending.length).toBe(2);
    pending[1]!('second');
    await delay(20);
    expect(peer.text()).toBe('');
    pending[0]!('first');
    expect(await peer.lines(2)).toEqual(['10, 20 : USERID : OTHER : first', '11, 21 : USERID : OTHER : second']);
  });

  it('answers thousands of queries in one burst, each exactly once and in order', async () => {
    const { port } = await startServer((tx) => tx.replyWithUser(`u${tx.req.serverPort}`), { transport });
    const peer = await connectRaw(port);
    const count = 900;
    let burst = '';
    for (let i = 1; i <= count; i++) burst += `${i}, 7\r\n`;
    peer.write(burst);
    const lines = await peer.lines(count, 10_000);
    expect(lines).toEqual(Array.from({ length: count }, (_, i) => `${i + 1}, 7 : USERID : OTHER : u${i + 1}`));
  });
});
