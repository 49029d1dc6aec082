/**
 * The systemd units in deploy/: systemd's own checker accepts them, the offline
 * security review rates the service well, and the settings the operations guide
 * depends on are there — and the ones that would silently break identgate are
 * not (PrivateUsers= maps other users' uids to nobody, so owner lookup would
 * name everyone "nobody"; ProcSubset=pid hides /proc/net/tcp; PrivateNetwork=
 * hides the host's TCP table; MemoryDenyWriteExecute= stops V8's JIT). Finally
 * the service's ExecStart, run the way systemd runs it behind the socket unit,
 * answers on the passed port 113. Needs systemd's tools (Debian package systemd).
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLI, ROOT, inFreshNetns, queryInNetns, runToEnd, startDaemon } from './process.js';

const SOCKET = join(ROOT, 'deploy/identgate.socket');
const SERVICE = join(ROOT, 'deploy/identgate.service');

/** `Key=value` settings of one [Section] of a unit file, in order (comments and continuation-free lines only). */
function settings(file: string, section: string): [string, string][] {
  const result: [string, string][] = [];
  let current = '';
  for (const raw of readFileSync(file, 'utf8').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) current = header[1]!;
    else if (current === section) {
      const eq = line.indexOf('=');
      result.push([line.slice(0, eq), line.slice(eq + 1)]);
    }
  }
  return result;
}

function values(file: string, section: string, key: string): string[] {
  return settings(file, section)
    .filter(([k]) => k === key)
    .map(([, v]) => v);
}

beforeAll(async () => {
  const found = await runToEnd('sh', ['-c', 'command -v systemd-analyze && command -v systemd-socket-activate']);
  expect(found.code, "systemd's tools are missing; install them with: apt-get install -y systemd").toBe(0);
});

describe('deploy/identgate.socket and deploy/identgate.service', () => {
  it('pass systemd-analyze verify once identgate is installed', async () => {
    // The unit runs "identgate" from the search path; stand the built CLI in for the installed one.
    const dir = mkdtempSync(join(tmpdir(), 'identgate-units-'));
    copyFileSync(SOCKET, join(dir, 'identgate.socket'));
    writeFileSync(
      join(dir, 'identgate.service'),
      readFileSync(SERVICE, 'utf8').replace(/^ExecStart=identgate /m, `ExecStart=${process.execPath} ${CLI} `),
    );
    const result = await runToEnd(
      'systemd-analyze',
      ['verify', '--man=no', join(dir, 'identgate.socket'), join(dir, 'identgate.service')],
      { timeoutMs: 30_000 },
    );
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
  });

  it('pass systemd-analyze verify with the credential drop-in of docs/operations.md', async () => {
    const docs = readFileSync(join(ROOT, 'docs/operations.md'), 'utf8');
    const marker = docs.indexOf('<!-- the drop-in: checked by test/gateway/daemon/units.test.ts -->');
    expect(marker).toBeGreaterThan(0);
    const dropIn = /```ini\n([\s\S]*?)```/.exec(docs.slice(marker))![1]!;
    // It replaces /etc/default/identgate rather than being overridden by it (EnvironmentFile= wins over Environment=).
    expect(dropIn.split('\n').slice(0, 2)).toEqual(['[Service]', 'EnvironmentFile=']);
    const dir = mkdtempSync(join(tmpdir(), 'identgate-units-'));
    copyFileSync(SOCKET, join(dir, 'identgate.socket'));
    writeFileSync(
      join(dir, 'identgate.service'),
      readFileSync(SERVICE, 'utf8').replace(/^ExecStart=identgate /m, `ExecStart=${process.execPath} ${CLI} `),
    );
    mkdirSync(join(dir, 'identgate.service.d'));
    writeFileSync(join(dir, 'identgate.service.d', 'override.conf'), dropIn);
    const result = await runToEnd(
      'systemd-analyze',
      ['verify', '--man=no', join(dir, 'identgate.socket'), join(dir, 'identgate.service')],
      { timeoutMs: 30_000 },
    );
    // An unknown or misspelt key would be a warning here.
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
  });

  it('rate the service at most 2.0 in the offline security review', async () => {
    const result = await runToEnd('systemd-analyze', ['security', '--offline=true', '--no-pager', SERVICE], {
      timeoutMs: 30_000,
    });
    const match = /Overall exposure level for identgate\.service: (\d+\.\d+)/.exec(result.stdout);
    expect(match, result.stdout + result.stderr).not.toBeNull();
    expect(Number(match![1])).toBeLessThanOrEqual(2.0);
  });

  it('listen on port 113 for IPv6 and IPv4 with one process accepting', () => {
    expect(values(SOCKET, 'Socket', 'ListenStream')).toEqual(['113']);
    expect(values(SOCKET, 'Socket', 'BindIPv6Only')).toEqual(['both']);
    expect(values(SOCKET, 'Socket', 'Accept')).toEqual(['no']);
    expect(values(SOCKET, 'Unit', 'Conflicts').join(' ')).toMatch(/oidentd\.socket/);
  });

  it('run identgate serve without --listen, unprivileged and without capabilities', () => {
    const [execStart] = values(SERVICE, 'Service', 'ExecStart');
    expect(execStart).toBe('identgate serve $IDENTGATE_OPTS');
    expect(values(SERVICE, 'Unit', 'Requires')).toEqual(['identgate.socket']);
    expect(values(SERVICE, 'Service', 'DynamicUser')).toEqual(['yes']);
    expect(values(SERVICE, 'Service', 'CapabilityBoundingSet')).toEqual(['']);
    expect(values(SERVICE, 'Service', 'NoNewPrivileges')).toEqual(['yes']);
    expect(values(SERVICE, 'Service', 'ExecReload')).toEqual(['kill -HUP $MAINPID']);
    expect(values(SERVICE, 'Service', 'KillMode')).toEqual(['mixed']);
    expect(values(SERVICE, 'Service', 'RestrictAddressFamilies').join(' ').split(' ').sort()).toEqual([
      'AF_INET',
      'AF_INET6',
      'AF_NETLINK',
      'AF_UNIX',
    ]);
  });

  it('leave out the settings that would break owner lookup or Node', () => {
    const keys = settings(SERVICE, 'Service').map(([key, value]) => `${key}=${value}`);
    for (const breaking of [
      /^PrivateUsers=(yes|true|1)/,
      /^ProcSubset=pid/,
      /^PrivateNetwork=(yes|true|1)/,
      /^MemoryDenyWriteExecute=(yes|true|1)/,
      /^IPAddressDeny=/,
    ]) {
      expect(
        keys.filter((key) => breaking.test(key)),
        String(breaking),
      ).toEqual([]);
    }
  });

  it("answer on port 113 when the service's ExecStart runs behind the socket", async () => {
    expect(process.getuid?.(), 'unshare -n needs root (CI runs as root)').toBe(0);
    // What systemd does with these units: bind ListenStream=113 (dual-stack), start ExecStart
    // with IDENTGATE_OPTS unset (no flags) and LISTEN_FDS=1 at the first connection.
    const [execStart] = values(SERVICE, 'Service', 'ExecStart');
    const argv = execStart!.replace('$IDENTGATE_OPTS', '').trim().split(/\s+/);
    expect(argv.slice(0, 2)).toEqual(['identgate', 'serve']);
    const [command, args] = inFreshNetns([
      'systemd-socket-activate',
      '--listen',
      '113',
      process.execPath,
      CLI,
      ...argv.slice(1),
    ]);
    const launcher = await startDaemon(command, args, /Listening on \[::\]:113 as 3/, { readyOn: 'stderr' });
    // The built-in policy answers NO-USER for a connection that does not exist.
    const reply = await queryInNetns(launcher.pid, '127.0.0.1', 113, '1,2');
    expect(reply.stdout).toBe('1, 2 : ERROR : NO-USER\n');
    expect(launcher.stdout()).toMatch(
      /identgate listening on \[::\]:113 \(answers: embedded default policy; owner lookup: (sock_diag|procfs); transport: native(; nat lookup: (ctnetlink|procfs))?\)/,
    );
  });
});
