/**
 * Hostile input against the real `identgate serve` process: binary junk, a
 * 1 MB line, dribbled queries and empty-line floods, and clients that never
 * read their replies, whose cost is measured as the server process's resident
 * memory (VmRSS from /proc) before and after. The server must stay up, answer
 * a fresh legitimate query within a second and keep its memory bounded.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { connectRaw } from '../helpers/raw-peer.js';
import {
  latencyBound,
  expectServing,
  guardEscapes,
  loopbackRange,
  probe,
  PROBE_REPLY,
  replyLines,
  startAttack,
  startCliServer,
  vmRssKiB,
} from './support.js';

guardEscapes();

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Opens `count` connections that write `packet` until the server stops
 * reading, `forMs` passes or `maxOctets` are sent, and never read a reply. Resolves with the sockets
 * and the octets they got written.
 */
async function neverReaders(
  port: number,
  count: number,
  addresses: string[],
  packet: Buffer,
  forMs: number,
  maxOctets: number,
): Promise<{ sockets: net.Socket[]; octets: number }> {
  const sockets: net.Socket[] = [];
  let octets = 0;
  const until = Date.now() + forMs;
  await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const socket = net.connect({ port, host: '127.0.0.1', localAddress: addresses[i % addresses.length]! });
      socket.on('error', () => {});
      sockets.push(socket);
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.pause();
      // The kernel's loopback buffers alone take tens of MB per connection (tcp_rmem), so each client stops at maxOctets.
      for (let sent = 0; Date.now() < until && sent < maxOctets; sent += packet.length) {
        octets += packet.length;
        if (!socket.write(packet)) {
          // The server (and the kernel buffers between us) stopped taking more.
          const drained = await Promise.race([
            new Promise((resolve) => socket.once('drain', () => resolve(true))),
            delay(300).then(() => false),
          ]);
          if (!drained) break;
        }
      }
    }),
  );
  return { sockets, octets };
}

describe('identgate serve under hostile input', () => {
  it('answers binary junk, survives a 1 MB line and answers a dribbled query', async () => {
    const { port } = await startCliServer();
    const junk = randomBytes(64 * 1024);
    for (let i = 0; i < junk.length; i++) if (junk[i] === 0x0a && i % 97 !== 0) junk[i] = 0;
    const junkPeer = await connectRaw(port, '127.0.0.1', '127.0.0.2');
    junkPeer.write(junk);
    junkPeer.write('\r\n400, 500\r\n');
    const expected = junk.filter((octet) => octet === 0x0a).length + 2;
    const text = await junkPeer.lines(expected, 5_000).then(
      () => junkPeer.text(),
      () => junkPeer.closed(5_000),
    );
    const replies = replyLines(text);
    // Either every line was answered (the last one 400, 500), or a junk line ran past the cap and the connection closed.
    if (replies.length === expected) expect(replies.at(-1)).toBe(PROBE_REPLY);
    expect(replies.slice(0, -1).every((reply) => reply.endsWith(': ERROR : INVALID-PORT'))).toBe(true);

    const big = await connectRaw(port, '127.0.0.1', '127.0.0.3');
    big.write(Buffer.alloc(1024 * 1024, 0x20));
    expect(await big.closed()).toBe('');

    const dribble = await connectRaw(port, '127.0.0.1', '127.0.0.4');
    for (const octet of '400, 500\r\n') {
      dribble.write(octet);
      await delay(5);
    }
    expect(await dribble.lines(1)).toEqual([PROBE_REPLY]);
    await expectServing(port);
  });

  it(
    'keeps its memory bounded and answers others within a second after 100 clients send bursts of queries and never read the replies',
    { timeout: 30_000 },
    async () => {
      // Long replies (about 330 octets per 6-octet query) make answering cost far more than asking.
      const { port, pid } = await startCliServer(['--max-per-address', '40'], 'x'.repeat(300));
      await expectServing(port, '127.0.0.250', 'x'.repeat(300));
      const before = vmRssKiB(pid);
      const { sockets, octets } = await neverReaders(
        port,
        100,
        loopbackRange(2, 6),
        Buffer.from('1, 2\r\n'.repeat(10_000)),
        3_000,
        2 * 1024 * 1024,
      );
      const after = vmRssKiB(pid);
      expect(octets).toBeGreaterThan(10 * 1024 * 1024);
      expect(after - before, `VmRSS ${before} -> ${after} KiB after ${octets} octets of queries`).toBeLessThan(
        150 * 1024,
      );
      await expectServing(port, '127.0.0.250', 'x'.repeat(300));
      for (const socket of sockets) socket.destroy();
      await expectServing(port, '127.0.0.250', 'x'.repeat(300));
    },
  );

  it(
    'is never starved by 10 connections re-sending 64 KB of empty lines, and answers at once when they stop',
    { timeout: 60_000 },
    async () => {
      const { port, pid } = await startCliServer();
      const before = vmRssKiB(pid);
      // Each attacker connection sends 64 KB of LFs, gets 1000 INVALID-PORTs (maxQueriesPerConnection), is closed, reconnects.
      const attack = await startAttack(port, [
        '--mode',
        'lf',
        '--from',
        '127.0.0.2',
        '--addresses',
        '1',
        '--connections',
        '10',
      ]);
      const latencies: number[] = [];
      for (let i = 0; i < 10; i++) {
        latencies.push((await probe(port, { localAddress: '127.0.0.100', timeoutMs: 5_000 })).ms);
        await delay(50);
      }
      const stats = await attack.stop();
      expect(stats.repliesReceived).toBeGreaterThan(0);
      expect(vmRssKiB(pid) - before).toBeLessThan(150 * 1024);
      // Degraded is acceptable under a sustained attack; starved is not.
      expect(Math.max(...latencies), `probe latencies (ms): ${latencies.map(Math.round).join(' ')}`).toBeLessThan(
        latencyBound(5_000),
      );
      await expectServing(port);
    },
  );
});
