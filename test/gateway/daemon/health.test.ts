/**
 * `identgate serve --metrics`: /healthz and /readyz as a load balancer or systemd's watchdog script reads them,
 * the start-up check of the policy worker, refused policy reloads (SIGHUP and a changed file) at warn and counted,
 * the policy version and INVALID-PORT answers in the metrics. Real processes, real HTTP, real files.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { connectRaw } from '../../helpers/raw-peer.js';
import { listeningPort } from '../../helpers/cli.js';
import { CLI, READY, startDaemon, type Daemon } from './process.js';

const SECRET = 'health-test-secret-2b7e9c4d1a6f3e8b';
const POLICY = { version: 1, rules: [], default: { action: { userId: 'first' } } };
const OTHER_POLICY = { version: 1, rules: [], default: { action: { userId: 'second' } } };

function tempFile(name: string, text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'identgate-health-')), name);
  writeFileSync(file, text, { mode: 0o600 });
  return file;
}

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

async function serve(args: string[]): Promise<{ daemon: Daemon; identPort: number; base: string }> {
  const daemon = await startDaemon(
    process.execPath,
    [CLI, 'serve', '--listen', '127.0.0.1:0', '--metrics', '127.0.0.1:0', '--owner-lookup', 'off', ...args],
    READY,
  );
  const serving = await daemon.logLine((line) => line.msg === 'identgate serving');
  return {
    daemon,
    identPort: listeningPort(daemon.stdout()),
    base: `http://127.0.0.1:${String(serving.metricsPort)}`,
  };
}

async function startWorker(secret: string): Promise<{ worker: Daemon; url: string }> {
  const worker = await startDaemon(
    process.execPath,
    [CLI, 'worker', '--listen', '127.0.0.1:0', '--secret-file', tempFile('secret', `${secret}\n`)],
    /listening on http:\/\/\S+\n/,
  );
  return { worker, url: /listening on (http:\/\/\S+)/.exec(worker.stdout())![1]! };
}

async function get(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** GET /readyz until its status is `status` (readiness re-asks the worker at most once a second); bounded. */
async function readyzUntil(base: string, status: number): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 8_000;
  for (;;) {
    const answer = await get(`${base}/readyz`);
    if (answer.status === status) return answer.body;
    if (Date.now() > deadline) throw new Error(`/readyz still ${answer.status}: ${JSON.stringify(answer.body)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function scrape(base: string): Promise<string> {
  const response = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(5_000) });
  return response.text();
}

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('/healthz and /readyz', () => {
  it('answer 200 for an embedded policy, naming what answers and where it listens', async () => {
    const { base, identPort } = await serve(['--policy', tempFile('policy.json', JSON.stringify(POLICY))]);
    expect(await get(`${base}/healthz`)).toEqual({ status: 200, body: { status: 'ok' } });
    const ready = await get(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({
      status: 'ready',
      checks: {
        listening: { ok: true, detail: `listening on 127.0.0.1:${identPort}` },
        policy: { ok: true, detail: expect.stringMatching(/^embedded policy .*policy\.json, version [0-9a-f]{16}$/) },
      },
    });
  });

  it('warn at start and answer 503 while the policy worker cannot be reached, 200 once it answers', async () => {
    const port = await closedPort();
    const { daemon, base } = await serve([
      '--upstream',
      `http://127.0.0.1:${port}`,
      '--secret-file',
      tempFile('secret', `${SECRET}\n`),
    ]);
    const warning = await daemon.logLine((line) => line.msg.startsWith('policy worker not usable at start'));
    expect(warning).toMatchObject({ level: 'warn', detail: expect.stringContaining('ECONNREFUSED') });
    expect(await get(`${base}/healthz`)).toEqual({ status: 200, body: { status: 'ok' } });
    const down = await get(`${base}/readyz`);
    expect(down.status).toBe(503);
    expect(down.body).toMatchObject({
      status: 'not ready',
      checks: { listening: { ok: true }, policy: { ok: false, detail: expect.stringContaining('ECONNREFUSED') } },
    });
    // The worker comes up on that very port.
    await startDaemon(
      process.execPath,
      [CLI, 'worker', '--listen', `127.0.0.1:${port}`, '--secret-file', tempFile('secret', `${SECRET}\n`)],
      /listening on http:\/\/\S+\n/,
    );
    expect(await readyzUntil(base, 200)).toMatchObject({ status: 'ready', checks: { policy: { ok: true } } });
  });

  it('say the worker is reachable at start, and answer 503 when it dies (no last-good policy)', async () => {
    const { worker, url } = await startWorker(SECRET);
    const { daemon, base } = await serve([
      '--upstream',
      url,
      '--secret-file',
      tempFile('secret', `${SECRET}\n`),
      '--stale-policy-max-age',
      '0',
    ]);
    expect(await daemon.logLine((line) => line.msg === 'policy worker reachable')).toMatchObject({ level: 'info' });
    expect((await get(`${base}/readyz`)).status).toBe(200);
    worker.child.kill('SIGKILL');
    await worker.exited;
    const body = await readyzUntil(base, 503);
    expect(body).toMatchObject({ checks: { policy: { ok: false, detail: expect.stringContaining('ECONNREFUSED') } } });
  });

  it('stay 200 when the worker dies while a last-good policy is held, naming its version', async () => {
    const { worker, url } = await startWorker(SECRET);
    const { daemon, base } = await serve(['--upstream', url, '--secret-file', tempFile('secret', `${SECRET}\n`)]);
    const updated = await daemon.logLine((line) => line.msg === 'last-good policy updated');
    const version = String(updated.version);
    expect(await scrape(base)).toContain(`identgate_policy_info{version="${version}"} 1`);
    worker.child.kill('SIGKILL');
    await worker.exited;
    // Once the worker's death is seen (a probe at most a second old), the detail says what answers instead.
    const deadline = Date.now() + 8_000;
    let policy: { ok?: boolean; detail?: string } = {};
    while (!String(policy.detail).includes('ECONNREFUSED') && Date.now() < deadline) {
      const answer = await get(`${base}/readyz`);
      expect(answer.status).toBe(200);
      policy = (answer.body.checks as Record<string, typeof policy>).policy!;
      if (!String(policy.detail).includes('ECONNREFUSED')) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(policy).toEqual({
      ok: true,
      detail: expect.stringMatching(
        new RegExp(`ECONNREFUSED.*; answering from the last-good policy ${version} \\(\\d+ s old\\)$`),
      ),
    });
  });

  it('answer 503 when the worker refuses this gateway’s signatures, though its health route answers', async () => {
    const { url } = await startWorker('another-secret-entirely-7c1d9e2f4a');
    const { base, identPort } = await serve(['--upstream', url, '--secret-file', tempFile('secret', `${SECRET}\n`)]);
    expect((await get(`${base}/readyz`)).status).toBe(200);
    const peer = await connectRaw(identPort);
    peer.write('1, 2\r\n');
    expect(await peer.lines(1)).toEqual(['1, 2 : ERROR : UNKNOWN-ERROR']);
    const body = await readyzUntil(base, 503);
    expect(body).toMatchObject({ checks: { policy: { ok: false, detail: expect.stringContaining('(auth)') } } });
  });

  it('are served by the primary of --workers 2 once both workers listen', async () => {
    const { base } = await serve(['--workers', '2', '--reply', 'x']);
    const ready = await get(`${base}/readyz`);
    expect(ready).toMatchObject({
      status: 200,
      body: { checks: { listening: { ok: true, detail: '2 gateway workers listening' } } },
    });
  });
});

describe('policy reloads', () => {
  it('a refused file on SIGHUP is a warning with the reasons, counted, and the last good policy answers', async () => {
    const file = tempFile('policy.json', JSON.stringify(POLICY));
    const { daemon, base, identPort } = await serve(['--policy', file]);
    const before = await scrape(base);
    const version = /identgate_policy_info\{version="([0-9a-f]{16})"\} 1/.exec(before)?.[1];
    expect(version).toBeDefined();
    expect(sample(before, 'identgate_policy_reloads_total{outcome="rejected"}')).toBe(0);

    await writeFile(file, JSON.stringify({ version: 1, rules: [{ name: 'broken' }], default: {} }));
    await daemon.logLine((line) => line.msg === 'policy_rejected');
    daemon.child.kill('SIGHUP');
    const refused = await daemon.logLine((line) => line.msg.startsWith('SIGHUP: policy refused'));
    expect(refused).toMatchObject({ level: 'warn', keptVersion: version, error: expect.stringContaining('rules[0]') });

    const after = await scrape(base);
    // One for the change to the file, one for the SIGHUP.
    expect(sample(after, 'identgate_policy_reloads_total{outcome="rejected"}')).toBe(2);
    expect(sample(after, `identgate_policy_info{version="${version}"}`)).toBe(1);
    const peer = await connectRaw(identPort);
    peer.write('1, 2\r\n');
    expect(await peer.lines(1)).toEqual(['1, 2 : USERID : OTHER : first']);
  });

  it('a good file on SIGHUP is taken, logged at info with its version, and shown in identgate_policy_info', async () => {
    const file = tempFile('policy.json', JSON.stringify(POLICY));
    const { daemon, base, identPort } = await serve(['--policy', file]);
    await writeFile(file, JSON.stringify(OTHER_POLICY));
    await daemon.logLine((line) => line.msg === 'policy_loaded' && line.source === file && line.version !== undefined);
    daemon.child.kill('SIGHUP');
    const line = await daemon.logLine((entry) => entry.msg.startsWith('SIGHUP: policy'));
    // The watcher took the new file first, so the SIGHUP found it unchanged.
    expect(line).toMatchObject({ level: 'info', msg: expect.stringMatching(/^SIGHUP: policy (loaded|unchanged) /) });
    const text = await scrape(base);
    expect(text).toContain(`identgate_policy_info{version="${String(line.version)}"} 1`);
    expect(text.match(/^identgate_policy_info\{/gm)).toHaveLength(1);
    const peer = await connectRaw(identPort);
    peer.write('1, 2\r\n');
    expect(await peer.lines(1)).toEqual(['1, 2 : USERID : OTHER : second']);
  });
});

describe('identgate_queries_total', () => {
  it('counts lines answered INVALID-PORT', async () => {
    const { base, identPort } = await serve(['--reply', 'x']);
    const peer = await connectRaw(identPort);
    peer.write('junk\r\n70000, 1\r\n1, 2\r\n');
    expect(await peer.lines(3)).toEqual([
      '0, 0 : ERROR : INVALID-PORT',
      '70000, 1 : ERROR : INVALID-PORT',
      '1, 2 : USERID : OTHER : x',
    ]);
    const text = await scrape(base);
    expect(sample(text, 'identgate_queries_total{answer="INVALID-PORT"}')).toBe(2);
    expect(sample(text, 'identgate_queries_total{answer="USERID"}')).toBe(1);
  });
});
