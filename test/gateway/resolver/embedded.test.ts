/**
 * The embedded resolver against a tiny in-process Hono app that speaks the wire
 * format: answers through the lookup and batch routes without a socket or a
 * signature, concurrent queries batched into one app call, and the same
 * validation and fallback as the HTTP resolver.
 */
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { createEmbeddedResolver } from '../../../gateway/resolver/embedded.js';
import type { FailureCause } from '../../../gateway/resolver/types.js';
import { SIGNATURE_HEADER } from '../../../protocol/signature.js';
import { MAX_BODY_OCTETS, ROUTES, type LookupAnswer, type LookupRequest } from '../../../protocol/wire.js';
import { closedAfterTest, DEADLINE_MS, embeddedWithReports, expectFallback } from '../../helpers/embedded-resolver.js';
import { lookupRequest } from '../../helpers/wire.js';

function decide(request: LookupRequest): LookupAnswer {
  const answer = request.owner?.userName
    ? ({ type: 'USERID', opsys: 'UNIX', userId: `${request.owner.userName}${request.query.serverPort}` } as const)
    : ({ type: 'ERROR', error: 'NO-USER' } as const);
  return { v: 1, id: request.id, answer, rule: 'owner' };
}

interface Call {
  url: string;
  body: string;
  signed: boolean;
}

/** A policy app in the wire format that records every call it gets. */
function policyApp(calls: Call[], decideWith: (request: LookupRequest) => unknown = decide): Hono {
  const app = new Hono();
  app.post(ROUTES.lookup, async (c) => {
    const body = await c.req.text();
    calls.push({ url: c.req.url, body, signed: c.req.header(SIGNATURE_HEADER) !== undefined });
    return c.json(decideWith(JSON.parse(body) as LookupRequest) as object);
  });
  app.post(ROUTES.batch, async (c) => {
    const body = await c.req.text();
    calls.push({ url: c.req.url, body, signed: c.req.header(SIGNATURE_HEADER) !== undefined });
    const { requests } = JSON.parse(body) as { requests: LookupRequest[] };
    return c.json({ v: 1, answers: requests.map(decideWith) });
  });
  return app;
}

describe('embedded resolver', () => {
  it('answers a single query through the lookup route, unsigned, without a socket', async () => {
    const calls: Call[] = [];
    const { resolver } = embeddedWithReports(policyApp(calls));
    expect(await resolver.resolve(lookupRequest('q1', 6193))).toEqual({
      v: 1,
      id: 'q1',
      answer: { type: 'USERID', opsys: 'UNIX', userId: 'alice6193' },
      rule: 'owner',
    });
    expect(calls).toEqual([
      { url: 'http://embedded' + ROUTES.lookup, body: JSON.stringify(lookupRequest('q1', 6193)), signed: false },
    ]);
  });

  it('batches concurrent queries into one call of the batch route with answers in order', async () => {
    const calls: Call[] = [];
    const { resolver } = embeddedWithReports(policyApp(calls));
    const answers = await Promise.all([1, 2, 3, 4].map((port) => resolver.resolve(lookupRequest(`q${port}`, port))));
    expect(answers.map((a) => (a.answer.type === 'USERID' ? a.answer.userId : a.answer.error))).toEqual([
      'alice1',
      'alice2',
      'alice3',
      'alice4',
    ]);
    expect(answers.map((a) => a.id)).toEqual(['q1', 'q2', 'q3', 'q4']);
    expect(calls.map((c) => c.url)).toEqual(['http://embedded' + ROUTES.batch]);
  });

  it('answers the fallback when the app throws', async () => {
    const { resolver, causes } = embeddedWithReports({
      fetch: () => {
        throw new Error('policy store missing');
      },
    });
    await expectFallback(resolver, 'a');
    expect(causes).toEqual(['app_error']);
  });

  it('answers the fallback within the deadline when the app never answers', async () => {
    const { resolver, causes } = embeddedWithReports({ fetch: () => new Promise<Response>(() => undefined) });
    await expectFallback(resolver, 'a');
    expect(causes).toEqual(['timeout']);
  });

  it('answers the fallback when the app answers a user id with CR in it', async () => {
    const calls: Call[] = [];
    const { resolver, causes } = embeddedWithReports(
      policyApp(calls, (request) => ({
        v: 1,
        id: request.id,
        answer: { type: 'USERID', opsys: 'UNIX', userId: 'root\r' },
        rule: 'r',
      })),
    );
    await expectFallback(resolver, 'a');
    expect(causes).toEqual(['invalid_answer']);
  });

  it('answers the fallback when the app answers with another id', async () => {
    const { resolver, causes } = embeddedWithReports(
      policyApp([], (request) => ({ ...decide(request), id: 'someone-else' })),
    );
    await expectFallback(resolver, 'a');
    expect(causes).toEqual(['id_mismatch']);
  });

  it('answers the fallback when the app answers an error status', async () => {
    const app = new Hono();
    app.post(ROUTES.lookup, (c) => c.json({ error: { code: 'bad_request', message: 'nope' } }, 400));
    const { resolver, causes } = embeddedWithReports(app);
    await expectFallback(resolver, 'a');
    expect(causes).toEqual(['http_status']);
  });

  it('answers the fallback when the app answers a body over the size cap', async () => {
    const app = new Hono();
    app.post(ROUTES.lookup, (c) => c.text('x'.repeat(MAX_BODY_OCTETS + 1)));
    const { resolver, causes } = embeddedWithReports(app);
    await expectFallback(resolver, 'a');
    expect(causes).toEqual(['body_too_large']);
  });

  it('answers the fallback when the app streams a body past the size cap without a length', async () => {
    const chunk = new Uint8Array(64 * 1024);
    let pulled = 0;
    const app = {
      fetch: () =>
        new Response(
          new ReadableStream<Uint8Array>({
            pull(controller) {
              pulled++;
              controller.enqueue(chunk);
            },
          }),
        ),
    };
    const { resolver, causes } = embeddedWithReports(app);
    await expectFallback(resolver, 'a');
    expect(causes).toEqual(['body_too_large']);
    expect(pulled).toBeLessThan(100);
  });

  it('answers from the app again after it recovers from failing', async () => {
    let broken = true;
    const healthy = policyApp([]);
    const recoveries: number[] = [];
    const resolver = closedAfterTest(
      createEmbeddedResolver({
        app: { fetch: (request) => (broken ? new Response('oops', { status: 503 }) : healthy.fetch(request)) },
        deadlineMs: DEADLINE_MS,
        onRecover: (failures) => recoveries.push(failures),
      }),
    );
    await expectFallback(resolver, 'a');
    broken = false;
    expect((await resolver.resolve(lookupRequest('b'))).rule).toBe('owner');
    expect(recoveries).toEqual([1]);
  });

  it('batches many concurrent queries into calls of at most maxBatch queries each', async () => {
    const calls: Call[] = [];
    const causes: FailureCause[] = [];
    // A generous deadline: this test is about batching, not about how loaded the machine is.
    const resolver = closedAfterTest(
      createEmbeddedResolver({
        app: policyApp(calls),
        deadlineMs: 20_000,
        maxBatch: 100,
        onFailure: (cause) => causes.push(cause),
      }),
    );
    const total = 2000;
    const pending = Array.from({ length: total }, (_, i) => resolver.resolve(lookupRequest(`m${i}`, (i % 65535) + 1)));
    const answers = await Promise.all(pending);
    expect(answers.every((a, i) => a.id === `m${i}` && a.rule === 'owner')).toBe(true);
    expect(causes).toEqual([]);
    expect(calls.length).toBe(total / 100);
  });
});
