import { describe, expect, it } from 'vitest';
import { createApp } from '../../worker/app.js';
import { createMemoryStore } from '../../worker/stores/memory.js';
import { parsePolicy } from '../../worker/policy/index.js';
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, type HmacSha256 } from '../../protocol/signature.js';
import { nodeHmacSha256 } from '../../worker/node.js';
import { WireErrorSchema } from '../../protocol/wire.js';
import { TEST_POLICY, lookupRequest, signedRequest } from './workerd/fixtures.js';

const NOW_MS = 1_750_000_000_000;
const NOW_S = NOW_MS / 1000;

// Every check holds with WebCrypto's HMAC (Workers) and with node:crypto's (the Node worker).
const HMACS: readonly [string, HmacSha256 | undefined][] = [
  ['WebCrypto', undefined],
  ['node:crypto', nodeHmacSha256],
];

async function codeOf(res: Response): Promise<string> {
  return WireErrorSchema.parse(await res.json()).error.code;
}

const body = (id = 'q-1') => JSON.stringify(lookupRequest({ id }));

describe.each(HMACS)('signed lookups in service mode (%s HMAC)', (_name, hmac) => {
  function serviceApp(
    secrets: readonly string[] | (() => readonly string[]),
    log: (entry: Record<string, unknown>) => void = () => {},
  ) {
    return createApp({
      store: createMemoryStore(parsePolicy(TEST_POLICY)),
      secrets,
      mode: 'service',
      now: () => NOW_MS,
      log,
      ...(hmac && { hmac }),
    });
  }

  it('accepts a request signed with the current secret', async () => {
    const res = await serviceApp(['new']).fetch(await signedRequest(['new'], '/v1/ident', body(), NOW_S));
    expect(res.status).toBe(200);
  });

  it('accepts a request signed with an older secret still listed (rotation)', async () => {
    const res = await serviceApp(['new', 'old']).fetch(await signedRequest(['old'], '/v1/ident', body(), NOW_S));
    expect(res.status).toBe(200);
  });

  it('refuses a request without signature headers with missing_signature', async () => {
    const res = await serviceApp(['new']).fetch(await signedRequest([], '/v1/ident', body()));
    expect(res.status).toBe(401);
    expect(await codeOf(res)).toBe('missing_signature');
  });

  it('refuses a signature that is not v1=<hex> with malformed_signature', async () => {
    const request = await signedRequest(['new'], '/v1/ident', body(), NOW_S);
    request.headers.set(SIGNATURE_HEADER, 'v1=zz');
    const res = await serviceApp(['new']).fetch(request);
    expect(res.status).toBe(401);
    expect(await codeOf(res)).toBe('malformed_signature');
  });

  it('refuses a timestamp outside the skew window with stale_signature', async () => {
    const res = await serviceApp(['new']).fetch(await signedRequest(['new'], '/v1/ident', body(), NOW_S - 61));
    expect(res.status).toBe(401);
    expect(await codeOf(res)).toBe('stale_signature');
  });

  it('refuses a request signed with an unknown secret with bad_signature', async () => {
    const res = await serviceApp(['new']).fetch(await signedRequest(['retired'], '/v1/ident', body(), NOW_S));
    expect(res.status).toBe(401);
    expect(await codeOf(res)).toBe('bad_signature');
  });

  it('refuses a body changed after signing with bad_signature', async () => {
    const signed = await signedRequest(['new'], '/v1/ident', body('q-1'), NOW_S);
    const tampered = new Request(signed.url, { method: 'POST', headers: signed.headers, body: body('q-2') });
    const res = await serviceApp(['new']).fetch(tampered);
    expect(await codeOf(res)).toBe('bad_signature');
  });

  it('checks the signature before parsing the body', async () => {
    const res = await serviceApp(['new']).fetch(await signedRequest(['wrong'], '/v1/ident', 'not json', NOW_S));
    expect(await codeOf(res)).toBe('bad_signature');
  });

  it('refuses the same signed request a second time with replayed_signature', async () => {
    const app = serviceApp(['new']);
    const first = await signedRequest(['new'], '/v1/ident', body(), NOW_S);
    const again = first.clone();
    expect((await app.fetch(first)).status).toBe(200);
    const res = await app.fetch(again);
    expect(res.status).toBe(401);
    expect(await codeOf(res)).toBe('replayed_signature');
  });

  it('signs batches over their own path', async () => {
    const batch = JSON.stringify({ v: 1, requests: [lookupRequest()] });
    const app = serviceApp(['new']);
    expect((await app.fetch(await signedRequest(['new'], '/v1/ident/batch', batch, NOW_S))).status).toBe(200);
    const signedForOtherPath = await signedRequest(['new'], '/v1/ident', batch, NOW_S);
    const moved = new Request('http://worker/v1/ident/batch', {
      method: 'POST',
      headers: signedForOtherPath.headers,
      body: batch,
    });
    expect(await codeOf(await app.fetch(moved))).toBe('bad_signature');
  });

  it('answers 503 not_configured rather than running open when no secret is configured', async () => {
    const res = await serviceApp([]).fetch(await signedRequest([], '/v1/ident', body()));
    expect(res.status).toBe(503);
    expect(await codeOf(res)).toBe('not_configured');
  });

  it('asks a secrets function on every request, so secrets can change without a restart', async () => {
    let secrets = ['first'];
    const app = serviceApp(() => secrets);
    expect((await app.fetch(await signedRequest(['first'], '/v1/ident', body('a'), NOW_S))).status).toBe(200);
    secrets = ['second'];
    expect((await app.fetch(await signedRequest(['second'], '/v1/ident', body('b'), NOW_S))).status).toBe(200);
    expect(await codeOf(await app.fetch(await signedRequest(['first'], '/v1/ident', body('c'), NOW_S)))).toBe(
      'bad_signature',
    );
  });

  it('never logs secrets or signatures', async () => {
    const lines: string[] = [];
    const app = serviceApp(['very-secret-value'], (entry) => lines.push(JSON.stringify(entry)));
    const request = await signedRequest(['very-secret-value'], '/v1/ident', body(), NOW_S);
    const signature = request.headers.get(SIGNATURE_HEADER) ?? '';
    await app.fetch(request.clone());
    await app.fetch(request);
    await app.fetch(await signedRequest(['wrong'], '/v1/ident', body(), NOW_S));
    expect(lines.length).toBeGreaterThan(0);
    const text = lines.join('\n');
    expect(text).not.toContain('very-secret-value');
    expect(text).not.toContain(signature.slice(3));
    expect(request.headers.get(TIMESTAMP_HEADER)).toBe(String(NOW_S));
  });
});
