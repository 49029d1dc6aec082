/**
 * The HTTP resolver against misbehaving fake workers on 127.0.0.1: every failure
 * (refused, slow, non-2xx, garbage, wrong schema, huge body, reset mid-response,
 * an answer breaking RFC 1413, mismatched ids) answers every affected query with
 * the fallback within the deadline and is reported to onFailure once.
 */
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createHttpResolver } from '../../../gateway/resolver/http.js';
import type { FailureCause, FallbackListener, Resolver } from '../../../gateway/resolver/types.js';
import {
  BatchRequestSchema,
  LookupRequestSchema,
  MAX_BODY_OCTETS,
  type LookupAnswer,
  type LookupRequest,
} from '../../../protocol/wire.js';
import { lookupRequest } from '../../helpers/wire.js';

const DEADLINE_MS = 300;
const MARGIN_MS = 300;
const FALLBACK = { type: 'ERROR', error: 'UNKNOWN-ERROR' } as const;

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

const servers: Server[] = [];
const sockets = new Set<Socket>();
let resolver: Resolver | undefined;

afterEach(async () => {
  await resolver?.close();
  resolver = undefined;
  for (const socket of sockets) socket.destroy();
  sockets.clear();
  await Promise.all(servers.splice(0).map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
});

function track<T extends Server>(server: T): T {
  servers.push(server);
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  return server;
}

async function listen(server: Server, port = 0): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return (server.address() as AddressInfo).port;
}

/** A fake worker over node:http whose handler decides what to answer. */
async function httpWorker(handler: Handler): Promise<string> {
  const server = track(
    createHttpServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => handler(req, res, Buffer.concat(chunks).toString('utf8')));
    }),
  );
  return `http://127.0.0.1:${await listen(server)}`;
}

/** A fake worker over node:net that writes literal bytes once a request has arrived. */
async function rawWorker(onRequest: (socket: Socket) => void): Promise<string> {
  const server = track(
    createNetServer((socket) => {
      let seen = '';
      socket.on('data', (chunk: Buffer) => {
        seen += chunk.toString('latin1');
        if (seen.includes('\r\n\r\n')) onRequest(socket);
      });
    }),
  );
  return `http://127.0.0.1:${await listen(server)}`;
}

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createNetServer();
  const port = await listen(server);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

interface Report {
  cause: FailureCause;
  detail: string;
  count: number;
}

function withResolver(
  upstream: string,
  extra: { connections?: number; maxBatch?: number; onFallback?: FallbackListener } = {},
): { resolver: Resolver; reports: Report[]; recoveries: number[] } {
  const reports: Report[] = [];
  const recoveries: number[] = [];
  resolver = createHttpResolver({
    upstream,
    secrets: ['s3cret'],
    deadlineMs: DEADLINE_MS,
    onFailure: (cause, detail, count) => reports.push({ cause, detail, count }),
    onRecover: (failures) => recoveries.push(failures),
    ...extra,
  });
  return { resolver, reports, recoveries };
}

/** Resolves `ids` concurrently and asserts each got the fallback within the deadline. */
async function expectFallbacks(resolver: Resolver, ids: string[]): Promise<void> {
  const started = performance.now();
  const answers = await Promise.all(
    ids.map(async (id) => {
      const answer = await resolver.resolve(lookupRequest(id));
      return { answer, elapsed: performance.now() - started };
    }),
  );
  for (const [i, { answer, elapsed }] of answers.entries()) {
    expect(answer).toEqual<LookupAnswer>({ v: 1, id: ids[i]!, answer: FALLBACK, rule: '(fallback)' });
    expect(elapsed).toBeLessThan(DEADLINE_MS + MARGIN_MS);
  }
}

function validAnswer(id: string): LookupAnswer {
  return { v: 1, id, answer: { type: 'USERID', opsys: 'UNIX', userId: 'alice' }, rule: 'r' };
}

function answerEach(body: string, make: (id: string) => unknown): string {
  const parsed = JSON.parse(body) as LookupRequest | { requests: LookupRequest[] };
  return JSON.stringify(
    'requests' in parsed ? { v: 1, answers: parsed.requests.map((r) => make(r.id)) } : make(parsed.id),
  );
}

describe('http resolver failures', () => {
  it('answers the fallback at once when the worker port refuses connections', async () => {
    const { resolver, reports } = withResolver(`http://127.0.0.1:${await closedPort()}`);
    await expectFallbacks(resolver, ['a', 'b', 'c']);
    await expectFallbacks(resolver, ['d']);
    expect(reports).toHaveLength(1);
    expect(reports[0]!.cause).toBe('refused');
    expect(reports[0]!.count).toBe(3);
    expect(reports[0]!.detail).toContain('ECONNREFUSED');
  });

  it('tells onFallback about every query that got the fallback, while onFailure stays throttled', async () => {
    const fallbacks: [FailureCause, number][] = [];
    const { resolver, reports } = withResolver(`http://127.0.0.1:${await closedPort()}`, {
      onFallback: (cause, count) => fallbacks.push([cause, count]),
    });
    await expectFallbacks(resolver, ['a', 'b', 'c']);
    await expectFallbacks(resolver, ['d']);
    await expectFallbacks(resolver, ['e']);
    expect(reports).toHaveLength(1);
    expect(fallbacks.reduce((sum, [, count]) => sum + count, 0)).toBe(5);
    expect(new Set(fallbacks.map(([cause]) => cause))).toEqual(new Set(['refused']));
  });

  it('answers the fallback within the deadline when the worker is slower than the deadline', async () => {
    const { resolver, reports } = withResolver(await httpWorker(() => undefined));
    await expectFallbacks(resolver, ['a', 'b']);
    expect(reports.map((r) => r.cause)).toEqual(['timeout']);
  });

  it('answers the fallback within the deadline for queries still queued behind a hung request', async () => {
    const { resolver, reports } = withResolver(await httpWorker(() => undefined), { connections: 1, maxBatch: 1 });
    await expectFallbacks(resolver, ['a', 'b', 'c']);
    expect(reports.map((r) => r.cause)).toEqual(['timeout']);
  });

  it('answers the fallback when the worker answers HTTP 500', async () => {
    const upstream = await httpWorker((_req, res) => {
      res.statusCode = 500;
      res.end(JSON.stringify({ error: { code: 'internal', message: 'store unavailable' } }));
    });
    const { resolver, reports } = withResolver(upstream);
    await expectFallbacks(resolver, ['a', 'b']);
    expect(reports.map((r) => r.cause)).toEqual(['http_status']);
    expect(reports[0]!.detail).toContain('500');
    expect(reports[0]!.detail).toContain('store unavailable');
  });

  it('reports a 401 from the worker as an authentication failure', async () => {
    const upstream = await httpWorker((_req, res) => {
      res.statusCode = 401;
      res.end(
        JSON.stringify({ error: { code: 'bad_signature', message: 'signature does not match any configured secret' } }),
      );
    });
    const { resolver, reports } = withResolver(upstream);
    await expectFallbacks(resolver, ['a']);
    expect(reports.map((r) => r.cause)).toEqual(['auth']);
  });

  it('answers the fallback when the worker answers something that is not JSON', async () => {
    const { resolver, reports } = withResolver(
      await httpWorker((_req, res) => res.end('<html>502 Bad Gateway</html>')),
    );
    await expectFallbacks(resolver, ['a', 'b']);
    expect(reports.map((r) => r.cause)).toEqual(['invalid_json']);
  });

  it('answers the fallback when the worker answers JSON of the wrong shape', async () => {
    const { resolver, reports } = withResolver(await httpWorker((_req, res) => res.end('{"hello":"world"}')));
    await expectFallbacks(resolver, ['a']);
    await expectFallbacks(resolver, ['b', 'c']);
    expect(reports.map((r) => r.cause)).toEqual(['schema_mismatch']);
    expect(reports[0]!.count).toBe(1);
  });

  it('answers the fallback when the worker answers a body over the size cap with a content-length', async () => {
    const upstream = await httpWorker((_req, res) => {
      res.setHeader('content-length', MAX_BODY_OCTETS + 1);
      res.end('x'.repeat(MAX_BODY_OCTETS + 1));
    });
    const { resolver, reports } = withResolver(upstream);
    await expectFallbacks(resolver, ['a', 'b']);
    expect(reports.map((r) => r.cause)).toEqual(['body_too_large']);
  });

  it('stops reading and answers the fallback when a chunked body grows past the size cap', async () => {
    let written = 0;
    const upstream = await httpWorker((_req, res) => {
      const chunk = 'x'.repeat(64 * 1024);
      // Keeps writing (up to 16 MiB) for as long as the client keeps reading.
      const pump = (): void => {
        while (written < 16 * 1024 * 1024 && !res.destroyed) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    const { resolver, reports } = withResolver(upstream);
    await expectFallbacks(resolver, ['a']);
    expect(reports.map((r) => r.cause)).toEqual(['body_too_large']);
    expect(written).toBeLessThan(16 * 1024 * 1024);
  });

  it('answers the fallback when the worker resets the connection mid-response', async () => {
    const upstream = await rawWorker((socket) => {
      socket.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{"v":1,');
      setImmediate(() => socket.destroy());
    });
    const { resolver, reports } = withResolver(upstream);
    await expectFallbacks(resolver, ['a', 'b']);
    expect(reports.map((r) => r.cause)).toEqual(['reset']);
  });

  it('answers the fallback when an answer breaks an RFC 1413 reply rule', async () => {
    const upstream = await httpWorker((_req, res, body) =>
      res.end(
        answerEach(body, (id) => ({
          v: 1,
          id,
          answer: { type: 'USERID', opsys: 'UNIX', userId: 'root\r\n6193, 23 : USERID : UNIX : admin' },
          rule: 'r',
        })),
      ),
    );
    const { resolver, reports } = withResolver(upstream);
    await expectFallbacks(resolver, ['a']);
    await expectFallbacks(resolver, ['b', 'c']);
    expect(reports.map((r) => r.cause)).toEqual(['invalid_answer']);
    expect(reports[0]!.detail).toContain('CR');
  });

  it('answers the fallback for the whole batch when one answer in it breaks an RFC 1413 rule', async () => {
    const upstream = await httpWorker((_req, res, body) =>
      res.end(
        answerEach(body, (id) =>
          id === 'b' ? { ...validAnswer(id), answer: { type: 'ERROR', error: 'NOT-A-TOKEN' } } : validAnswer(id),
        ),
      ),
    );
    const { resolver, reports } = withResolver(upstream);
    await expectFallbacks(resolver, ['a', 'b', 'c']);
    expect(reports.map((r) => r.cause)).toEqual(['invalid_answer']);
  });

  it('answers the fallback when the answer id is not the request id', async () => {
    const upstream = await httpWorker((_req, res, body) =>
      res.end(answerEach(body, (id) => validAnswer(`${id}-other`))),
    );
    const { resolver, reports } = withResolver(upstream);
    await expectFallbacks(resolver, ['a']);
    expect(reports.map((r) => r.cause)).toEqual(['id_mismatch']);
  });

  it('answers the fallback when batch answers come back in another order', async () => {
    const upstream = await httpWorker((_req, res, body) => {
      const { requests } = JSON.parse(body) as { requests: LookupRequest[] };
      res.end(JSON.stringify({ v: 1, answers: requests.map((r) => validAnswer(r.id)).reverse() }));
    });
    const { resolver, reports } = withResolver(upstream);
    await expectFallbacks(resolver, ['a', 'b', 'c']);
    expect(reports.map((r) => r.cause)).toEqual(['id_mismatch']);
  });

  it('answers the fallback when a batch answer has fewer answers than requests', async () => {
    const upstream = await httpWorker((_req, res, body) => {
      const { requests } = JSON.parse(body) as { requests: LookupRequest[] };
      res.end(JSON.stringify({ v: 1, answers: requests.slice(1).map((r) => validAnswer(r.id)) }));
    });
    const { resolver, reports } = withResolver(upstream);
    await expectFallbacks(resolver, ['a', 'b', 'c']);
    expect(reports.map((r) => r.cause)).toEqual(['id_mismatch']);
  });

  it('answers with a configured fallback instead of UNKNOWN-ERROR', async () => {
    resolver = createHttpResolver({
      upstream: `http://127.0.0.1:${await closedPort()}`,
      secrets: ['s3cret'],
      deadlineMs: DEADLINE_MS,
      fallback: { type: 'ERROR', error: 'HIDDEN-USER' },
    });
    const answer = await resolver.resolve(lookupRequest('a'));
    expect(answer).toEqual({ v: 1, id: 'a', answer: { type: 'ERROR', error: 'HIDDEN-USER' }, rule: '(fallback)' });
  });

  it('answers the fallback only for a request the worker rejects as breaking the wire schema, and the worker answers the rest', async () => {
    const bodies: string[] = [];
    const { resolver, reports } = withResolver(
      await httpWorker((_req, res, body) => {
        bodies.push(body);
        const json = JSON.parse(body) as { requests?: unknown };
        const parsed = json.requests ? BatchRequestSchema.safeParse(json) : LookupRequestSchema.safeParse(json);
        if (!parsed.success) {
          res.statusCode = 400;
          res.end(JSON.stringify({ error: { code: 'invalid_request', message: 'bad request' } }));
        } else res.end(answerEach(body, validAnswer));
      }),
    );
    const bad = { ...lookupRequest('bad'), query: { serverPort: 0, clientPort: 23 } };
    const answers = await Promise.all([
      resolver.resolve(lookupRequest('a')),
      resolver.resolve(bad),
      resolver.resolve(lookupRequest('c')),
    ]);
    expect(answers).toEqual([
      validAnswer('a'),
      { v: 1, id: 'bad', answer: FALLBACK, rule: '(fallback)' },
      validAnswer('c'),
    ]);
    expect(bodies).toHaveLength(2);
    expect(reports.map((r) => r.cause)).toEqual(['invalid_request']);
    expect(reports[0]!.detail).toContain('query.serverPort');
  });

  it('answers waiting queries with the fallback when closed, and every later query too', async () => {
    const { resolver } = withResolver(await httpWorker(() => undefined));
    const started = performance.now();
    const waiting = resolver.resolve(lookupRequest('a'));
    await new Promise((resolve) => setImmediate(resolve));
    await resolver.close();
    expect(await waiting).toEqual({ v: 1, id: 'a', answer: FALLBACK, rule: '(fallback)' });
    expect(performance.now() - started).toBeLessThan(DEADLINE_MS);
    expect(await resolver.resolve(lookupRequest('b'))).toEqual({ v: 1, id: 'b', answer: FALLBACK, rule: '(fallback)' });
  });
});

describe('http resolver recovery', () => {
  it('answers from the worker again as soon as it comes back, and reports the episode once', async () => {
    const port = await closedPort();
    const { resolver, reports, recoveries } = withResolver(`http://127.0.0.1:${port}`);
    for (let i = 0; i < 3; i++) await expectFallbacks(resolver, [`down${i}`]);
    expect(reports.map((r) => r.cause)).toEqual(['refused']);

    const server = track(
      createHttpServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (chunk: Buffer) => chunks.push(chunk));
        req.on('end', () => res.end(answerEach(Buffer.concat(chunks).toString('utf8'), validAnswer)));
      }),
    );
    await listen(server, port);
    expect(await resolver.resolve(lookupRequest('up'))).toEqual(validAnswer('up'));
    expect(recoveries).toEqual([3]);
    expect(reports).toHaveLength(1);

    // Down again: a new episode, reported again.
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await expectFallbacks(resolver, ['down-again']);
    expect(reports.map((r) => r.cause)).toEqual(['refused', 'refused']);
  });

  it('answers from the worker again after a timeout episode once the worker is fast again', async () => {
    let slow = true;
    const { resolver, reports, recoveries } = withResolver(
      await httpWorker((_req, res, body) => {
        if (!slow) res.end(answerEach(body, validAnswer));
      }),
    );
    await expectFallbacks(resolver, ['a']);
    await expectFallbacks(resolver, ['b']);
    slow = false;
    expect(await resolver.resolve(lookupRequest('c'))).toEqual(validAnswer('c'));
    expect(reports.map((r) => r.cause)).toEqual(['timeout']);
    expect(recoveries).toEqual([2]);
  });
});
