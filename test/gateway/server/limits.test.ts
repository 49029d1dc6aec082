import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { connectRaw } from '../../helpers/raw-peer.js';
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

  it('refuses connections beyond maxConnectionsPerAddress from one address, but not from another', async () => {
    const refused: string[] = [];
    const { port } = await startServer(grimlock, {
      transport,
      maxConnectionsPerAddress: 2,
      onRefuse: (reason, address) => refused.push(`${reason} ${address}`),
    });
    const a = await connectRaw(port, '127.0.0.1', '127.0.0.3');
    const b = await connectRaw(port, '127.0.0.1', '127.0.0.3');
    a.write('400, 500\r\n');
    b.write('400, 500\r\n');
    await a.lines(1);
    await b.lines(1);
    const c = await connectRaw(port, '127.0.0.1', '127.0.0.3');
    expect(await c.closed()).toBe('');
    expect(refused).toEqual(['per_address 127.0.0.3']);
    const other = await connectRaw(port, '127.0.0.1', '127.0.0.4');
    other.write('400, 500\r\n');
    expect(await other.lines(1)).toEqual(['400, 500 : USERID : OTHER : grimlock']);
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
});
