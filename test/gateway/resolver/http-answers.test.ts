/**
 * The HTTP resolver against a well-behaved fake worker (node:http on 127.0.0.1):
 * single and batch routes, micro-batching of concurrent queries with answers in
 * order, batch-first holding (holdMs) before parallel requests, the maxBatch cap, signatures the worker can verify, and a base path.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createHttpResolver } from '../../../gateway/resolver/http.js';
import type { Resolver } from '../../../gateway/resolver/types.js';
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, verifySignature } from '../../../protocol/signature.js';
import { ROUTES, type LookupAnswer, type LookupRequest } from '../../../protocol/wire.js';
import { lookupRequest } from '../../helpers/wire.js';

const SECRETS = ['s3cret-current', 's3cret-old'];

interface Received {
  path: string;
  body: string;
  timestamp: string | undefined;
  signature: string | undefined;
}

function answerFor(request: LookupRequest): LookupAnswer {
  return {
    v: 1,
    id: request.id,
    answer: { type: 'USERID', opsys: 'UNIX', userId: `user${request.query.serverPort}` },
    rule: 'r1',
  };
}

/** Answers the wire format correctly; `hold` lets a test delay a response until it releases it. */
class FakeWorker {
  readonly received: Received[] = [];
  readonly server: Server;
  #waiters: Array<() => void> = [];
  hold: ((release: () => void) => void) | undefined;

  constructor() {
    this.server = createServer((req, res) => this.#handle(req, res));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const path = req.url ?? '';
    this.received.push({
      path,
      body,
      timestamp: req.headers[TIMESTAMP_HEADER] as string | undefined,
      signature: req.headers[SIGNATURE_HEADER] as string | undefined,
    });
    for (const waiter of this.#waiters.splice(0)) waiter();
    const respond = (): void => {
      const parsed = JSON.parse(body) as LookupRequest | { v: 1; requests: LookupRequest[] };
      const answer = 'requests' in parsed ? { v: 1, answers: parsed.requests.map(answerFor) } : answerFor(parsed);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(answer));
    };
    if (this.hold) this.hold(respond);
    else respond();
  }

  /** Resolves once `count` requests have arrived. */
  async requestsArrived(count: number): Promise<void> {
    while (this.received.length < count) await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

let worker: FakeWorker;
let resolver: Resolver | undefined;

afterEach(async () => {
  await resolver?.close();
  resolver = undefined;
  await worker?.close();
});

async function start(
  options: { connections?: number; maxBatch?: number; holdMs?: number; path?: string } = {},
): Promise<Resolver> {
  worker = new FakeWorker();
  const base = await worker.listen();
  resolver = createHttpResolver({
    upstream: base + (options.path ?? ''),
    secrets: SECRETS,
    deadlineMs: 1000,
    ...options,
  });
  return resolver;
}

describe('http resolver against a correct worker', () => {
  it('sends one waiting query to the lookup route and returns the worker answer', async () => {
    const resolver = await start();
    const answer = await resolver.resolve(lookupRequest('q1', 6193));
    expect(answer).toEqual({
      v: 1,
      id: 'q1',
      answer: { type: 'USERID', opsys: 'UNIX', userId: 'user6193' },
      rule: 'r1',
    });
    expect(worker.received.map((r) => r.path)).toEqual([ROUTES.lookup]);
    expect(JSON.parse(worker.received[0]!.body)).toEqual(lookupRequest('q1', 6193));
  });

  it('batches queries resolved in the same tick into one batch request with answers in order', async () => {
    const resolver = await start();
    const ids = ['a', 'b', 'c', 'd', 'e'];
    const answers = await Promise.all(ids.map((id, i) => resolver.resolve(lookupRequest(id, 1000 + i))));
    expect(answers.map((a) => a.id)).toEqual(ids);
    expect(answers.map((a) => (a.answer.type === 'USERID' ? a.answer.userId : a.answer.error))).toEqual([
      'user1000',
      'user1001',
      'user1002',
      'user1003',
      'user1004',
    ]);
    expect(worker.received).toHaveLength(1);
    expect(worker.received[0]!.path).toBe(ROUTES.batch);
    const batch = JSON.parse(worker.received[0]!.body) as { v: number; requests: LookupRequest[] };
    expect(batch.v).toBe(1);
    expect(batch.requests.map((r) => r.id)).toEqual(ids);
  });

  it('batches queries that arrive while a request is in flight into the next request', async () => {
    const resolver = await start({ connections: 1 });
    const releases: Array<() => void> = [];
    worker.hold = (release) => releases.push(release);
    const first = resolver.resolve(lookupRequest('first'));
    await worker.requestsArrived(1);
    const later = ['x', 'y', 'z'].map((id) => resolver.resolve(lookupRequest(id)));
    // Give the dispatcher every chance to send them early: it must not, the only connection is busy.
    await new Promise((resolve) => setImmediate(resolve));
    expect(worker.received).toHaveLength(1);
    worker.hold = undefined;
    releases[0]!();
    expect((await first).id).toBe('first');
    expect((await Promise.all(later)).map((a) => a.id)).toEqual(['x', 'y', 'z']);
    expect(worker.received.map((r) => r.path)).toEqual([ROUTES.lookup, ROUTES.batch]);
    expect((JSON.parse(worker.received[1]!.body) as { requests: LookupRequest[] }).requests.map((r) => r.id)).toEqual([
      'x',
      'y',
      'z',
    ]);
  });

  it('holds a partial batch while a request is in flight, even with connections free, and sends it when that request returns', async () => {
    const resolver = await start({ connections: 4, holdMs: 10_000 });
    const releases: Array<() => void> = [];
    worker.hold = (release) => releases.push(release);
    const first = resolver.resolve(lookupRequest('first'));
    await worker.requestsArrived(1);
    const later = ['x', 'y'].map((id) => resolver.resolve(lookupRequest(id)));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(worker.received).toHaveLength(1);
    worker.hold = undefined;
    releases[0]!();
    expect((await Promise.all([first, ...later])).map((a) => a.id)).toEqual(['first', 'x', 'y']);
    expect(worker.received.map((r) => r.path)).toEqual([ROUTES.lookup, ROUTES.batch]);
  });

  it('sends a full batch on another connection at once while a request is in flight', async () => {
    const resolver = await start({ connections: 4, maxBatch: 3, holdMs: 10_000 });
    const releases: Array<() => void> = [];
    worker.hold = (release) => releases.push(release);
    const first = resolver.resolve(lookupRequest('first'));
    await worker.requestsArrived(1);
    const full = ['a', 'b', 'c'].map((id) => resolver.resolve(lookupRequest(id)));
    await worker.requestsArrived(2);
    expect((JSON.parse(worker.received[1]!.body) as { requests: LookupRequest[] }).requests.map((r) => r.id)).toEqual([
      'a',
      'b',
      'c',
    ]);
    worker.hold = undefined;
    for (const release of releases) release();
    expect((await Promise.all([first, ...full])).map((a) => a.id)).toEqual(['first', 'a', 'b', 'c']);
  });

  it('sends a partial batch on another connection once it has waited holdMs for a stalled request', async () => {
    const resolver = await start({ connections: 4, holdMs: 40 });
    const releases: Array<() => void> = [];
    worker.hold = (release) => releases.push(release);
    const first = resolver.resolve(lookupRequest('stalled'));
    await worker.requestsArrived(1);
    worker.hold = undefined;
    const started = performance.now();
    const later = await resolver.resolve(lookupRequest('later'));
    const waited = performance.now() - started;
    expect(later.id).toBe('later');
    expect(waited).toBeGreaterThanOrEqual(35);
    expect(waited).toBeLessThan(900);
    releases[0]!();
    expect((await first).id).toBe('stalled');
  });

  it('caps each batch at maxBatch queries', async () => {
    const resolver = await start({ connections: 1, maxBatch: 2 });
    const ids = ['1', '2', '3', '4', '5'];
    const answers = await Promise.all(ids.map((id) => resolver.resolve(lookupRequest(id))));
    expect(answers.map((a) => a.id)).toEqual(ids);
    const sizes = worker.received.map((r) => {
      const parsed = JSON.parse(r.body) as { requests?: unknown[] };
      return parsed.requests ? parsed.requests.length : 1;
    });
    expect(sizes).toEqual([2, 2, 1]);
  });

  it('signs every request so that the worker can verify it with its secrets', async () => {
    const resolver = await start();
    await resolver.resolve(lookupRequest('single'));
    await Promise.all([resolver.resolve(lookupRequest('b1')), resolver.resolve(lookupRequest('b2'))]);
    expect(worker.received).toHaveLength(2);
    for (const request of worker.received) {
      const verdict = await verifySignature(['s3cret-old', 's3cret-current'], {
        method: 'POST',
        path: request.path,
        body: request.body,
        timestamp: request.timestamp,
        signature: request.signature,
      });
      expect(verdict).toMatchObject({ ok: true });
    }
    const wrong = worker.received[0]!;
    const verdict = await verifySignature(['other'], { method: 'POST', ...wrong });
    expect(verdict.ok).toBe(false);
  });

  it('appends the routes to the base path of the upstream URL and signs that path', async () => {
    const resolver = await start({ path: '/identgate/' });
    const answer = await resolver.resolve(lookupRequest('q'));
    expect(answer.id).toBe('q');
    const request = worker.received[0]!;
    expect(request.path).toBe('/identgate' + ROUTES.lookup);
    expect(await verifySignature(SECRETS, { method: 'POST', ...request })).toMatchObject({ ok: true });
  });

  it('reuses its keep-alive connections instead of connecting per request', async () => {
    const resolver = await start({ connections: 1 });
    let connectionsMade = 0;
    worker.server.on('connection', () => connectionsMade++);
    for (let i = 0; i < 5; i++) await resolver.resolve(lookupRequest(`k${i}`));
    expect(worker.received).toHaveLength(5);
    expect(connectionsMade).toBe(1);
  });

  it('reports each successful request to onBatch with its size', async () => {
    worker = new FakeWorker();
    const base = await worker.listen();
    const batches: number[] = [];
    resolver = createHttpResolver({
      upstream: base,
      secrets: SECRETS,
      onBatch: (size, latencyMs) => {
        expect(latencyMs).toBeGreaterThanOrEqual(0);
        batches.push(size);
      },
    });
    await resolver.resolve(lookupRequest('one'));
    await Promise.all(['a', 'b', 'c'].map((id) => resolver!.resolve(lookupRequest(id))));
    expect(batches).toEqual([1, 3]);
  });
});
