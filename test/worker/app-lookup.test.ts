import { describe, expect, it } from 'vitest';
import { createApp } from '../../worker/app.js';
import { createMemoryStore } from '../../worker/stores/memory.js';
import { parsePolicy } from '../../worker/policy/index.js';
import {
  BatchAnswerSchema,
  LookupAnswerSchema,
  MAX_BATCH,
  MAX_BODY_OCTETS,
  WireErrorSchema,
} from '../../protocol/wire.js';
import { TEST_POLICY, lookupRequest, signedRequest } from './workerd/fixtures.js';

function embeddedApp(log: (entry: Record<string, unknown>) => void = () => {}) {
  return createApp({ store: createMemoryStore(parsePolicy(TEST_POLICY)), secrets: [], mode: 'embedded', log });
}

async function post(app: ReturnType<typeof embeddedApp>, path: string, body: string): Promise<Response> {
  return app.fetch(await signedRequest([], path, body));
}

async function errorOf(res: Response): Promise<{ code: string; message: string }> {
  return WireErrorSchema.parse(await res.json()).error;
}

describe('POST /v1/ident in embedded mode', () => {
  it('answers the owner name when the querier matches the lan rule', async () => {
    const res = await post(embeddedApp(), '/v1/ident', JSON.stringify(lookupRequest({ id: 'q-7' })));
    expect(res.status).toBe(200);
    const answer = LookupAnswerSchema.parse(await res.json());
    expect(answer).toMatchObject({ v: 1, id: 'q-7', rule: 'lan', answer: { type: 'USERID', userId: 'alice' } });
  });

  it('answers the default when no rule matches', async () => {
    const res = await post(embeddedApp(), '/v1/ident', JSON.stringify(lookupRequest({ remoteAddress: '203.0.113.9' })));
    expect(LookupAnswerSchema.parse(await res.json())).toMatchObject({
      rule: 'default',
      answer: { type: 'ERROR', error: 'NO-USER' },
    });
  });

  it('needs no signature', async () => {
    const app = embeddedApp();
    const res = await app.request('/v1/ident', { method: 'POST', body: JSON.stringify(lookupRequest()) });
    expect(res.status).toBe(200);
  });

  it('logs the decision with the query facts and nothing secret', async () => {
    const lines: Record<string, unknown>[] = [];
    await post(
      embeddedApp((entry) => lines.push(entry)),
      '/v1/ident',
      JSON.stringify(lookupRequest({ id: 'q-log', uid: 0 })),
    );
    const entries = lines.filter((line) => line.msg === 'decisions');
    expect(entries).toEqual([
      expect.objectContaining({ count: 1, policyVersion: expect.stringMatching(/^[0-9a-f]{16}$/) }),
    ]);
    expect(entries[0]!.decisions).toEqual([
      expect.objectContaining({
        id: 'q-log',
        gateway: 'test-gw',
        rule: 'hide-root',
        answer: { type: 'ERROR', error: 'HIDDEN-USER' },
        serverPort: 6193,
        clientPort: 23,
        localAddress: '198.51.100.1',
        remoteAddress: '192.0.2.7',
      }),
    ]);
  });

  it('refuses a body that is not JSON with invalid_json', async () => {
    const res = await post(embeddedApp(), '/v1/ident', '{"v":1,');
    expect(res.status).toBe(400);
    expect((await errorOf(res)).code).toBe('invalid_json');
  });

  it('refuses a request breaking the schema with invalid_request naming the field', async () => {
    const bad = { ...lookupRequest(), query: { serverPort: 0, clientPort: 23 } };
    const res = await post(embeddedApp(), '/v1/ident', JSON.stringify(bad));
    expect(res.status).toBe(400);
    const error = await errorOf(res);
    expect(error.code).toBe('invalid_request');
    expect(error.message).toContain('query.serverPort');
  });

  it('accepts a request carrying a claim, and one whose claim is null', async () => {
    const claimed = lookupRequest({ id: 'q-claimed', claim: { user: 'bob', ident: 'bob' } });
    for (const request of [claimed, lookupRequest({ id: 'q-unclaimed', claim: null })]) {
      const res = await post(embeddedApp(), '/v1/ident', JSON.stringify(request));
      expect(res.status).toBe(200);
      expect(LookupAnswerSchema.parse(await res.json())).toMatchObject({ id: request.id, rule: 'lan' });
    }
  });

  it('refuses a claim whose ident breaks the RFC 1413 user id rules, naming claim.ident', async () => {
    const bad = lookupRequest({ claim: { user: 'bob', ident: 'bob\r\n6193, 23 : USERID : UNIX : root' } });
    const res = await post(embeddedApp(), '/v1/ident', JSON.stringify(bad));
    expect(res.status).toBe(400);
    const error = await errorOf(res);
    expect(error.code).toBe('invalid_request');
    expect(error.message).toContain('claim.ident');
  });

  it('accepts a request carrying nat and container facts, or null ones', async () => {
    const requests = [
      lookupRequest({
        id: 'q-nat',
        owner: null,
        nat: { innerAddress: '10.77.0.2', innerPort: 40002 },
        container: { name: 'irc-bouncer', labels: { 'identgate.ident': 'znc' } },
      }),
      lookupRequest({ id: 'q-no-nat', owner: null, nat: null, container: null }),
    ];
    for (const request of requests) {
      const res = await post(embeddedApp(), '/v1/ident', JSON.stringify(request));
      expect(res.status).toBe(200);
      expect(LookupAnswerSchema.parse(await res.json())).toMatchObject({ id: request.id });
    }
  });

  it('refuses nat and container facts that break the wire limits, naming the field', async () => {
    const labels = Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`l${i}`, 'x']));
    const cases: [object, string][] = [
      [{ nat: { innerAddress: '10.77.0.2', innerPort: 0 } }, 'nat.innerPort'],
      [{ nat: { innerAddress: '10.77.0.2', innerPort: 1, uid: 0 } }, 'nat'],
      [{ container: { name: 'x', labels } }, 'container.labels'],
      [{ container: { name: '', labels: {} } }, 'container.name'],
    ];
    for (const [facts, field] of cases) {
      const res = await post(embeddedApp(), '/v1/ident', JSON.stringify({ ...lookupRequest(), ...facts }));
      expect(res.status, field).toBe(400);
      expect((await errorOf(res)).message, field).toContain(field);
    }
  });

  it('refuses unknown fields in a claim', async () => {
    const bad = { ...lookupRequest(), claim: { user: 'bob', uid: 0 } };
    const res = await post(embeddedApp(), '/v1/ident', JSON.stringify(bad));
    expect(res.status).toBe(400);
    expect((await errorOf(res)).message).toContain('claim');
  });

  it('refuses unknown fields', async () => {
    const res = await post(embeddedApp(), '/v1/ident', JSON.stringify({ ...lookupRequest(), extra: true }));
    expect((await errorOf(res)).code).toBe('invalid_request');
  });

  it('refuses a body whose Content-Length exceeds the limit without reading it', async () => {
    const app = embeddedApp();
    const body = new ReadableStream({ pull: () => undefined }); // never delivers: only the header can refuse it
    const res = await app.fetch(
      new Request('http://worker/v1/ident', {
        method: 'POST',
        body,
        headers: { 'content-length': String(MAX_BODY_OCTETS + 1) },
        duplex: 'half',
      } as RequestInit),
    );
    expect(res.status).toBe(413);
    expect((await errorOf(res)).code).toBe('body_too_large');
  });

  it('refuses a streamed body that grows past the limit', async () => {
    const chunk = new Uint8Array(64 * 1024).fill(0x20);
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        sent += chunk.byteLength;
        controller.enqueue(chunk);
        if (sent > MAX_BODY_OCTETS * 2) controller.close();
      },
    });
    const res = await embeddedApp().fetch(
      new Request('http://worker/v1/ident', { method: 'POST', body, duplex: 'half' } as RequestInit),
    );
    expect(res.status).toBe(413);
    expect((await errorOf(res)).code).toBe('body_too_large');
    expect(sent).toBeLessThanOrEqual(MAX_BODY_OCTETS + chunk.byteLength * 2);
  });
});

describe('POST /v1/ident/batch', () => {
  it('answers every request in the order given', async () => {
    const requests = [
      lookupRequest({ id: 'a', uid: 0 }),
      lookupRequest({ id: 'b', remoteAddress: '203.0.113.1' }),
      lookupRequest({ id: 'c', userName: 'carol' }),
    ];
    const res = await post(embeddedApp(), '/v1/ident/batch', JSON.stringify({ v: 1, requests }));
    expect(res.status).toBe(200);
    const { answers } = BatchAnswerSchema.parse(await res.json());
    expect(answers.map((answer) => [answer.id, answer.rule])).toEqual([
      ['a', 'hide-root'],
      ['b', 'default'],
      ['c', 'lan'],
    ]);
    expect(answers[2]?.answer).toMatchObject({ type: 'USERID', userId: 'carol' });
  });

  it('refuses a batch larger than MAX_BATCH', async () => {
    const requests = Array.from({ length: MAX_BATCH + 1 }, (_, i) => lookupRequest({ id: `q${i}` }));
    const res = await post(embeddedApp(), '/v1/ident/batch', JSON.stringify({ v: 1, requests }));
    expect(res.status).toBe(400);
    expect((await errorOf(res)).code).toBe('invalid_request');
  });

  it('refuses an empty batch', async () => {
    const res = await post(embeddedApp(), '/v1/ident/batch', JSON.stringify({ v: 1, requests: [] }));
    expect((await errorOf(res)).code).toBe('invalid_request');
  });
});

describe('routing', () => {
  it('answers 404 not_found as JSON for an unknown path', async () => {
    const res = await embeddedApp().request('/v2/ident', { method: 'POST', body: '{}' });
    expect(res.status).toBe(404);
    expect((await errorOf(res)).code).toBe('not_found');
  });

  it('answers 405 method_not_allowed with an Allow header for a wrong method', async () => {
    const res = await embeddedApp().request('/v1/ident');
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('POST');
    expect((await errorOf(res)).code).toBe('method_not_allowed');
  });

  it('lists every method of a route in Allow, HEAD with GET', async () => {
    const res = await embeddedApp().request('/v1/policy', { method: 'DELETE' });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET, HEAD, PUT');
    expect(await errorOf(res)).toEqual({
      code: 'method_not_allowed',
      message: 'DELETE is not allowed on /v1/policy; use GET, HEAD, PUT',
    });
  });

  it('answers /healthz', async () => {
    const res = await embeddedApp().request('/healthz');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok', mode: 'embedded', configured: true });
  });

  it('answers 503 policy_unavailable when the store has no policy', async () => {
    const { PolicyStoreError } = await import('../../worker/stores/store.js');
    const app = createApp({
      store: {
        current: () => Promise.reject(new PolicyStoreError('broken')),
        replace: () => Promise.reject(new Error('no')),
      },
      secrets: [],
      mode: 'embedded',
    });
    const res = await app.fetch(await signedRequest([], '/v1/ident', JSON.stringify(lookupRequest())));
    expect(res.status).toBe(503);
    expect((await errorOf(res)).code).toBe('policy_unavailable');
  });
});
