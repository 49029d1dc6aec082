// The npm package as an operator gets it: `npm pack` of this checkout (a copy, so the prepack step's
// package.json swap never meets the other test files), installed with `npm install -g --prefix DIR` into an
// empty prefix from npm's cache (npm ci filled it), then `identgate` run from that prefix.
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { createServer, connect, type AddressInfo } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, listeningPort, runCli, startCli } from '../helpers/cli.js';

const run = promisify(execFile);
const TAGS = ['linux-x64-glibc', 'linux-arm64-glibc'];
const PROGRAMS = ['identgate-uv.node', 'identgate-sockdiag.node', 'identgate-sockdiag'];

let work: string;
let installed: string;
let bin: string;
let shipped: string[];
let manDir: string;

/** The files git knows in this checkout (tracked and new), plus the built dist/: what a fresh clone has after `npm run build`. */
async function copyCheckout(to: string): Promise<void> {
  const { stdout } = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: ROOT,
    maxBuffer: 16 << 20,
  });
  for (const file of stdout.split('\0').filter(Boolean)) {
    if (!existsSync(join(ROOT, file)) || file === 'node_modules') continue; // deleted in the work tree; linked below
    cpSync(join(ROOT, file), join(to, file), { preserveTimestamps: true });
  }
  cpSync(join(ROOT, 'dist'), join(to, 'dist'), { recursive: true, preserveTimestamps: true });
  symlinkSync(join(ROOT, 'node_modules'), join(to, 'node_modules'));
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'identgate-pack-'));
  const checkout = join(work, 'checkout');
  await copyCheckout(checkout);
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: checkout });
  const [packed] = JSON.parse(stdout.slice(stdout.indexOf('['))) as { filename: string; files: { path: string }[] }[];
  shipped = packed!.files.map((file) => file.path).sort();
  const prefix = join(work, 'prefix');
  // --prefer-offline: the dependencies' tarballs are in npm's cache since npm ci.
  await run(
    'npm',
    ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', join(work, packed!.filename)],
    { cwd: work },
  );
  installed = join(prefix, 'lib', 'node_modules', 'identgate');
  manDir = join(prefix, 'share', 'man');
  bin = join(prefix, 'bin', 'identgate');
}, 240_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the packed tarball', () => {
  it('has the prebuilt addons and helper for linux-x64 and linux-arm64 with glibc, and none built for the packing machine', () => {
    for (const tag of TAGS) for (const program of PROGRAMS) expect(shipped).toContain(`prebuilds/${tag}/${program}`);
    expect(shipped.filter((path) => path.startsWith('dist/') && /\.node$|identgate-sockdiag$/.test(path))).toEqual([]);
  });

  it('has the C sources with every header they include, LICENSE and CHANGELOG.md', () => {
    const sources = shipped.filter((path) => path.endsWith('.c'));
    expect(sources).toEqual(
      expect.arrayContaining([
        'gateway/owner/sockdiag-addon.c',
        'gateway/owner/sockdiag-helper.c',
        'gateway/server/transport/uv-tcp.c',
      ]),
    );
    for (const source of sources) {
      const text = readFileSync(join(installed, source), 'utf8');
      for (const [, header] of text.matchAll(/^#include "([^"]+)"/gm))
        expect(shipped, `${source} includes ${header}`).toContain(join(dirname(source), header!));
    }
    expect(shipped).toEqual(expect.arrayContaining(['LICENSE', 'CHANGELOG.md', 'README.md']));
  });

  it("keeps only scripts that run files the package ships, and the shipped build scripts' imports are shipped", () => {
    const manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(Object.keys(manifest.scripts).sort()).toEqual(['build-addons', 'start']);
    for (const [name, script] of Object.entries(manifest.scripts)) {
      for (const [file] of script.matchAll(/[\w.-]+(?:\/[\w.-]+)+/g))
        expect(shipped, `script ${name} runs ${file}`).toContain(file);
    }
    for (const script of shipped.filter((path) => path.startsWith('gateway/') && path.endsWith('.mjs'))) {
      const text = readFileSync(join(installed, script), 'utf8');
      for (const [, spec] of text.matchAll(/^import .* from '(\.[^']+)';$/gm))
        expect(shipped, `${script} imports ${spec}`).toContain(join(dirname(script), spec!));
    }
  });
});

describe('identgate installed from the tarball', () => {
  it('has its man pages linked under the prefix, where man finds them', async () => {
    for (const page of ['man8/identgate.8', 'man5/identgate-policy.5'])
      expect(existsSync(join(manDir, page))).toBe(true);
    const { stdout } = await run('man', ['identgate'], { env: { ...process.env, MANPATH: manDir, MANPAGER: 'cat' } });
    expect(stdout).toMatch(/^IDENTGATE\(8\)/);
  });

  it('serves with the native transport and the sock_diag addon, and answers who owns a connection', async () => {
    const target = createServer();
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    const client = connect((target.address() as AddressInfo).port, '127.0.0.1');
    await new Promise<void>((resolve) => client.on('connect', resolve));
    try {
      const gateway = await startCli(['serve', '--listen', '127.0.0.1:0'], /identgate listening on/, { cli: bin });
      expect(gateway.stdout()).toMatch(/owner lookup: sock_diag; transport: native/);
      const output = gateway.stdout() + gateway.stderr();
      expect(output).not.toMatch(/not available here/);
      const { code, stdout } = await runCli(
        [
          'query',
          '127.0.0.1',
          `${client.localPort},${(target.address() as AddressInfo).port}`,
          '--port',
          String(listeningPort(gateway.stdout())),
        ],
        { cli: bin },
      );
      expect(stdout.trim()).toBe(
        `${client.localPort}, ${(target.address() as AddressInfo).port} : USERID : UNIX : ${userInfo().username}`,
      );
      expect(code).toBe(0);
    } finally {
      client.destroy();
      target.close();
    }
  });

  it('rebuilds its addons and helper from the shipped C sources with identgate build-addons, in place or into --out DIR', async () => {
    const out = join(work, 'rebuilt');
    const [inPlace, elsewhere] = await Promise.all([
      runCli(['build-addons'], { cli: bin, timeoutMs: 60_000 }),
      runCli(['build-addons', '--out', out], { cli: bin, timeoutMs: 60_000 }),
    ]);
    expect(inPlace.stdout).toContain(
      `built native transport: ${installed}/dist/gateway/server/transport/identgate-uv.node`,
    );
    expect(inPlace.stdout).toContain(`built sock_diag addon: ${installed}/dist/owner/identgate-sockdiag.node`);
    expect(inPlace.stdout).toContain(`built sock_diag helper: ${installed}/dist/owner/identgate-sockdiag`);
    expect(inPlace.code).toBe(0);
    expect(readdirSync(out).sort()).toEqual([...PROGRAMS].sort());
    expect(elsewhere.code).toBe(0);
  });
});
