/**
 * `identgate serve --metrics ADDR:PORT`: the Prometheus endpoint the operations
 * guide lists, scraped over HTTP from a running CLI. The metrics port (0 =
 * ephemeral) is read from the 'identgate serving' JSON log line, as an operator
 * would read it from the journal.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { connectRaw } from '../../helpers/raw-peer.js';
import { listeningPort } from '../../helpers/cli.js';
import { CLI, READY, startDaemon, type Daemon } from './process.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

async function startWithMetrics(args: string[]): Promise<{ serve: Daemon; identPort: number; metricsUrl: string }> {
  const serve = await startDaemon(
    process.execPath,
    [CLI, 'serve', '--listen', '127.0.0.1:0', '--metrics', '127.0.0.1:0', ...args],
    READY,
  );
  const serving = await serve.logLine((line) => line.msg === 'identgate serving');
  expect(serving.metricsPort).toEqual(expect.any(Number));
  return {
    serve,
    identPort: listeningPort(serve.stdout()),
    metricsUrl: `http://127.0.0.1:${String(serving.metricsPort)}`,
  };
}

async function scrape(metricsUrl: string): Promise<string> {
  const response = await fetch(`${metricsUrl}/metrics`, { signal: AbortSignal.timeout(5_000) });
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return response.text();
}

/** The value of one sample line, e.g. sample(text, 'identgate_queries_total{answer="USERID"}'). */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** A real TCP connection on loopback whose owner is this test process's user: [server port, client port]. */
async function ownedConnection(): Promise<[number, number]> {
  const server: Server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const socket: Socket = connect((server.address() as { port: number }).port, '127.0.0.1');
  await once(socket, 'connect');
  cleanups.push(() => {
    socket.destroy();
    server.close();
  });
  return [socket.remotePort!, socket.localPort!];
}

describe('--metrics', () => {
  it('counts answered queries by answer and times owner lookups', async () => {
    const { identPort, metricsUrl } = await startWithMetrics(['--owner-lookup', 'on']);
    const [serverPort, clientPort] = await ownedConnection();
    const peer = await connectRaw(identPort);
    peer.write(`${serverPort}, ${clientPort}\r\n1, 1\r\n`);
    const [found, missing] = await peer.lines(2);
    expect(found).toMatch(/ : USERID : UNIX : /);
    expect(missing).toBe('1, 1 : ERROR : NO-USER');
    const text = await scrape(metricsUrl);
    expect(sample(text, 'identgate_queries_total{answer="USERID"}')).toBe(1);
    expect(sample(text, 'identgate_queries_total{answer="NO-USER"}')).toBe(1);
    expect(sample(text, 'identgate_owner_lookup_seconds_count{result="found"}')).toBe(1);
    expect(sample(text, 'identgate_owner_lookup_seconds_count{result="not_found"}')).toBe(1);
    expect(text).toContain('# TYPE identgate_owner_lookup_seconds histogram');
    // Node's default metrics ride along under identgate_process_ (their exact names are prom-client's).
    expect(text).toMatch(/^identgate_process_\w*resident_memory_bytes \d+/m);
  });

  it('reports open connections and connections taken back by --max-per-address', async () => {
    const { identPort, metricsUrl } = await startWithMetrics(['--reply', 'x', '--max-per-address', '1']);
    const first = await connectRaw(identPort);
    first.write('1, 2\r\n');
    await first.lines(1);
    const second = await connectRaw(identPort);
    await first.closed();
    const text = await scrape(metricsUrl);
    expect(sample(text, 'identgate_open_connections')).toBe(1);
    expect(sample(text, 'identgate_refused_connections_total{reason="evicted_per_address"}')).toBe(1);
    expect(sample(text, 'identgate_queries_total{answer="USERID"}')).toBe(1);
    second.socket.destroy();
  });

  it('answers 404 for anything but GET /metrics', async () => {
    const { metricsUrl } = await startWithMetrics(['--reply', 'x']);
    for (const [path, method] of [
      ['/', 'GET'],
      ['/metrics', 'POST'],
      ['/metrics/', 'GET'],
    ] as const) {
      const response = await fetch(`${metricsUrl}${path}`, { method, signal: AbortSignal.timeout(5_000) });
      expect(response.status, `${method} ${path}`).toBe(404);
      await response.body?.cancel();
    }
  });
});
