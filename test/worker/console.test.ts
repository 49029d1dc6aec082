/**
 * The operator's console in a real headless Chromium (Debian's `chromium`, driven by playwright-core), against the
 * real `identgate worker` with an audit file and a real gateway asking it; each page's screenshot goes to
 * docs/console-*.png with IDENTGATE_UPDATE_SCREENSHOTS=1.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdentClient } from '../../gateway/client/client.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { CLI, ROOT } from '../helpers/cli.js';

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'console-admin-token-0123456789';
const SECRET = 'console-signing-secret-0123456789abcdef';
/** Starts the CLI for the whole file (startCli's processes end with each test) and resolves its stdout's match. */
function startForFile(args: string[], ready: RegExp): Promise<{ child: ChildProcess; match: RegExpExecArray }> {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`identgate ${args[0]} not ready: ${stderr}`)), 20_000);
    child.stdout!.on('data', (chunk) => {
      stdout += chunk;
      const match = ready.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolve({ child, match });
      }
    });
    child.on('exit', (code) => reject(new Error(`identgate ${args[0]} exited ${code}: ${stderr}`)));
  });
}

// docs/console-*.png are rewritten only when asked (IDENTGATE_UPDATE_SCREENSHOTS=1), so a test run leaves the tree clean.
const SHOTS =
  process.env.IDENTGATE_UPDATE_SCREENSHOTS === '1' ? join(ROOT, 'docs') : join(tmpdir(), 'identgate-console-shots');
const shot = (page: Page, name: string) =>
  page.screenshot({ path: join(SHOTS, `console-${name}.png`), fullPage: true });

describe.runIf(existsSync(CHROMIUM))('the console in Chromium', () => {
  let dir: string;
  const children: ChildProcess[] = [];
  let base: string;
  let identPort: number;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'identgate-console-'));
    await writeFile(join(dir, 'token'), `${TOKEN}\n`);
    await writeFile(join(dir, 'secret'), `${SECRET}\n`);
    await copyFile(join(ROOT, 'examples', 'policy.json'), join(dir, 'policy.json'));
    const worker = await startForFile(
      [
        'worker',
        '--listen',
        '127.0.0.1:0',
        '--policy',
        join(dir, 'policy.json'),
        '--secret-file',
        join(dir, 'secret'),
        '--admin-token-file',
        join(dir, 'token'),
        '--audit',
        join(dir, 'audit.db'),
      ],
      /listening on (\S+)/,
    );
    children.push(worker.child);
    base = worker.match[1]!.replace(/\/$/, '');
    const gateway = await startForFile(
      [
        'serve',
        '--listen',
        '127.0.0.1:0',
        '--upstream',
        base,
        '--secret-file',
        join(dir, 'secret'),
        '--gateway-name',
        'web1',
        '--owner-lookup',
        'off',
      ],
      /listening on 127\.0\.0\.1:(\d+)/,
    );
    children.push(gateway.child);
    identPort = Number(gateway.match[1]);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
    page = await (await browser.newContext({ viewport: { width: 1100, height: 800 } })).newPage();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    for (const child of children) child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  /** Clicks what submits a form or follows a link, and waits for the page it loads. */
  const go = async (locator: ReturnType<Page['getByRole']>) => {
    const [response] = await Promise.all([page.waitForNavigation(), locator.click()]);
    return response?.status();
  };
  const text = async (selector: string) => (await page.locator(selector).first().textContent()) ?? '';

  const ask = async (serverPort = 400, clientPort = 500) => {
    const client = new IdentClient({ hostname: '127.0.0.1', port: identPort, timeout: 5_000 });
    try {
      return (await client.ident(serverPort, clientPort)).raw;
    } finally {
      client.close();
    }
  };
  /** The admin API's answer, to compare the pages with. */
  const api = async (path: string) => {
    const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  /** Resolves once the worker has written `count` records of web1 (it writes them after the answers). */
  const recorded = (count: number) =>
    expect
      .poll(async () => ((await api('/v1/audit?gateway=web1')).body.records as unknown[]).length, { timeout: 5_000 })
      .toBe(count);

  it('refuses a wrong token with a message and no session, then signs in with the right one', async () => {
    await page.goto(`${base}/admin`);
    await shot(page, 'sign-in');
    await page.getByLabel('Admin token').fill('not-the-token-at-all');
    await go(page.getByRole('button', { name: 'Sign in' }));
    expect(await text('[role=alert]')).toMatch(/not an admin token/);
    expect((await page.context().cookies()).map((cookie) => cookie.name)).not.toContain('identgate_session');

    await page.getByLabel('Admin token').fill(TOKEN);
    await go(page.getByRole('button', { name: 'Sign in' }));
    expect(await text('h1')).toBe('Overview');
    const cookie = (await page.context().cookies()).find((c) => c.name === 'identgate_session')!;
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/admin' });
    expect(cookie.value).not.toContain(TOKEN);
    expect(page.url()).not.toContain(TOKEN);
    expect(await page.content()).not.toContain(TOKEN);
  });

  it('shows a typo in the policy at its field path, saves the fix, and the gateway answers by it', async () => {
    expect(await ask()).toBe('400, 500 : USERID : OTHER : grimlock');
    await go(page.getByRole('link', { name: 'Policy' }));
    const editor = page.getByLabel(/Policy \(JSON/);
    const original = await editor.inputValue();
    await editor.fill(original.replace('"userId": "grimlock"', '"userid": "optimus"'));
    await go(page.getByRole('button', { name: 'Check and show changes' }));
    expect(await text('[role=alert]')).toContain('rules[0].action');
    await shot(page, 'policy-error');

    await page.getByLabel(/Policy \(JSON/).fill(original.replace('"userId": "grimlock"', '"userId": "optimus"'));
    await go(page.getByRole('button', { name: 'Check and show changes' }));
    expect(await text('.diff .added')).toContain('optimus');
    expect(await text('.diff .removed')).toContain('grimlock');
    await shot(page, 'policy-diff');
    await go(page.getByRole('button', { name: 'Save' }));
    expect(await text('[role=status]')).toContain('Saved');
    // The worker reloads nothing: the gateway's next lookup already gets the new policy.
    expect(await ask()).toBe('400, 500 : USERID : OTHER : optimus');
  });

  it('explains a query: the answering rule, its answer, and why each earlier rule did not answer', async () => {
    await go(page.getByRole('link', { name: 'Explain' }));
    await page.getByLabel('Server port (on this host)').fill('6667');
    await page.getByLabel('Client port (on the querier)').fill('40000');
    await page.getByLabel('Remote address (the querier)').fill('203.0.113.9');
    await page.getByLabel(/Owner uid/).fill('1000');
    await page.getByLabel('Owner user name').fill('alice');
    await go(page.getByRole('button', { name: 'Explain' }));
    expect(await text('#result h2')).toContain('Answered by rule');
    expect(await text('#result table')).toContain('demo-400-500');
    await shot(page, 'explain');
  });

  it('searches the audit for the gateway’s queries, newest first, a page at a time, with the API’s messages', async () => {
    expect(await ask()).toBe('400, 500 : USERID : OTHER : optimus');
    expect(await ask(401, 501)).toBe('401, 501 : ERROR : NO-USER');
    await recorded(4);
    await go(page.getByRole('link', { name: 'Audit' }));
    expect(await page.locator('#records tbody tr').count()).toBe(4);

    await page.getByLabel('Server port (on this host)').fill('4x0');
    await page.getByLabel(/^From/).fill('yesterday');
    expect(await go(page.getByRole('button', { name: 'Search' }))).toBe(400);
    const { body } = await api('/v1/audit?serverPort=4x0&from=yesterday');
    const apiMessage = (body.error as { message: string }).message;
    for (const field of ['serverPort', 'from']) {
      const shown = (await text(`#errors li:has(code:text-is("${field}"))`)).replace(/\s+/g, ' ');
      expect(apiMessage).toContain(shown);
    }
    expect(await page.getByLabel('Server port (on this host)').getAttribute('aria-invalid')).toBe('true');

    await page.getByLabel('Server port (on this host)').fill('400');
    await page.getByLabel(/^From/).fill('');
    await page.getByLabel('Gateway').fill('web1');
    await page.getByLabel(/^Records per page/).fill('2');
    expect(await go(page.getByRole('button', { name: 'Search' }))).toBe(200);
    const rows = page.locator('#records tbody tr');
    expect(await rows.allTextContents()).toEqual([
      expect.stringMatching(/web1.*400, 500.*USERID : OTHER : optimus.*demo-400-500.*k0:[0-9a-f]{8}/),
      expect.stringMatching(/USERID : OTHER : optimus/),
    ]);
    await shot(page, 'audit');
    await go(page.getByRole('link', { name: 'Next page' }));
    expect(await rows.allTextContents()).toEqual([expect.stringMatching(/USERID : OTHER : grimlock/)]);
    expect(await page.getByRole('link', { name: 'Next page' }).count()).toBe(0);
    expect(await page.getByLabel('Server port (on this host)').inputValue()).toBe('400');
  });

  it('assigns an ident, shows the 409 naming who has it for a duplicate, and removes an assignment', async () => {
    await go(page.getByRole('link', { name: 'Assignments' }));
    const assign = page.locator('#assign');
    const fillAssign = async (fields: Record<string, string>) => {
      for (const [label, value] of Object.entries(fields)) await assign.getByLabel(label, { exact: true }).fill(value);
    };
    await fillAssign({ Gateway: 'web1', 'Owner uid': '1000', Ident: 'alice-web' });
    await go(assign.getByRole('button', { name: 'Assign' }));
    expect(await text('[role=status]')).toBe('Assigned alice-web to uid 1000 on gateway web1.');
    await fillAssign({ Gateway: 'web1', 'or claim user': 'bob', Ident: 'bob-web' });
    await go(assign.getByRole('button', { name: 'Assign' }));
    expect(await page.locator('#assignments tbody tr').allTextContents()).toEqual([
      expect.stringMatching(/alice-web\s*web1\s*uid 1000/),
      expect.stringMatching(/bob-web\s*web1\s*claim user "bob"/),
    ]);

    // The duplicate is sent from the keyboard: Enter in the ident field submits the form.
    await fillAssign({ Gateway: 'web1', 'or claim user': 'carol', Ident: 'alice-web' });
    const [response] = await Promise.all([page.waitForNavigation(), assign.getByLabel('Ident').press('Enter')]);
    expect(response?.status()).toBe(409);
    expect(await text('#assign [role=alert]')).toBe(
      'ident "alice-web" is already assigned to uid 1000 on gateway web1',
    );
    expect(await assign.getByLabel('Ident').getAttribute('aria-invalid')).toBe('true');
    expect(await assign.getByLabel('or claim user').inputValue()).toBe('carol');
    expect(await page.locator('#assignments tbody tr').count()).toBe(2);
    await shot(page, 'assignments');

    await go(page.getByRole('button', { name: /^Remove bob-web/ }));
    expect(await text('[role=status]')).toBe('Removed bob-web.');
    // The notice follows the database, not the link: a crafted one claims nothing.
    for (const link of ['added=mallory', 'removed=alice-web']) {
      await page.goto(`${base}/admin/assignments?${link}`);
      expect(await page.locator('[role=status]').count()).toBe(0);
    }
    const { body } = await api('/v1/assignments');
    expect((body.assignments as { ident: string }[]).map((a) => a.ident)).toEqual(['alice-web']);
  });

  it('lists the gateway fleet, and the overview counts the gateways and the last hour’s answers by rule', async () => {
    const { body } = await api('/v1/gateways');
    const [web1] = body.gateways as { name: string; signingKey: string; version: string; queries: number }[];
    expect(web1).toMatchObject({ name: 'web1', version: '0.1.0', queries: 4 });
    await go(page.getByRole('link', { name: 'Gateways' }));
    const row = (await text('#gateways tbody tr')).replace(/\s+/g, ' ');
    expect(row).toMatch(new RegExp(`^web1 ?${web1!.signingKey} ?0\\.1\\.0 ?.*Z ?.*Z ?4$`));
    await shot(page, 'gateways');

    await go(page.getByRole('link', { name: 'Overview' }));
    expect(await page.locator('#gateways tbody tr').allTextContents()).toEqual([expect.stringMatching(/^web1.*Z4$/)]);
    expect(await page.locator('#rules tbody tr').allTextContents()).toEqual(['demo-400-500330', 'private-networks101']);
    await shot(page, 'overview');
  });

  it('refuses a form posted without the session token or from another site, and signs out', async () => {
    // The browser's cookies go with these requests; one lacks the form's session token, one comes from another site.
    const request = page.context().request;
    const form = { policy: '{}', intent: 'save' };
    const noToken = await request.post(`${base}/admin/policy`, { form, headers: { origin: base } });
    expect(noToken.status()).toBe(403);
    expect(await noToken.text()).toContain('This form has expired');
    const csrf = await page.locator('input[name=csrf]').first().getAttribute('value');
    const crossSite = await request.post(`${base}/admin/policy`, {
      form: { ...form, csrf: csrf! },
      headers: { origin: 'http://attacker.example' },
    });
    expect(crossSite.status()).toBe(403);
    // The assignment forms likewise: neither a post without the token nor a cross-site one changes anything.
    const assign = { gateway: 'web1', ownerUid: '1001', ident: 'forged' };
    const forms = [
      ['/admin/assignments', assign, base],
      ['/admin/assignments', { ...assign, csrf: csrf! }, 'http://attacker.example'],
      ['/admin/assignments/remove', { ident: 'alice-web' }, base],
      ['/admin/assignments/remove', { ident: 'alice-web', csrf: csrf! }, 'http://attacker.example'],
    ] as const;
    for (const [path, fields, origin] of forms) {
      expect((await request.post(`${base}${path}`, { form: fields, headers: { origin } })).status()).toBe(403);
    }
    const { body } = await api('/v1/assignments');
    expect((body.assignments as { ident: string }[]).map((a) => a.ident)).toEqual(['alice-web']);
    await go(page.getByRole('button', { name: 'Sign out' }));
    expect(await text('h1')).toBe('Sign in');
  });
});
