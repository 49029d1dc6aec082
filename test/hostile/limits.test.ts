/**
 * The connection limits under attack: a connection-exhaustion attack from many
 * addresses (eviction makes room for legitimate clients), slowloris (never a
 * complete line), one address flooding queries on all its connections, and the
 * per-address cap under load. Attackers come from 127.0.0.2.. and legitimate
 * clients from 127.0.0.100 and up; the flood runs in its own process
 * (bench/attack.mjs) against the real `identgate serve`.
 */
import { describe, expect, it } from 'vitest';
import { connectRaw, type RawPeer } from '../helpers/raw-peer.js';
import { grimlock, startServer, TRANSPORTS } from '../helpers/server.js';
import {
  latencyBound,
  expectDocumentedCodes,
  expectServing,
  guardEscapes,
  loopbackRange,
  openMany,
  percentile,
  probe,
  PROBE_REPLY,
  replyLines,
  startAttack,
  startCliServer,
} from './support.js';

guardEscapes();

describe.each(TRANSPORTS)('IdentServer limits under attack (%s transport)', (transport) => {
  it(
    'answers legitimate queries within a second while 2,000 idle attacker connections press against maxConnections 1,000',
    { timeout: 40_000 },
    async () => {
      const refusals = { evicted: 0, evicted_per_address: 0, per_address: 0, global: 0 };
      const { server, port, errors } = await startServer(grimlock, {
        transport,
        maxConnections: 1_000,
        maxConnectionsPerAddress: 40,
        onRefuse: (reason) => refusals[reason]++,
      });
      const attackers = await openMany(port, 2_000, loopbackRange(2, 60));
      await expect.poll(() => refusals.evicted, { timeout: 10_000 }).toBeGreaterThanOrEqual(1_000);
      expect(server.connectionCount).toBeLessThanOrEqual(1_000);
      expect(refusals.per_address).toBe(0);

      // Legitimate clients keep their connections open, so every one of them needs an eviction.
      const latencies: number[] = [];
      const legit: RawPeer[] = [];
      for (let i = 0; i < 20; i++) {
        const started = performance.now();
        const peer = await connectRaw(port, '127.0.0.1', '127.0.0.100');
        peer.write('400, 500\r\n');
        expect(await peer.lines(1, 1_000)).toEqual([PROBE_REPLY]);
        latencies.push(performance.now() - started);
        legit.push(peer);
      }
      expect(Math.max(...latencies)).toBeLessThan(latencyBound(1_000));
      expect(refusals.evicted).toBeGreaterThanOrEqual(1_020);
      // None of the answered legitimate clients was evicted before its reply.
      for (const peer of legit) expect(peer.text()).toBe(`${PROBE_REPLY}\r\n`);
      expect(refusals.global).toBe(0);
      for (const socket of attackers) socket.destroy();
      for (const peer of legit) peer.socket.destroy();
      await expect.poll(() => server.connectionCount, { timeout: 10_000 }).toBe(0);
      expectDocumentedCodes(errors);
    },
  );

  it(
    'answers legitimate queries promptly while 500 slowloris connections dribble one octet every 100 ms',
    { timeout: 40_000 },
    async () => {
      const { server, port, errors } = await startServer(grimlock, { transport });
      const attack = await startAttack(port, [
        '--mode',
        'slowloris',
        '--from',
        '127.0.0.2',
        '--addresses',
        '20',
        '--connections',
        '500',
        '--interval',
        '100',
      ]);
      await expect.poll(() => server.connectionCount, { timeout: 10_000 }).toBeGreaterThanOrEqual(500);
      const latencies: number[] = [];
      const started = Date.now();
      // Three seconds: about 30 octets per connection, none of them a line end.
      while (Date.now() - started < 3_000) {
        const result = await probe(port, { localAddress: '127.0.0.100' });
        expect(result.line).toBe(PROBE_REPLY);
        latencies.push(result.ms);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const stats = await attack.stop();
      expect(stats.octetsSent).toBeGreaterThanOrEqual(500 * 20);
      expect(stats.closedByServer).toBe(0);
      expect(Math.max(...latencies), `latencies (ms): ${latencies.map(Math.round).join(' ')}`).toBeLessThan(
        latencyBound(1_000),
      );
      expect(percentile(latencies, 99)).toBeLessThan(latencyBound(200));
      await expect.poll(() => server.connectionCount, { timeout: 10_000 }).toBe(0);
      expectDocumentedCodes(errors);
    },
  );

  it(
    'keeps another address under 200 ms p99 while one address floods queries on all its connections (identgate serve)',
    { timeout: 40_000 },
    async () => {
      const { port } = await startCliServer(['--transport', transport, '--max-per-address', '32']);
      const attack = await startAttack(port, [
        '--mode',
        'flood',
        '--from',
        '127.0.0.2',
        '--addresses',
        '1',
        '--connections',
        '32',
        '--batch',
        '64',
      ]);
      const latencies: number[] = [];
      for (let i = 0; i < 100; i++) {
        const result = await probe(port, { localAddress: '127.0.0.100' });
        expect(result.line).toBe(PROBE_REPLY);
        latencies.push(result.ms);
      }
      const stats = await attack.stop();
      // The flood was real: thousands of queries answered meanwhile (tens of thousands on an idle machine).
      expect(stats.repliesReceived).toBeGreaterThan(2_000);
      expect(
        percentile(latencies, 99),
        `latencies (ms): ${latencies.map(Math.round).join(' ')}; attacker ${JSON.stringify(stats)}`,
      ).toBeLessThan(latencyBound(200));
      await expectServing(port);
    },
  );

  it(
    'lets one address hold 40 idle connections: the 41st takes back its longest-held one, while 10 other addresses keep all of theirs (identgate serve)',
    { timeout: 40_000 },
    async () => {
      const { port } = await startCliServer(['--transport', transport, '--max-per-address', '40']);
      const attacker = await Promise.all(Array.from({ length: 40 }, () => connectRaw(port, '127.0.0.1', '127.0.0.2')));
      for (const peer of attacker) peer.write('400, 500\r\n');
      for (const peer of attacker) expect(await peer.lines(1)).toEqual([PROBE_REPLY]);
      // The 41st is answered; the attacker's first (answered, idle) connection made room.
      const next = await connectRaw(port, '127.0.0.1', '127.0.0.2');
      next.write('400, 500\r\n');
      expect(await next.lines(1)).toEqual([PROBE_REPLY]);
      expect(await attacker[0]!.closed()).toBe(`${PROBE_REPLY}\r\n`);

      const others = await Promise.all(
        loopbackRange(100, 109).flatMap((address) =>
          Array.from({ length: 40 }, () => connectRaw(port, '127.0.0.1', address)),
        ),
      );
      for (const peer of others) peer.write('400, 500\r\n');
      for (const peer of others) expect(replyLines((await peer.lines(1), peer.text()))).toEqual([PROBE_REPLY]);
      // The attacker's address is still held to 40: each new one costs it its longest-held.
      const again = await connectRaw(port, '127.0.0.1', '127.0.0.2');
      expect(await attacker[1]!.closed()).toBe(`${PROBE_REPLY}\r\n`);
      // The other addresses' 400 connections are untouched.
      for (const peer of others) {
        peer.write('1, 2\r\n');
        expect(await peer.lines(2)).toEqual([PROBE_REPLY, '1, 2 : USERID : OTHER : grimlock']);
      }
      for (const peer of [...attacker, ...others, next, again]) peer.socket.destroy();
    },
  );

  it(
    'answers in full a burst of 256 concurrent one-query connections from one address, three times over, with default limits (identgate serve)',
    { timeout: 40_000 },
    async () => {
      const { port } = await startCliServer(['--transport', transport]);
      for (let round = 0; round < 3; round++) {
        const outcomes = await Promise.all(
          Array.from({ length: 256 }, () =>
            probe(port, { localAddress: '127.0.0.2', timeoutMs: 5_000 }).then(
              (result) => result.line,
              (error: Error) => error.message,
            ),
          ),
        );
        expect(outcomes.filter((line) => line !== PROBE_REPLY)).toEqual([]);
      }
      await expectServing(port);
    },
  );
  it(
    'keeps another address under 200 ms p99 while one address holds 2,000 idle connections open, reopening each one closed (identgate serve, default limits)',
    { timeout: 40_000 },
    async () => {
      const { port } = await startCliServer(['--transport', transport]);
      const attack = await startAttack(port, ['--mode', 'idle', '--from', '127.0.0.2', '--connections', '2000']);
      const latencies: number[] = [];
      for (let i = 0; i < 100; i++) {
        const result = await probe(port, { localAddress: '127.0.0.100' });
        expect(result.line).toBe(PROBE_REPLY);
        latencies.push(result.ms);
      }
      const stats = await attack.stop();
      // Beyond its 32 (and 16 x 32 served once for at most 2 s each) the address is refused: it reconnected.
      expect(stats.closedByServer).toBeGreaterThan(1_000);
      expect(percentile(latencies, 99), `latencies (ms): ${latencies.map(Math.round).join(' ')}`).toBeLessThan(200);
      await expectServing(port);
    },
  );
});
