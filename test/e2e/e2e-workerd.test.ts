/**
 * End to end, gateway -> the policy worker in a real workerd, started the way
 * users run it: `wrangler dev` (worker/workers-entry.ts, wrangler.toml) with
 * the policy seeded into the local KV namespace by `wrangler kv key put`, the
 * audit schema applied to the local D1 by `wrangler d1 migrations apply`, the
 * signing secret and an admin token passed with --var, and local state in a
 * temporary directory. `identgate serve --upstream` answers from the seeded
 * policy and its decisions reach the audit trail (GET /v1/audit); the worker
 * refuses unsigned and replayed requests with 401 and a JSON error. wrangler
 * and its workerd children run in their own process group, started once for
 * this file (startup takes seconds) and killed as a group afterwards.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdentClient } from '../../gateway/client/client.js';
import { signatureHeaders } from '../../protocol/signature.js';
import { ROUTES } from '../../protocol/wire.js';
import { ROOT } from '../helpers/cli.js';
import { freePort, onCleanup, startServe, tempFiles, type TempFiles } from './harness.js';
import { lookupRequest } from '../helpers/wire.js';

const WRANGLER = join(dirname(createRequire(import.meta.url).resolve('wrangler/package.json')), 'bin', 'wrangler.js');
const WRANGLER_ENV = {
  ...process.env,
  CLOUDFLARE_CF_FETCH_ENABLED: 'false',
  WRANGLER_SEND_METRICS: 'false',
  NO_COLOR: '1',
  CI: '1',
};
const ADMIN_TOKEN = 'e2e-workerd-admin-token-4f1a9c2e7b';
/** wrangler dev bundles with esbuild and boots workerd: allow for a busy machine. */
const WRANGLER_START_TIMEOUT_MS = 60_000;

const POLICY = {
  version: 1,
  description: 'seeded into the local KV namespace by e2e-workerd.test.ts',
  rules: [
    { name: 'seeded-fixed', match: { serverPort: 400, clientPort: 500 }, action: { userId: 'seeded-in-kv' } },
    {
      name: 'seeded-gateway',
      match: { gateway: 'e2e-workerd', serverPort: 401 },
      action: { error: 'X-SEEDED-GATEWAY' },
    },
    { name: 'seeded-names', match: { ownerKnown: true }, action: { reveal: 'name' } },
  ],
  default: { action: { error: 'X-SEEDED-DEFAULT' } },
};

/** Runs a wrangler command to completion. */
function wrangler(args: string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRANGLER, ...args], {
      cwd: ROOT,
      env: WRANGLER_ENV,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(output);
      else reject(new Error(`wrangler ${args.join(' ')} exited with ${code}:\n${output}`));
    });
  });
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

/**
 * Stops wrangler and everything it started (workerd, esbuild): they share its
 * process group. SIGTERM first, so wrangler removes its /tmp/miniflare-* state,
 * then SIGKILL for anything still there.
 */
async function killGroup(child: ChildProcess): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const closed = once(child, 'close');
    signalGroup(child, 'SIGTERM');
    await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 10_000).unref())]);
  }
  signalGroup(child, 'SIGKILL');
}

interface WranglerDev {
  child: ChildProcess;
  url: string;
  output(): string;
}

/** Starts `wrangler dev` in its own process group and resolves once GET /healthz answers. */
async function startWranglerDev(files: TempFiles, persistTo: string): Promise<WranglerDev> {
  const [port, inspectorPort] = [await freePort(), await freePort()];
  const args = [
    'dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    '--inspector-port',
    String(inspectorPort),
    '--persist-to',
    persistTo,
  ];
  args.push(
    '--var',
    `IDENTGATE_SECRETS:${files.secretValue}`,
    '--var',
    `IDENTGATE_ADMIN_TOKENS:${ADMIN_TOKEN}`,
    '--show-interactive-dev-session=false',
  );
  const child = spawn(process.execPath, [WRANGLER, ...args], {
    cwd: ROOT,
    env: WRANGLER_ENV,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // If the test runner dies, do not leave workerd behind.
  const onExit = () => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // Already gone.
    }
  };
  process.once('exit', onExit);
  child.once('close', () => process.off('exit', onExit));
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const url = `http://127.0.0.1:${port}`;
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`wrangler dev not ready within ${WRANGLER_START_TIMEOUT_MS} ms:\n${output}`)),
      WRANGLER_START_TIMEOUT_MS,
    );
    const check = () => {
      if (!output.includes(`Ready on ${url}`)) return;
      clearTimeout(timer);
      resolve();
    };
    child.stdout!.on('data', check);
    child.stderr!.on('data', check);
    child.once('close', (code) => {
      clearTimeout(timer);
      reject(new Error(`wrangler dev exited with ${code}:\n${output}`));
    });
  });
  try {
    await ready;
    // "Ready" is printed when workerd listens; the first request may still be loading the script.
    const health = await fetch(`${url}${ROUTES.health}`, { signal: AbortSignal.timeout(WRANGLER_START_TIMEOUT_MS) });
    const body = await health.json();
    if (health.status !== 200) throw new Error(`GET /healthz answered ${health.status}: ${JSON.stringify(body)}`);
    // With the AUDIT binding (wrangler.toml) it also tells what this isolate recorded.
    expect(body).toMatchObject({ status: 'ok', mode: 'service', configured: true });
  } catch (error) {
    await killGroup(child);
    throw error;
  }
  return { child, url, output: () => output };
}

describe('identgate serve --upstream -> wrangler dev (workerd)', () => {
  let files: TempFiles;
  let dev: WranglerDev | undefined;

  beforeAll(async () => {
    files = tempFiles({ removeAfterTest: false });
    const persistTo = join(files.dir, 'wrangler-state');
    await wrangler([
      'kv',
      'key',
      'put',
      'policy',
      '--binding',
      'POLICY',
      '--local',
      '--persist-to',
      persistTo,
      '--path',
      files.policy(POLICY),
    ]);
    // The same local state wrangler dev then serves: its D1 (AUDIT) gets worker/migrations/, as on deploy.
    await wrangler(['d1', 'migrations', 'apply', 'AUDIT', '--local', '--persist-to', persistTo]);
    dev = await startWranglerDev(files, persistTo);
  }, WRANGLER_START_TIMEOUT_MS * 2);

  afterAll(async () => {
    if (dev) await killGroup(dev.child);
    files?.remove();
  }, 30_000);

  it('answers ident queries from the policy seeded in the local KV namespace', async () => {
    const gateway = await startServe([
      '--upstream',
      dev!.url,
      '--secret-file',
      files.secret(),
      '--gateway-name',
      'e2e-workerd',
      '--owner-lookup',
      'off',
      '--deadline',
      '10000',
    ]);
    const client = new IdentClient({ hostname: '127.0.0.1', port: gateway.port, timeout: 20_000 });
    onCleanup(() => client.close());
    const [fixed, byGateway, byDefault] = await Promise.all([
      client.ident(400, 500),
      client.ident(401, 500),
      client.ident(402, 500),
    ]);
    expect(fixed.raw).toBe('400, 500 : USERID : OTHER : seeded-in-kv');
    expect(byGateway.raw).toBe('401, 500 : ERROR : X-SEEDED-GATEWAY');
    expect(byDefault.raw).toBe('402, 500 : ERROR : X-SEEDED-DEFAULT');
  });

  it('records every decision in the local D1, found by GET /v1/audit', async () => {
    const gateway = await startServe([
      '--upstream',
      dev!.url,
      '--secret-file',
      files.secret(),
      '--gateway-name',
      'e2e-workerd-audit',
      '--owner-lookup',
      'off',
      '--deadline',
      '10000',
    ]);
    const client = new IdentClient({ hostname: '127.0.0.1', port: gateway.port, timeout: 20_000 });
    onCleanup(() => client.close());
    const replies = await Promise.all([client.ident(400, 500), client.ident(403, 501), client.ident(404, 502)]);
    expect(replies.map((reply) => reply.raw)).toEqual([
      '400, 500 : USERID : OTHER : seeded-in-kv',
      '403, 501 : ERROR : X-SEEDED-DEFAULT',
      '404, 502 : ERROR : X-SEEDED-DEFAULT',
    ]);
    // Written after the responses (ctx.waitUntil): look until all three are there, for a bounded time.
    const deadline = Date.now() + 20_000;
    let records: { query: { serverPort: number }; answer: unknown; rule: string; gateway: string }[] = [];
    while (records.length < 3 && Date.now() < deadline) {
      const response = await fetch(`${dev!.url}${ROUTES.audit}?gateway=e2e-workerd-audit`, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        signal: AbortSignal.timeout(10_000),
      });
      expect(response.status).toBe(200);
      ({ records } = (await response.json()) as { records: typeof records });
      if (records.length < 3) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(records.map((record) => [record.query.serverPort, record.rule, record.answer]).sort()).toEqual([
      [400, 'seeded-fixed', { type: 'USERID', opsys: 'OTHER', userId: 'seeded-in-kv' }],
      [403, 'default', { type: 'ERROR', error: 'X-SEEDED-DEFAULT' }],
      [404, 'default', { type: 'ERROR', error: 'X-SEEDED-DEFAULT' }],
    ]);
    // Nothing was dropped for want of a schema.
    const health = (await (await fetch(`${dev!.url}${ROUTES.health}`)).json()) as { audit: { dropped: number } };
    expect(health.audit.dropped).toBe(0);
  });

  it('refuses an unsigned POST /v1/ident with 401 and a JSON error', async () => {
    const response = await fetch(`${dev!.url}${ROUTES.lookup}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(lookupRequest('unsigned-1')),
    });
    expect(response.status).toBe(401);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await response.json()).toEqual({ error: { code: 'missing_signature', message: expect.any(String) } });
  });

  it('answers a signed lookup once and refuses the same signed request replayed with 401 replayed_signature', async () => {
    const body = JSON.stringify(lookupRequest('replay-1'));
    const headers = {
      'content-type': 'application/json',
      ...(await signatureHeaders([files.secretValue], 'POST', ROUTES.lookup, body)),
    };
    const first = await fetch(`${dev!.url}${ROUTES.lookup}`, { method: 'POST', headers, body });
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({
      v: 1,
      id: 'replay-1',
      answer: { type: 'USERID', opsys: 'UNIX', userId: 'alice' },
      rule: 'seeded-names',
    });
    const replayed = await fetch(`${dev!.url}${ROUTES.lookup}`, { method: 'POST', headers, body });
    expect(replayed.status).toBe(401);
    expect(await replayed.json()).toEqual({ error: { code: 'replayed_signature', message: expect.any(String) } });
  });
});
