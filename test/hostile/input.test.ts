/**
 * Hostile input far beyond the conformance vectors, against a live in-process
 * IdentServer: binary junk, lines at and past the cap, dribbled and bulk
 * input, odd line ends, resets and half-closes mid-line, over-long and
 * non-ASCII numbers. Each test ends with the suite's invariants (support.ts).
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { connectRaw } from '../helpers/raw-peer.js';
import { grimlock, startServer, TRANSPORTS } from '../helpers/server.js';
import {
  latencyBound,
  connectFrom,
  expectDocumentedCodes,
  expectNoEcho,
  expectServing,
  guardEscapes,
  loopbackRange,
  probe,
  PROBE_REPLY,
  replyLines,
} from './support.js';

guardEscapes();

const octets = (text: string) => Buffer.from(text, 'latin1');
const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Sends `lines` (each given without its end) as one write, CRLF-terminated, and checks each reply. */
async function sendLines(port: number, lines: Uint8Array[]): Promise<string[]> {
  const peer = await connectRaw(port);
  peer.write(Buffer.concat(lines.flatMap((line) => [line, octets('\r\n')])));
  const replies = await peer.lines(lines.length);
  replyLines(peer.text());
  lines.forEach((line, i) => expectNoEcho(line, replies[i]!));
  peer.socket.destroy();
  return replies;
}

describe.each(TRANSPORTS)('IdentServer under hostile input (%s transport)', (transport) => {
  it('answers lines of random binary junk (NUL, 0xff, UTF-16) with INVALID-PORT and never echoes them', async () => {
    const { port, errors } = await startServer(grimlock, { transport });
    const junk: Uint8Array[] = [];
    for (let i = 0; i < 300; i++) {
      const line = randomBytes(i % 200);
      // No LF inside a line, and a CR right before the LF would be the line end.
      for (let j = 0; j < line.length; j++) if (line[j] === 0x0a) line[j] = 0x00;
      if (line.length > 0 && line[line.length - 1] === 0x0d) line[line.length - 1] = 0xff;
      junk.push(line);
    }
    junk.push(
      octets('\x00\x00\x00\x00'),
      octets('\xff'.repeat(999)),
      Buffer.from('\ufeff400, 500', 'utf16le'),
      Buffer.from('400, 500', 'utf16le'),
      Buffer.from('400, 500\u2028', 'utf8'),
    );
    const replies = await sendLines(port, junk);
    expect(replies.slice(-5)).toEqual(Array(5).fill('0, 0 : ERROR : INVALID-PORT'));
    expect(replies.filter((reply) => !reply.endsWith('INVALID-PORT'))).toEqual([]);
    await expectServing(port);
    expectDocumentedCodes(errors);
  });

  it('answers a valid query padded to exactly 1000 octets', async () => {
    const { port, errors } = await startServer(grimlock, { transport });
    const line = `400, 500${' '.repeat(992)}`;
    expect(line).toHaveLength(1000);
    expect(await sendLines(port, [octets(line)])).toEqual([PROBE_REPLY]);
    await expectServing(port);
    expect(errors).toEqual([]);
  });

  it('closes without a reply on a 1001-octet line, but answers the queries before it', async () => {
    const { port, errors } = await startServer(grimlock, { transport });
    const peer = await connectRaw(port);
    peer.write(`400, 500\r\n1, 2\r\n400, 500${' '.repeat(993)}\r\n400, 500\r\n`);
    expect(replyLines(await peer.closed())).toEqual([PROBE_REPLY, '1, 2 : ERROR : NO-USER']);
    expect(errors.map((e) => e.code)).toEqual(['ERR_IDENT_LINE_TOO_LONG']);
    await expectServing(port);
  });

  it('closes a connection sending a 1 MB line and keeps serving', async () => {
    const { server, port, errors } = await startServer(grimlock, { transport });
    const peer = await connectRaw(port);
    peer.write('400, 500\r\n');
    peer.write(Buffer.alloc(1024 * 1024, 0x31));
    expect(replyLines(await peer.closed())).toEqual([PROBE_REPLY]);
    expect(errors.map((e) => e.code)).toContain('ERR_IDENT_LINE_TOO_LONG');
    await expectServing(port);
    await expect.poll(() => server.connectionCount).toBe(0);
    expectDocumentedCodes(errors);
  });

  it('answers a complete query dribbled one octet per write', async () => {
    const { port, errors } = await startServer(grimlock, { transport });
    const peer = await connectRaw(port);
    for (const octet of '400, 500\r\n1, 2\r\n') {
      peer.write(octet);
      await delay(3);
    }
    expect(await peer.lines(2)).toEqual([PROBE_REPLY, '1, 2 : ERROR : NO-USER']);
    replyLines(peer.text());
    await expectServing(port);
    expect(errors).toEqual([]);
  });

  it('answers 10,000 queries sent in one write, all of them and in order', async () => {
    const { port, errors } = await startServer(grimlock, { transport, maxQueriesPerConnection: 20_000 });
    const peer = await connectRaw(port);
    const count = 10_000;
    peer.write(Array.from({ length: count }, (_, i) => `${i + 1},2\r\n`).join(''));
    const replies = await peer.lines(count, 15_000);
    expect(replies.every((reply, i) => reply === `${i + 1}, 2 : ERROR : NO-USER`)).toBe(true);
    replyLines(peer.text());
    await expectServing(port);
    expect(errors).toEqual([]);
  });

  it('keeps answering other clients within a second while two connections pour in 64 KB of empty lines each', async () => {
    const { port, errors } = await startServer(grimlock, { transport });
    const flooders = await Promise.all([
      connectRaw(port, '127.0.0.1', '127.0.0.2'),
      connectRaw(port, '127.0.0.1', '127.0.0.3'),
    ]);
    for (const flooder of flooders) flooder.write(Buffer.alloc(65_536, 0x0a));
    // Probes every 50 ms while the floods are processed: each must be answered within a second.
    const latencies: number[] = [];
    for (let i = 0; i < 20; i++) {
      latencies.push((await probe(port, { localAddress: '127.0.0.250', timeoutMs: 10_000 })).ms);
      await delay(50);
    }
    for (const flooder of flooders) {
      // maxQueriesPerConnection (1000) empty lines are answered, then the connection closes.
      const replies = replyLines(await flooder.closed(10_000));
      expect(replies).toHaveLength(1000);
      expect(new Set(replies)).toEqual(new Set(['0, 0 : ERROR : INVALID-PORT']));
    }
    expect(Math.max(...latencies), `probe latencies ${latencies.map(Math.round).join(' ')} ms`).toBeLessThan(
      latencyBound(1_000),
    );
    expectDocumentedCodes(errors);
  });

  it('answers a flood of lone LFs with one INVALID-PORT each', async () => {
    const { port, errors } = await startServer(grimlock, { transport });
    const peer = await connectRaw(port);
    peer.write('\n'.repeat(500));
    expect(await peer.lines(500)).toEqual(Array(500).fill('0, 0 : ERROR : INVALID-PORT'));
    replyLines(peer.text());
    await expectServing(port);
    expect(errors).toEqual([]);
  });

  it('treats a bare CR as part of the line and CR CR LF as a line ending in CR', async () => {
    const { port, errors } = await startServer(grimlock, { transport });
    const peer = await connectRaw(port);
    peer.write('400, 500\r\r\n\r\r\r\r\n1,\r2\r\n400\r, 500\r\n\r400, 500\r\n400, 500\n');
    expect(await peer.lines(6)).toEqual([...Array(5).fill('0, 0 : ERROR : INVALID-PORT'), PROBE_REPLY]);
    replyLines(peer.text());
    await expectServing(port);
    expect(errors).toEqual([]);
  });

  it('answers what was complete when a client half-closes in the middle of a line, then closes', async () => {
    const { server, port, errors } = await startServer(grimlock, { transport });
    const peer = await connectRaw(port);
    peer.write('400, 500\r\n400, 5');
    peer.socket.end();
    expect(replyLines(await peer.closed())).toEqual([PROBE_REPLY]);
    await expect.poll(() => server.connectionCount).toBe(0);
    await expectServing(port);
    expect(errors).toEqual([]);
  });

  it('survives two hundred clients resetting mid-query and mid-line at once', async () => {
    let answered = 0;
    const { server, port, errors } = await startServer(
      async (tx) => {
        await delay(20);
        tx.replyWithUser('gone');
        answered++;
      },
      { transport },
    );
    const sockets = await Promise.all(loopbackRange(2, 201).map((address) => connectFrom(port, address)));
    sockets.forEach((socket, i) => socket.write(i % 2 ? '1, 2\r\n3, 4\r\n5, ' : '1, 2\r\n'));
    await delay(5);
    for (const socket of sockets) socket.resetAndDestroy();
    await expect.poll(() => server.connectionCount, { timeout: 5_000 }).toBe(0);
    await expect.poll(() => answered, { timeout: 5_000 }).toBeGreaterThan(0);
    const result = await probe(port);
    expect(result.line).toBe('400, 500 : USERID : OTHER : gone');
    expect(result.ms).toBeLessThan(latencyBound(1_000));
    expectDocumentedCodes(errors);
  });

  it('answers long zero-padded numbers by value, never by their text', async () => {
    const { port, errors } = await startServer(grimlock, { transport });
    const lines = [
      '0000000000001, 2',
      '00400, 00500',
      '000400, 500',
      '400, 0000000000000000000000500',
      '99999999999, 1',
      '65536, 1',
      '0, 1',
      '-1, 2',
      '+1, 2',
      '1e3, 2',
      '0x10, 2',
      '1.0, 2',
    ];
    expect(await sendLines(port, lines.map(octets))).toEqual([
      '0, 0 : ERROR : INVALID-PORT',
      PROBE_REPLY,
      '400, 500 : ERROR : INVALID-PORT',
      '0, 0 : ERROR : INVALID-PORT',
      '0, 0 : ERROR : INVALID-PORT',
      '65536, 1 : ERROR : INVALID-PORT',
      '0, 1 : ERROR : INVALID-PORT',
      '0, 0 : ERROR : INVALID-PORT',
      '0, 0 : ERROR : INVALID-PORT',
      '0, 0 : ERROR : INVALID-PORT',
      '0, 0 : ERROR : INVALID-PORT',
      '0, 0 : ERROR : INVALID-PORT',
    ]);
    await expectServing(port);
    expect(errors).toEqual([]);
  });

  it('does not take Unicode digits or full-width commas for ports', async () => {
    const { port, errors } = await startServer(grimlock, { transport });
    const lines = [
      '４００, ５００',
      '٤٠٠, ٥٠٠',
      '४००, ५००',
      '400， 500',
      '⁴⁰⁰, ⁵⁰⁰',
      '400,\u00a0500',
      '\u2007400, 500',
      '400\u200b, 500',
    ].map((line) => Buffer.from(line, 'utf8'));
    expect(await sendLines(port, lines)).toEqual(Array(lines.length).fill('0, 0 : ERROR : INVALID-PORT'));
    await expectServing(port);
    expect(errors).toEqual([]);
  });

  it('answers "1,2" inside spaces and tabs up to the line cap, and closes beyond it', async () => {
    const { port, errors } = await startServer(grimlock, { transport });
    const padded = `${' '.repeat(498)}1,2${'\t'.repeat(499)}`;
    expect(padded).toHaveLength(1000);
    expect(
      await sendLines(port, [octets(padded), octets(`${' '.repeat(200)}400 ,${' '.repeat(200)}500${' '.repeat(200)}`)]),
    ).toEqual(['1, 2 : ERROR : NO-USER', PROBE_REPLY]);
    const peer = await connectRaw(port);
    peer.write(`${' '.repeat(500)}1,2${' '.repeat(500)}\r\n`);
    expect(await peer.closed()).toBe('');
    expect(errors.map((e) => e.code)).toEqual(['ERR_IDENT_LINE_TOO_LONG']);
    await expectServing(port);
  });
});
