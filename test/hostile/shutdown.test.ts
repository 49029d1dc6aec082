/**
 * Graceful shutdown while clients misbehave: stop() with slow queries in flight
 * on many connections, idle and half-written connections, and a client that
 * never reads its replies; and `identgate serve` receiving SIGTERM in the same
 * situation. Everything received is answered, the rest is closed, and the
 * grace period bounds how long it takes.
 */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { connectRaw } from '../helpers/raw-peer.js';
import { startServer, TRANSPORTS } from '../helpers/server.js';
import {
  expectDocumentedCodes,
  guardEscapes,
  loopbackRange,
  PROBE_REPLY,
  replyLines,
  startCliServer,
} from './support.js';

guardEscapes();

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(TRANSPORTS)('IdentServer shutdown under load (%s transport)', (transport) => {
  it('answers 20 slow queries in flight, closes idle and half-written connections, and stops within the grace', async () => {
    let started = 0;
    const { server, port, errors } = await startServer(
      async (tx) => {
        started++;
        await delay(300);
        tx.replyWithUser('draining');
      },
      { transport },
    );
    const busy = await Promise.all(loopbackRange(2, 21).map((address) => connectRaw(port, '127.0.0.1', address)));
    busy.forEach((peer, i) => peer.write(`${i + 1}, 113\r\n`));
    const idle = await Promise.all(loopbackRange(2, 21).map((address) => connectRaw(port, '127.0.0.1', address)));
    const halfWritten = await Promise.all(
      loopbackRange(2, 11).map((address) => connectRaw(port, '127.0.0.1', address)),
    );
    for (const peer of halfWritten) peer.write('400, 5');
    await expect.poll(() => started).toBe(20);

    const stopping = performance.now();
    await server.stop({ graceMs: 2_000 });
    const took = performance.now() - stopping;
    // The slow handler needs about 300 ms; nothing had to wait for the grace to run out.
    expect(took).toBeLessThan(1_500);

    const answers = await Promise.all(busy.map((peer) => peer.closed(1_000)));
    answers.forEach((text, i) => expect(replyLines(text)).toEqual([`${i + 1}, 113 : USERID : OTHER : draining`]));
    for (const peer of [...idle, ...halfWritten]) expect(await peer.closed(1_000)).toBe('');
    expect(server.connectionCount).toBe(0);
    // New connections are refused once stopped.
    await expect(connectRaw(port)).rejects.toThrow();
    expectDocumentedCodes(errors);
  });

  it('drops a client that never reads its replies once the grace runs out, and still stops', async () => {
    const { server, port, errors } = await startServer((tx) => tx.replyWithUser('x'.repeat(400)), {
      transport,
      maxQueriesPerConnection: 1_000_000,
    });
    const hog = net.connect({ port, host: '127.0.0.1' });
    hog.on('error', () => {});
    await new Promise((resolve) => hog.once('connect', resolve));
    hog.pause();
    // Queries until the server stops reading: its replies are stuck in the socket buffers.
    const batch = Buffer.from('1, 2\r\n'.repeat(10_000));
    while (hog.write(batch)) await new Promise((resolve) => setImmediate(resolve));
    const closed = new Promise((resolve) => hog.once('close', resolve));

    const stopping = performance.now();
    await server.stop({ graceMs: 500 });
    const took = performance.now() - stopping;
    expect(took).toBeGreaterThanOrEqual(450);
    expect(took).toBeLessThan(2_000);
    const countAfterStop = server.connectionCount;
    hog.resume();
    await closed;
    await expect.poll(() => server.connectionCount).toBe(0);
    expect(countAfterStop).toBe(0);
    expectDocumentedCodes(errors);
  });

  it('identgate serve exits 0 within its grace on SIGTERM with idle, half-written and never-reading clients', async () => {
    const { serve, port } = await startCliServer([
      '--transport',
      transport,
      '--shutdown-grace',
      '1500',
      '--max-queries',
      '1000000',
    ]);
    const idle = await Promise.all(loopbackRange(2, 21).map((address) => connectRaw(port, '127.0.0.1', address)));
    const halfWritten = await Promise.all(
      loopbackRange(2, 11).map((address) => connectRaw(port, '127.0.0.1', address)),
    );
    for (const peer of halfWritten) peer.write('400, 5');
    const answered = await connectRaw(port, '127.0.0.1', '127.0.0.30');
    answered.write('400, 500\r\n');
    await answered.lines(1);
    const hog = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.31' });
    hog.on('error', () => {});
    await new Promise((resolve) => hog.once('connect', resolve));
    hog.pause();
    const batch = Buffer.from('1, 2\r\n'.repeat(10_000));
    while (hog.write(batch)) await new Promise((resolve) => setImmediate(resolve));

    const stopping = performance.now();
    serve.child.kill('SIGTERM');
    expect(await serve.exited).toBe(0);
    const took = performance.now() - stopping;
    // The grace runs out for the client that never reads; process exit adds a little on a busy machine.
    expect(took).toBeLessThan(1_500 + 2_000);
    expect(replyLines(await answered.closed(1_000))).toEqual([PROBE_REPLY]);
    for (const peer of [...idle, ...halfWritten]) expect(await peer.closed(1_000)).toBe('');
    hog.destroy();
  });
});
