import net from 'node:net';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { startServer, TRANSPORTS } from '../../helpers/server.js';

/**
 * Nagle's algorithm holds a short segment while earlier data is unacknowledged,
 * and a client in request/response rhythm delays its ACKs (40 ms on Linux).
 * Two replies written a few ms apart on one connection must both go out at once.
 */
describe.each(TRANSPORTS)('IdentServer and Nagle (%s transport)', (transport) => {
  it('sends a reply finished 5 ms after the one before it without waiting for the client to acknowledge that one', async () => {
    const { port } = await startServer(
      (tx) => {
        if (tx.req.serverPort === 2) setTimeout(() => tx.replyWithUser('later'), 5);
        else tx.replyWithUser('now');
      },
      { transport },
    );
    const client = net.connect(port, '127.0.0.1');
    client.setNoDelay(true);
    await once(client, 'connect');
    let received = '';
    const arrivals: { line: string; at: number }[] = [];
    const waiting: (() => void)[] = [];
    client.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      let end: number;
      while ((end = received.indexOf('\r\n')) !== -1) {
        arrivals.push({ line: received.slice(0, end), at: performance.now() });
        received = received.slice(end + 2);
        waiting.shift()?.();
      }
    });
    const lines = (count: number) =>
      Promise.all(Array.from({ length: count }, () => new Promise<void>((resolve) => waiting.push(resolve))));
    try {
      // Request/response for a while: the client's kernel moves to delayed ACKs.
      for (let i = 0; i < 30; i++) {
        client.write('1, 1\r\n');
        await lines(1);
      }
      const before = arrivals.length;
      client.write('1, 1\r\n2, 2\r\n');
      await lines(2);
      const [first, second] = arrivals.slice(before);
      expect([first!.line, second!.line]).toEqual(['1, 1 : USERID : OTHER : now', '2, 2 : USERID : OTHER : later']);
      // 5 ms of handler time; a Nagle hold would add the client's delayed-ACK time (40 ms).
      expect(second!.at - first!.at).toBeLessThan(30);
    } finally {
      client.destroy();
    }
  });
});
