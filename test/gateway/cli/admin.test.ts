import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNodeWorker } from '../../../worker/node.js';
import { ROOT, runCli } from '../../helpers/cli.js';

const TOKEN = 'admin-token-for-the-cli-tests';
const EXAMPLE = join(ROOT, 'examples/policy.json');
let dir: string;
let worker: Awaited<ReturnType<typeof startNodeWorker>>;
let tokenFile: string;
let where: string[];

/** A file in the test directory holding `content`. */
function file(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'identgate-admin-'));
  const policyFile = file('worker-policy.json', readFileSync(EXAMPLE, 'utf8'));
  tokenFile = file('admin-token.txt', `${TOKEN}\n`);
  worker = await startNodeWorker({
    hostname: '127.0.0.1',
    port: 0,
    policyFile,
    secrets: ['a-gateway-secret-of-some-length'],
    adminTokens: [TOKEN],
  });
  where = ['--worker', worker.url, '--admin-token-file', tokenFile];
});

afterAll(async () => {
  await worker?.close();
  rmSync(dir, { recursive: true, force: true });
});

const INVALID = JSON.stringify({
  version: 2,
  rules: [{ name: 'a', match: { clientAdress: '10.0.0.0/8' }, action: { userId: 'x' } }],
  default: { action: { error: 'NO-SUCH' } },
});

describe('identgate policy check', () => {
  it('accepts a valid policy file, exit 0', async () => {
    const { code, stdout } = await runCli(['policy', 'check', EXAMPLE]);
    expect(stdout).toBe(`${EXAMPLE}: a valid policy\n`);
    expect(code).toBe(0);
  });

  it('prints every field error with the messages PUT /v1/policy answers, exit 1', async () => {
    const bad = file('bad.json', INVALID);
    const put = await fetch(new URL('/v1/policy', worker.url), {
      method: 'PUT',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: INVALID,
    });
    const { error } = (await put.json()) as { error: { code: string; message: string } };
    expect(error.code).toBe('invalid_policy');
    const { code, stderr } = await runCli(['policy', 'check', bad]);
    const lines = stderr.trimEnd().split('\n');
    expect(lines.every((line) => line.startsWith(`identgate: ${bad}: `))).toBe(true);
    expect(lines.map((line) => line.slice(`identgate: ${bad}: `.length)).join('; ')).toBe(error.message);
    expect(lines.length).toBeGreaterThan(2);
    expect(code).toBe(1);
  });

  it('reads a file that is not JSON as one error, exit 1', async () => {
    const { code, stderr } = await runCli(['policy', 'check', file('text.json', 'version: 1')]);
    expect(stderr).toMatch(/^identgate: .*text\.json: \(root\): not JSON: /);
    expect(code).toBe(1);
  });
});

describe('identgate policy get and put against a worker', () => {
  it('gets the policy, and puts the same document back (round trip), exit 0', async () => {
    const got = await runCli(['policy', 'get', ...where]);
    expect(got.code).toBe(0);
    const envelope = JSON.parse(got.stdout) as { v: number; version: string; policy: { rules: { name: string }[] } };
    expect(envelope.policy.rules[0]!.name).toBe('demo-400-500');
    const saved = file('saved.json', got.stdout);
    expect((await runCli(['policy', 'check', saved])).code).toBe(0);
    const put = await runCli(['policy', 'put', saved, ...where]);
    expect(put.stdout).toMatch(/^policy replaced: version \S+\n$/);
    expect(put.code).toBe(0);
  });

  it('refuses an invalid file before sending it, exit 1', async () => {
    const before = await runCli(['policy', 'get', ...where]);
    const { code, stderr } = await runCli(['policy', 'put', file('bad-put.json', INVALID), ...where]);
    expect(stderr).toMatch(/version: must be 1/);
    expect(code).toBe(1);
    expect(JSON.parse((await runCli(['policy', 'get', ...where])).stdout).version).toBe(
      JSON.parse(before.stdout).version,
    );
  });

  it('says what the worker answered to a wrong token, exit 2', async () => {
    const wrong = file('wrong-token.txt', 'not-the-admin-token-at-all\n');
    const { code, stderr } = await runCli(['policy', 'get', '--worker', worker.url, '--admin-token-file', wrong]);
    expect(stderr).toMatch(/^identgate: http:\/\/127\.0\.0\.1:\d+ answered 401 unauthorized: /);
    expect(code).toBe(2);
  });

  it('needs --admin-token-file with --worker, exit 2', async () => {
    const { code, stderr } = await runCli(['policy', 'get', '--worker', worker.url]);
    expect(stderr).toBe(
      'identgate: --worker needs --admin-token-file FILE (tokens are never taken from the command line)\n',
    );
    expect(code).toBe(2);
  });
});

describe('identgate explain', () => {
  it('gives the same rule and answer from the worker and from the policy file, listing what it assumed', async () => {
    const question = ['40000,6667', '--client-address', '192.0.2.7', '--owner-uid', '1000', '--owner-name', 'alice'];
    const [remote, local] = await Promise.all([
      runCli(['explain', ...question, ...where, '--json']),
      runCli(['explain', ...question, '--policy', EXAMPLE, '--json']),
    ]);
    expect(remote.code).toBe(0);
    expect(local.code).toBe(0);
    const fromWorker = JSON.parse(remote.stdout);
    const fromFile = JSON.parse(local.stdout);
    expect(fromFile.rule).toBe('irc-servers');
    expect(fromFile.answer.type).toBe('USERID');
    for (const field of ['rule', 'ruleIndex', 'skipped', 'skippedCount', 'assumed'])
      expect(fromFile[field], field).toEqual(fromWorker[field]);
    expect(fromFile.assumed).toEqual([
      'connection.localAddress',
      'connection.localPort',
      'connection.remotePort',
      'gateway',
    ]);
  });

  it('prints the deciding rule, the answer and the skipped rules as text', async () => {
    const { code, stdout } = await runCli(['explain', '400,500', '--policy', EXAMPLE]);
    expect(stdout).toBe(
      'rule: demo-400-500 (rules[0])\nanswer: USERID : OTHER : grimlock\nassumed: connection.localAddress, connection.localPort, connection.remoteAddress, connection.remotePort, gateway, owner\n',
    );
    expect(code).toBe(0);
  });

  it('needs exactly one of --worker and --policy, and SERVERPORT,CLIENTPORT, exit 2', async () => {
    const neither = await runCli(['explain', '1,2']);
    expect(neither.stderr).toBe(
      'identgate: identgate explain needs exactly one of --worker URL (with --admin-token-file) or --policy FILE\n',
    );
    expect(neither.code).toBe(2);
    const badPorts = await runCli(['explain', '1,99999', '--policy', EXAMPLE]);
    expect(badPorts.stderr).toBe(
      'identgate: identgate explain needs SERVERPORT,CLIENTPORT, each 1..65535 (e.g. 6667,40000), not "1,99999"\n',
    );
    expect(badPorts.code).toBe(2);
  });
});
