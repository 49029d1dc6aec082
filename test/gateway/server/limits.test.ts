import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { connectRaw } from '../../helpers/raw-peer.js';
import { BEYOND_CAP_FIRST_QUERY_MS, PER_ADDRESS_BURST_FACTOR } from '../../../gateway/server/server.js';
import { grimlock, startServer, TRANSPORTS } from '../../helpers/server.js';

describe.each(TRANSPORTS)('IdentServer limits (%s transport)', (transport) => {
  it('closes a connection that sends more than 1000 octets without a line end, and keeps serving others', async () => {
    const { port, errors } = await startServer(grimlock, { transport });
    const attacker = await connectRaw(port);
    attacker.write('1'.repeat(1001));
    await attacker.closed();
    expect(errors.map((e) => e.code)).toContain('ERR_IDENT_LINE_TOO_LONG');
    const other = await connectRaw(port);
    other.write('400, 500\r\n');
    expect(await other.lines(1)).toEqual(['400, 500 : USERID : OTHER : grimlock']);
  });

  it('answers the queries before an over-long line, then closes', async () => {
    const { port } = await startServer(grimlock, { transport });
    const peer = await connectRaw(port);
    peer.write(`400, 500\r\n${'x'.repeat(2000)}`);
    expect(await peer.closed()).toBe('400, 500 : USERID : OTHER : grimlock\r\n');
  });

  it('stops reading beyond maxInFlight unanswered queries (backpressure) and resumes when they are answered', async () => {
    const held: (() => void)[] = [];
    let calls = 0;
    const { port } = await startServer(
      (tx) => {
        calls++;
        held.push(() => tx.replyWithUser('late'));
      },
      { transport, maxInFlight: 4 },
    );
    const peer = await connectRaw(port);
    peer.write('1, 1\r\n2, 2\r\n3, 3\r\n4, 4\r\n5, 5\r\n6, 6\r\n');
    await expect.poll(() => calls).toBe(4);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(calls).toBe(4);
    held.splice(0).forEach((reply) => reply());
    await expect.poll(() => calls).toBe(6);
    held.splice(0).forEach((reply) => reply());
    expect(await peer.lines(6)).toHaveLength(6);
  });

  it('closes after maxQueriesPerConnection queries, answering them all', async () => {
    const { port } = await startServer(grimlock, { transport, maxQueriesPerConnection: 2 });
    const peer = await connectRaw(port);
    peer.write('400, 500\r\n1, 2\r\n3, 4\r\n');
    expect(await peer.closed()).toBe('400, 500 : USERID : OTHER : grimlock\r\n1, 2 : ERROR : NO-USER\r\n');
  });

  it('closes a connection idle for idleTimeoutMs', async () => {
    const { port } = await startServer(grimlock, { transport, idleTimeoutMs: 150 });
    const peer = await connectRaw(port);
    const started = Date.now();
    await peer.closed();
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
  });

  it('keeps a connection that keeps sending input, and closes it once the input stops for idleTimeoutMs', async () => {
    const { port, server } = await startServer(grimlock, { transport, idleTimeoutMs: 150 });
    const peer = await connectRaw(port);
    // A query dribbled one octet at a time, each well inside the idle timeout, for 3x the timeout.
    for (const octet of '400, 500') {
      peer.write(octet);
      await new Promise((resolve) => setTimeout(resolve, 60));
    }
    expect(server.connectionCount).toBe(1);
    peer.write('\r\n');
    const stopped = Date.now();
    expect(await peer.closed()).toBe('400, 500 : USERID : OTHER : grimlock\r\n');
    expect(Date.now() - stopped).toBeGreaterThanOrEqual(140);
  });

  it('does not close a connection as idle while its query is still being answered', async () => {
    const { port } = await startServer((tx) => void setTimeout(() => tx.replyWithUser('slow'), 400), {
      transport,
      idleTimeoutMs: 100,
    });
    const peer = await connectRaw(port);
    peer.write('400, 500\r\n');
    expect(await peer.lines(1)).toEqual(['400, 500 : USERID : OTHER : slow']);
    await peer.closed();
  });

  it('does not buffer without bound for a client that never reads its replies', async () => {
    const { port } = await startServer((tx) => tx.replyWithUser('x'.repeat(500)), { transport, idleTimeoutMs: 60_000 });
    const rssBefore = process.memoryUsage().rss;
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.pause();
    const line = Buffer.from('1, 2\r\n'.repeat(10_000));
    // Write ~60 MB of queries (~5 GB of replies if all were answered) without ever reading.
    let written = 0;
    const deadline = Date.now() + 2_000;
    while (Date.now() < deadline && written < 10_000) {
      if (!socket.write(line))
        await Promise.race([new Promise((r) => socket.once('drain', r)), new Promise((r) => setTimeout(r, 200))]);
      written++;
    }
    // The kernel buffers fill and the server stops reading: our writes stall long before 10,000 chunks.
    expect(written).toBeLessThan(10_000);
    // Had the server kept answering, ~100 replies of 520 octets per 6-octet query would have piled up.
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(200 * 1024 * 1024);
    socket.destroy();
  });

  it("at an address's cap, a new connection takes back that address's longest-held answered one; another address keeps its own", async () => {
    const refused: string[] = [];
    const { port } = await startServer(grimlock, {
      transport,
      maxConnectionsPerAddress: 2,
      onRefuse: (reason, address) => refused.push(`${reason} ${address}`),
    });
    const other = await connectRaw(port, '127.0.0.1', '127.0.0.4');
    const a = await connectRaw(port, '127.0.0.1', '127.0.0.3');
    const b = await connectRaw(port, '127.0.0.1', '127.0.0.3');
    for (const peer of [other, a, b]) peer.write('400, 500\r\n');
    for (const peer of [other, a, b]) await peer.lines(1);
    const c = await connectRaw(port, '127.0.0.1', '127.0.0.3');
    c.write('400, 500\r\n');
    expect(await c.lines(1)).toEqual(['400, 500 : USERID : OTHER : grimlock']);
    expect(await a.closed()).toBe('400, 500 : USERID : OTHER : grimlock\r\n');
    expect(refused).toEqual(['evicted_per_address 127.0.0.3']);
    b.write('1, 2\r\n');
    other.write('1, 2\r\n');
    expect(await b.lines(2)).toHaveLength(2);
    expect(await other.lines(2)).toHaveLength(2);
  });

  it('beyond the cap with nothing answered to take back, serves a new connection once, then closes it', async () => {
    const { port, server } = await startServer(grimlock, { transport, maxConnectionsPerAddress: 1 });
    const waiting = await connectRaw(port, '127.0.0.1', '127.0.0.3');
    await expect.poll(() => server.connectionCount).toBe(1);
    const burst = await connectRaw(port, '127.0.0.1', '127.0.0.3');
    burst.write('400, 500\r\n1, 2\r\n');
    expect(await burst.closed()).toBe('400, 500 : USERID : OTHER : grimlock\r\n1, 2 : ERROR : NO-USER\r\n');
    // The connection within the cap, whose query had not come yet, was not touched.
    waiting.write('400, 500\r\n');
    expect(await waiting.lines(1)).toEqual(['400, 500 : USERID : OTHER : grimlock']);
  });

  it('closes a connection taken beyond the cap that sends no query, within the idle timeout', async () => {
    const { port, server } = await startServer(grimlock, {
      transport,
      maxConnectionsPerAddress: 1,
      idleTimeoutMs: 10_000,
    });
    await connectRaw(port, '127.0.0.1', '127.0.0.3');
    await expect.poll(() => server.connectionCount).toBe(1);
    const silent = await connectRaw(port, '127.0.0.1', '127.0.0.3');
    const started = performance.now();
    expect(await silent.closed(BEYOND_CAP_FIRST_QUERY_MS + 2_000)).toBe('');
    expect(performance.now() - started).toBeGreaterThanOrEqual(BEYOND_CAP_FIRST_QUERY_MS - 50);
    await expect.poll(() => server.connectionCount).toBe(1);
  });

  it(`refuses a new connection once an address has ${PER_ADDRESS_BURST_FACTOR} times its cap open, none of them answered`, async () => {
    const refused: string[] = [];
    const { port, server } = await startServer(grimlock, {
      transport,
      maxConnectionsPerAddress: 1,
      onRefuse: (reason, address) => refused.push(`${reason} ${address}`),
    });
    const held = [];
    for (let i = 0; i < PER_ADDRESS_BURST_FACTOR; i++) held.push(await connectRaw(port, '127.0.0.1', '127.0.0.3'));
    await expect.poll(() => server.connectionCount).toBe(PER_ADDRESS_BURST_FACTOR);
    const extra = await connectRaw(port, '127.0.0.1', '127.0.0.3');
    expect(await extra.closed()).toBe('');
    expect(refused).toEqual(['per_address 127.0.0.3']);
    const other = await connectRaw(port, '127.0.0.1', '127.0.0.4');
    other.write('400, 500\r\n');
    expect(await other.lines(1)).toEqual(['400, 500 : USERID : OTHER : grimlock']);
    for (const peer of held) peer.socket.destroy();
  });

  it('at the global cap, evicts the stalest idle connection so a new client is served', async () => {
    const refused: string[] = [];
    const { server, port } = await startServer(grimlock, {
      transport,
      maxConnections: 3,
      onRefuse: (reason) => refused.push(reason),
    });
    const idle = [
      await connectRaw(port, '127.0.0.1', '127.0.0.5'),
      await connectRaw(port, '127.0.0.1', '127.0.0.6'),
      await connectRaw(port, '127.0.0.1', '127.0.0.7'),
    ];
    await expect.poll(() => server.connectionCount).toBe(3);
    const fresh = await connectRaw(port, '127.0.0.1', '127.0.0.8');
    fresh.write('400, 500\r\n');
    expect(await fresh.lines(1)).toEqual(['400, 500 : USERID : OTHER : grimlock']);
    await idle[0]!.closed();
    expect(refused).toEqual(['evicted']);
  });

  it('closes a connection whose replies stall (it never reads, and half-closed) once it makes no progress for idleTimeoutMs', async () => {
    const { port, server } = await startServer((tx) => tx.replyWithUser('x'.repeat(400)), {
      transport,
      idleTimeoutMs: 300,
      ...STALL_LIMITS,
    });
    const staller = await stallReplies(port, '127.0.0.3');
    await expect.poll(() => server.connectionCount).toBe(1);
    const started = performance.now();
    await expect.poll(() => server.connectionCount, { timeout: 3_000 }).toBe(0);
    expect(performance.now() - started).toBeLessThan(3_000);
    staller.destroy();
  });

  it('at the global cap, evicts a connection whose replies stall so a new client is served', async () => {
    const refused: string[] = [];
    let answered = 0;
    const { port } = await startServer(
      (tx) => {
        answered++;
        tx.replyWithUser('x'.repeat(400));
      },
      {
        transport,
        maxConnections: 1,
        idleTimeoutMs: 60_000,
        ...STALL_LIMITS,
        onRefuse: (reason) => refused.push(reason),
      },
    );
    const staller = await stallReplies(port, '127.0.0.3');
    // Stalled: the server stopped reading it (no event says so: the count of answers stops growing).
    let seen = -1;
    await expect
      .poll(() => (seen === answered ? 'stalled' : ((seen = answered), 'answering')), {
        interval: 200,
        timeout: 10_000,
      })
      .toBe('stalled');
    expect(answered).toBeGreaterThan(1_000);
    expect(answered).toBeLessThan(20_000);
    await expect
      .poll(
        async () => {
          const fresh = await connectRaw(port, '127.0.0.1', '127.0.0.4');
          fresh.write('1, 2\r\n');
          const answer = await fresh.lines(1, 1_000).catch(() => ['refused']);
          fresh.socket.destroy();
          return answer;
        },
        { timeout: 5_000 },
      )
      .toEqual([`1, 2 : USERID : OTHER : ${'x'.repeat(400)}`]);
    expect(refused).toContain('evicted');
    staller.destroy();
  });
});

/**
 * Loopback's kernel buffers take about 4 MB of replies from a client that does
 * not read; with the default 1000 queries per connection the connection would
 * end first. (A client with SO_RCVBUF=1 stalls well within 1000.)
 */
const STALL_LIMITS = { maxQueriesPerConnection: 100_000 };

/**
 * A client that sends 20,000 queries, half-closes and never reads: the
 * server's replies (8 MB) fill the kernel's buffers and its own write queue,
 * and it waits for a drain that never comes with lines still unread.
 */
async function stallReplies(port: number, localAddress: string): Promise<net.Socket> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress });
  socket.on('error', () => {});
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.pause();
  socket.end('1, 2\r\n'.repeat(20_000));
  return socket;
}
