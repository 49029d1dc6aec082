/**
 * IdentServer.bind(): the listeners are bound but nothing is read until
 * start(), so a gateway started as root can drop privileges in between and
 * never handle a querier's byte as root (docs/operations.md, --run-as).
 */
import { describe, expect, it } from 'vitest';
import { IdentServer } from '../../../gateway/server/server.js';
import { connectRaw } from '../../helpers/raw-peer.js';
import { TRANSPORTS } from '../../helpers/server.js';

describe.each(TRANSPORTS)('IdentServer.bind (%s transport)', (transport) => {
  it('binds without answering, then answers what waited once started', async () => {
    const server = new IdentServer({ hostname: '127.0.0.1', port: 0, transport });
    await server.bind();
    try {
      expect(server.port).toBeGreaterThan(0);
      expect(server.listening).toBe(false);
      let handled = 0;
      const peer = await connectRaw(server.port);
      peer.write('1, 2\r\n');
      const other = await connectRaw(server.port);
      other.write('3, 4\r\n');
      // No event says that nothing was read: give the event loop 50 ms in which to do it wrongly.
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(handled).toBe(0);
      expect(peer.text()).toBe('');
      await server.start((tx) => {
        handled += 1;
        tx.replyWithUser('alice');
      });
      expect(await peer.lines(1)).toEqual(['1, 2 : USERID : OTHER : alice']);
      expect(await other.lines(1)).toEqual(['3, 4 : USERID : OTHER : alice']);
      expect(handled).toBe(2);
    } finally {
      await server.stop({ graceMs: 0 });
    }
  });

  it('frees the port when stopped before it started', async () => {
    const server = new IdentServer({ hostname: '127.0.0.1', port: 0, transport });
    await server.bind();
    const port = server.port;
    await server.stop({ graceMs: 0 });
    const again = new IdentServer({ hostname: '127.0.0.1', port, transport });
    await again.start((tx) => tx.replyWithError('NO-USER'));
    const peer = await connectRaw(port);
    peer.write('1, 2\r\n');
    expect(await peer.lines(1)).toEqual(['1, 2 : ERROR : NO-USER']);
    await again.stop({ graceMs: 0 });
  });
});
