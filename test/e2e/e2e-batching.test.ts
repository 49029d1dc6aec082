/**
 * End to end, micro-batching: 50 different ident queries pipelined on a few TCP
 * connections to `identgate serve --upstream` are each answered with the
 * worker's decision for their own ports, while the gateway sends the worker
 * fewer HTTP requests than queries. The worker's decision log counts the
 * queries it decided; the gateway's Prometheus histogram
 * identgate_upstream_queries_per_request counts requests (_count) and the
 * queries they carried (_sum).
 */
import { describe, expect, it } from 'vitest';
import { IdentClient, type IdentResponse } from '../../gateway/client/client.js';
import { onCleanup, startServe, startWorker, tempFiles, waitForLog } from './harness.js';

const CONNECTIONS = 5;
const QUERIES_PER_CONNECTION = 10;
const QUERIES = CONNECTIONS * QUERIES_PER_CONNECTION;
const FIRST_SERVER_PORT = 2000;

/** One rule per query, so every answer tells which query it was decided for. */
const POLICY = {
  version: 1,
  rules: Array.from({ length: QUERIES }, (_, i) => ({
    name: `port-${FIRST_SERVER_PORT + i}`,
    match: { serverPort: FIRST_SERVER_PORT + i },
    action: { userId: `user${FIRST_SERVER_PORT + i}` },
  })),
  default: { action: { error: 'HIDDEN-USER' } },
};

/** Reads one sample (e.g. `identgate_upstream_queries_per_request_count`) from a Prometheus text page. */
function sample(page: string, name: string): number {
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(page);
  if (!match) throw new Error(`no ${name} in the metrics page:\n${page}`);
  return Number(match[1]);
}

describe('batching between the gateway and the worker', () => {
  it('answers 50 concurrent pipelined queries correctly with fewer HTTP requests than queries', async () => {
    const files = tempFiles();
    const worker = await startWorker(['--policy', files.policy(POLICY), '--secret-file', files.secret()]);
    const gateway = await startServe([
      '--upstream',
      worker.url,
      '--secret-file',
      files.secret(),
      '--gateway-name',
      'e2e-batch',
      '--metrics',
      '127.0.0.1:0',
      '--deadline',
      '10000',
      '--owner-lookup',
      'off',
    ]);
    const [serving] = await waitForLog(gateway.cli, (line) => line.msg === 'identgate serving');
    const metricsPort = serving?.metricsPort;
    expect(metricsPort).toEqual(expect.any(Number));

    const clients = Array.from(
      { length: CONNECTIONS },
      () => new IdentClient({ hostname: '127.0.0.1', port: gateway.port, timeout: 15_000 }),
    );
    onCleanup(() => Promise.all(clients.map((client) => client.close())).then(() => undefined));
    const asked: Promise<IdentResponse>[] = [];
    // Each client writes its queries back to back on its one connection (pipelining).
    for (let i = 0; i < QUERIES; i++) asked.push(clients[i % CONNECTIONS]!.ident(FIRST_SERVER_PORT + i, 3000 + i));
    const responses = await Promise.all(asked);

    responses.forEach((response, i) => {
      expect(response.raw).toBe(
        `${FIRST_SERVER_PORT + i}, ${3000 + i} : USERID : OTHER : user${FIRST_SERVER_PORT + i}`,
      );
    });
    // One log entry per HTTP request, listing its decisions: every query is there once.
    const entries = await waitForLog(
      worker.cli,
      (line) =>
        line.msg === 'decisions' &&
        (line.decisions as { gateway: string }[]).every((decision) => decision.gateway === 'e2e-batch'),
      { until: (found) => found.reduce((sum, line) => sum + (line.count as number), 0) >= QUERIES },
    );
    const logged = entries.flatMap((line) => (line.decisions as { id: string }[]).map((decision) => decision.id));
    expect(logged).toHaveLength(QUERIES);
    expect(new Set(logged).size).toBe(QUERIES);

    const page = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const requests = sample(page, 'identgate_upstream_queries_per_request_count');
    expect(sample(page, 'identgate_upstream_queries_per_request_sum')).toBe(QUERIES);
    expect(requests).toBeGreaterThanOrEqual(1);
    expect(requests).toBeLessThan(QUERIES);
    expect(sample(page, 'identgate_queries_total')).toBe(QUERIES);
  });
});
