import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNodeWorker, type NodeWorker } from '../../worker/node.js';
import { FileStoreError } from '../../worker/stores/file.js';
import { signatureHeaders } from '../../protocol/signature.js';
import { type Claim, LookupAnswerSchema, WireErrorSchema } from '../../protocol/wire.js';
import { TEST_POLICY, lookupRequest } from './workerd/fixtures.js';

const OTHER_POLICY = { version: 1, rules: [], default: { action: { userId: 'anonymous' } } };

let dir: string;
let file: string;
let worker: NodeWorker | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'identgate-worker-'));
  file = join(dir, 'policy.json');
  await writeFile(file, JSON.stringify(TEST_POLICY));
});

afterEach(async () => {
  await worker?.close();
  worker = undefined;
  await rm(dir, { recursive: true, force: true });
});

async function start(): Promise<NodeWorker> {
  worker = await startNodeWorker({
    hostname: '127.0.0.1',
    port: 0,
    policyFile: file,
    secrets: ['s3cret'],
    adminTokens: ['admin'],
    watchPolicy: false,
  });
  return worker;
}

async function signedLookup(url: string, id: string, claim?: Claim): Promise<Response> {
  const body = JSON.stringify(lookupRequest({ id, ...(claim !== undefined && { claim }) }));
  return fetch(`${url}/v1/ident`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(await signatureHeaders(['s3cret'], 'POST', '/v1/ident', body)) },
    body,
  });
}

describe('startNodeWorker', () => {
  it('answers a signed lookup over real HTTP', async () => {
    const { url, port } = await start();
    expect(url).toBe(`http://127.0.0.1:${port}`);
    const res = await signedLookup(url, 'http-1');
    expect(res.status).toBe(200);
    expect(LookupAnswerSchema.parse(await res.json())).toMatchObject({
      id: 'http-1',
      rule: 'lan',
      answer: { type: 'USERID', userId: 'alice' },
    });
  });

  it('answers a signed lookup that carries a claim over real HTTP', async () => {
    const { url } = await start();
    const res = await signedLookup(url, 'http-claim', { user: 'bob' });
    expect(res.status).toBe(200);
    expect(LookupAnswerSchema.parse(await res.json())).toMatchObject({ id: 'http-claim', rule: 'lan' });
  });

  it("answers a claim rule and a forward rule's delegate over real HTTP", async () => {
    const { url } = await start();
    const post = async (request: object) => {
      const body = JSON.stringify(request);
      const headers = await signatureHeaders(['s3cret'], 'POST', '/v1/ident', body);
      const res = await fetch(`${url}/v1/ident`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body,
      });
      return LookupAnswerSchema.parse(await res.json());
    };
    const claimed = lookupRequest({ id: 'http-apps-1', serverPort: 7001, claim: { user: 'bob', ident: 'znc-bob' } });
    expect(await post(claimed)).toMatchObject({ rule: 'apps-claim', answer: { userId: 'znc-bob' } });
    expect(await post(lookupRequest({ id: 'http-apps-2', serverPort: 7002 }))).toMatchObject({
      rule: 'apps-forward',
      answer: { type: 'ERROR', error: 'HIDDEN-USER' },
      delegate: { kind: 'forward', host: '127.0.0.1', port: 9001 },
    });
  });

  it('refuses an unsigned lookup over HTTP with 401', async () => {
    const { url } = await start();
    const res = await fetch(`${url}/v1/ident`, { method: 'POST', body: JSON.stringify(lookupRequest()) });
    expect(res.status).toBe(401);
    expect(WireErrorSchema.parse(await res.json()).error.code).toBe('missing_signature');
  });

  it('writes a policy PUT through the admin API to the policy file', async () => {
    const { url } = await start();
    const res = await fetch(`${url}/v1/policy`, {
      method: 'PUT',
      headers: { authorization: 'Bearer admin' },
      body: JSON.stringify(OTHER_POLICY),
    });
    expect(res.status).toBe(200);
    expect(JSON.parse(await readFile(file, 'utf8'))).toMatchObject({ default: { action: { userId: 'anonymous' } } });
  });

  it('takes an edited policy file on reload()', async () => {
    const { url } = await start();
    await writeFile(file, JSON.stringify(OTHER_POLICY));
    expect(await worker?.reload()).toMatchObject({ outcome: 'loaded' });
    const res = await signedLookup(url, 'after-reload');
    expect(await res.json()).toMatchObject({ rule: 'default', answer: { type: 'USERID', userId: 'anonymous' } });
  });

  it('refuses a body over the limit by its Content-Length over HTTP', async () => {
    const { port } = await start();
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      let text = '';
      socket.setEncoding('latin1');
      socket.on('data', (chunk: string) => (text += chunk));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
      socket.write('POST /v1/ident HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 999999999\r\n\r\n{');
    });
    expect(reply.startsWith('HTTP/1.1 413')).toBe(true);
    expect(reply).toContain('"body_too_large"');
  });

  it('fails with a FileStoreError and listens on nothing when the policy file is missing', async () => {
    const error = await startNodeWorker({
      hostname: '127.0.0.1',
      port: 0,
      policyFile: join(dir, 'absent.json'),
      secrets: ['s'],
    }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(FileStoreError);
  });

  it('serves the default policy when started without a policy file', async () => {
    worker = await startNodeWorker({ hostname: '127.0.0.1', port: 0, secrets: ['s3cret'] });
    const res = await signedLookup(worker.url, 'default-1');
    expect(res.status).toBe(200);
    expect(LookupAnswerSchema.parse(await res.json()).id).toBe('default-1');
  });
});
