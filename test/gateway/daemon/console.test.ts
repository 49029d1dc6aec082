import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdentClient } from '../../../gateway/client/client.js';
import { ROOT, runCli, startCli } from '../../helpers/cli.js';

const TOKEN = 'serve-console-token-0123456789';

/** Starts `identgate serve --console` with `flags` and signs in: the ident port, the console's URL and the cookie. */
async function startConsole(dir: string, flags: string[]) {
  const gateway = await startCli(
    [
      'serve',
      '--listen',
      '127.0.0.1:0',
      '--policy',
      join(dir, 'policy.json'),
      '--owner-lookup',
      'off',
      ...flags,
      '--console',
      '127.0.0.1:0',
      '--admin-token-file',
      join(dir, 'token'),
    ],
    /listening on 127\.0\.0\.1:(\d+)/,
  );
  const identPort = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(gateway.stdout())![1]);
  await expect.poll(() => /console on (http:\/\/\S+)\/admin/.exec(gateway.stderr())?.[1]).toBeDefined();
  const base = /console on (http:\/\/\S+)\/admin/.exec(gateway.stderr())![1]!;
  const signIn = await fetch(`${base}/admin/sign-in`, {
    method: 'POST',
    redirect: 'manual',
    headers: { origin: base, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: TOKEN }),
  });
  expect(signIn.status).toBe(303);
  return { identPort, base, cookie: signIn.headers.get('set-cookie')!.split(';')[0]! };
}

describe('identgate serve --console', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'identgate-serve-console-'));
    await writeFile(join(dir, 'token'), `${TOKEN}\n`);
    await copyFile(join(ROOT, 'examples', 'policy.json'), join(dir, 'policy.json'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('serves the console and admin API for the embedded policy, refuses unsigned lookups, and a PUT changes the answers', async () => {
    const { identPort, base, cookie } = await startConsole(dir, []);
    const ask = async () => {
      const client = new IdentClient({ hostname: '127.0.0.1', port: identPort, timeout: 5_000 });
      try {
        return (await client.ident(400, 500)).raw;
      } finally {
        client.close();
      }
    };

    const page = await fetch(`${base}/admin/policy`, { headers: { cookie } });
    expect(await page.text()).toContain('demo-400-500');
    // Without --audit the overview says why it has no figures, rather than showing zeros.
    const overview = await (await fetch(`${base}/admin`, { headers: { cookie } })).text();
    expect(overview).toContain('Gateways seen and answers by rule are not shown: no audit database is configured');
    expect((await fetch(`${base}/admin/audit`, { headers: { cookie } })).status).toBe(503);

    const lookup = await fetch(`${base}/v1/ident`, { method: 'POST', body: '{}' });
    expect(lookup.status).toBe(503);

    expect(await ask()).toBe('400, 500 : USERID : OTHER : grimlock');
    const policy = JSON.parse(await readFile(join(dir, 'policy.json'), 'utf8'));
    policy.rules[0].action.userId = 'optimus';
    const put = await fetch(`${base}/v1/policy`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify(policy),
    });
    expect(put.status).toBe(200);
    expect(await ask()).toBe('400, 500 : USERID : OTHER : optimus');
  });

  it('with --audit, shows the embedded gateway’s own decisions on the audit and gateways pages', async () => {
    const flags = ['--gateway-name', 'embedded1', '--audit', join(dir, 'audit.db')];
    const { identPort, base, cookie } = await startConsole(dir, flags);
    const client = new IdentClient({ hostname: '127.0.0.1', port: identPort, timeout: 5_000 });
    try {
      await client.ident(401, 501);
    } finally {
      client.close();
    }
    const audit = () => fetch(`${base}/admin/audit?serverPort=401`, { headers: { cookie } }).then((r) => r.text());
    // The decision is written shortly after the answer (the recorder gathers a batch).
    await expect.poll(audit).toContain('1 record on this page');
    expect(await audit()).toMatch(/<td>embedded1<\/td><td>401, 501<\/td>.*<td>unsigned<\/td>/);
    const gateways = await (await fetch(`${base}/admin/gateways`, { headers: { cookie } })).text();
    expect(gateways).toMatch(/<td>embedded1<\/td><td>unsigned \(embedded\)<\/td><td>0\.1\.0<\/td>/);
  });

  it.each([
    [['--console', '127.0.0.1:0'], /--console needs --admin-token-file FILE/],
    [['--admin-token-file', '/nonexistent'], /--admin-token-file goes with --console/],
    [
      ['--console', '127.0.0.1:0', '--admin-token-file', '/nonexistent', '--reply', 'x'],
      /--console serves the embedded policy/,
    ],
  ])('refuses %j with one line and exit 2', async (flags, message) => {
    const result = await runCli(['serve', '--listen', '127.0.0.1:0', ...flags]);
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(message);
  });
});
