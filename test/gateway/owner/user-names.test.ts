/**
 * User names are reported whole or not at all: a name longer than the wire's
 * 256 octets (MAX_USER_NAME_OCTETS) becomes no name (null, so the policy
 * falls back to the uid), never a cut name, which would be another user's.
 * The sock_diag helper and addon ask NSS; here they run in a mount
 * namespace of their own whose /etc/passwd (bind-mounted, needs root) gives
 * uid 0 the name under test. The procfs way reads a passwd file.
 */
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PasswdNames } from '../../../gateway/owner/index.js';
import { MAX_USER_NAME_OCTETS } from '../../../protocol/wire.js';

const BUILD_SCRIPT = fileURLToPath(new URL('../../../gateway/owner/build-helper.mjs', import.meta.url));
const ADDON = fileURLToPath(new URL('../../../dist/owner/identgate-sockdiag.node', import.meta.url));

const whole = 'w'.repeat(MAX_USER_NAME_OCTETS);
const tooLong = 'x'.repeat(MAX_USER_NAME_OCTETS + 1);
/** 201 octets: what the helper used to cut to 200. */
const past200 = 'y'.repeat(201);

let workDir = '';
let helperPath = '';
let server: net.Server;
let client: net.Socket;

beforeAll(async () => {
  workDir = mkdtempSync(join(tmpdir(), 'identgate-names-'));
  helperPath = join(workDir, 'identgate-sockdiag');
  execFileSync(process.execPath, [BUILD_SCRIPT, '--out', helperPath], { stdio: 'ignore' });
  server = net.createServer((socket) => socket.on('error', () => {})).listen(0, '127.0.0.1');
  await once(server, 'listening');
  client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await once(client, 'connect');
});

afterAll(async () => {
  client.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(workDir, { recursive: true, force: true });
});

/** A passwd file where uid 0 is `name`. */
function passwdWith(name: string): string {
  const file = join(workDir, `passwd-${name.length}`);
  writeFileSync(file, `${name}:x:0:0:test:/root:/bin/sh\n`);
  return file;
}

/** Runs argv in a mount namespace whose /etc/passwd is `passwd`; resolves with its stdout. */
async function withPasswd(passwd: string, argv: string[], input = ''): Promise<string> {
  const child = spawn(
    'unshare',
    ['-m', '--', 'sh', '-c', 'mount --bind "$0" /etc/passwd && exec "$@"', passwd, ...argv],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stdin.end(input);
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await once(child, 'close');
  clearTimeout(timer);
  return stdout;
}

/** The helper's answer about the test's own loopback connection (owned by uid 0). */
async function helperName(name: string): Promise<string> {
  const request = `7 4 127.0.0.1 ${client.remotePort} 127.0.0.1 ${client.localPort}\n`;
  const out = await withPasswd(passwdWith(name), [helperPath], request);
  const line = out.split('\n').find((l) => l.startsWith('7 '));
  expect(line, out).toMatch(/^7 found 1 0 \d+ \S+$/);
  const hex = line!.split(' ')[5]!;
  return hex === '-' ? '-' : Buffer.from(hex, 'hex').toString('utf8');
}

async function addonName(name: string): Promise<string | null> {
  const script = `const a = require(${JSON.stringify(ADDON)}); a.userName(0).then((n) => process.stdout.write(JSON.stringify(n)));`;
  return JSON.parse(await withPasswd(passwdWith(name), [process.execPath, '-e', script])) as string | null;
}

describe('user names are whole or none', () => {
  it('the sock_diag helper reports a 256-octet name whole and a longer one as no name', async () => {
    expect(process.getuid?.(), 'a mount namespace needs root (CI runs as root)').toBe(0);
    expect(await helperName(whole)).toBe(whole);
    expect(await helperName(past200)).toBe(past200);
    expect(await helperName(tooLong)).toBe('-');
  });

  it('the sock_diag addon does the same', async () => {
    expect(process.getuid?.(), 'a mount namespace needs root (CI runs as root)').toBe(0);
    expect(await addonName(whole)).toBe(whole);
    expect(await addonName(past200)).toBe(past200);
    expect(await addonName(tooLong)).toBeNull();
  });

  it('the procfs way (a passwd file) does the same, counting octets of UTF-8', async () => {
    const names = (name: string) => new PasswdNames(passwdWith(name)).userName(0);
    expect(await names(whole)).toBe(whole);
    expect(await names(tooLong)).toBeNull();
    // 128 two-octet characters are 256 octets; one more is too many.
    expect(await names('é'.repeat(128))).toBe('é'.repeat(128));
    expect(await names('é'.repeat(129))).toBeNull();
  });
});
