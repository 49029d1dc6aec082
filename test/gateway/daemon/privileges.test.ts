/**
 * Privileges: `--run-as` never keeps uid or gid 0, every process identgate
 * starts (the sock_diag helper, cluster workers) starts unprivileged, the
 * switch is checked in /proc/self/status, and serving as root without
 * --run-as is said at warn. Port 113 is bound inside fresh network
 * namespaces; these tests need root (CI runs as root).
 */
import { chmodSync, copyFileSync, cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PrivilegeError, verifyDropped } from '../../../gateway/daemon/privileges.js';
import { CLI, READY, ROOT, inFreshNetns, queryInNetns, runToEnd, startDaemon, statusIds } from './process.js';

/** The pids whose parent is `pid`, from /proc/PID/stat. */
function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) children.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return children;
}

function statusLine(pid: number, field: string): string {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${field}:`));
  return line!.slice(field.length + 1).trim();
}

async function nobodyIds(): Promise<{ uid: number; gid: number }> {
  const user = await runToEnd('getent', ['passwd', 'nobody']);
  const group = await runToEnd('getent', ['group', 'nogroup']);
  return { uid: Number(user.stdout.split(':')[2]), gid: Number(group.stdout.split(':')[2]) };
}

/** Expects the process to run as nobody:nogroup alone, with no capability. */
async function expectNobody(pid: number, nobody: { uid: number; gid: number }, what: string): Promise<void> {
  expect(await statusIds(pid, 'Uid'), what).toEqual([nobody.uid, nobody.uid, nobody.uid, nobody.uid]);
  expect(await statusIds(pid, 'Gid'), what).toEqual([nobody.gid, nobody.gid, nobody.gid, nobody.gid]);
  expect(
    (await statusIds(pid, 'Groups')).filter((group) => group !== nobody.gid),
    what,
  ).toEqual([]);
  expect(statusLine(pid, 'CapEff'), what).toMatch(/^0+$/);
}

describe('--run-as refuses root', () => {
  it.each([
    [
      'root',
      /^identgate: --run-as root: "root" is uid 0 \(root\); name an unprivileged user, e\.g\. --run-as nobody\n$/,
    ],
    ['0', /^identgate: --run-as 0: "0" is uid 0 \(root\); name an unprivileged user/],
    ['nobody:0', /^identgate: --run-as nobody:0: group "0" is gid 0 \(root\); name an unprivileged group/],
    ['nobody:root', /^identgate: --run-as nobody:root: group "root" is gid 0 \(root\)/],
  ])('--run-as %s exits 2 with one line, before binding anything', async (spec, message) => {
    const result = await runToEnd(process.execPath, [
      CLI,
      'serve',
      '--listen',
      '127.0.0.1:0',
      '--run-as',
      spec,
      '--reply',
      'x',
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stdout).toBe('');
  });
});

describe('verifyDropped', () => {
  const status = (lines: Record<string, string>) =>
    Object.entries({
      Uid: '65534\t65534\t65534\t65534',
      Gid: '65534\t65534\t65534\t65534',
      Groups: '65534 ',
      CapInh: '0000000000000000',
      CapPrm: '0000000000000000',
      CapEff: '0000000000000000',
      ...lines,
    })
      .map(([key, value]) => `${key}:\t${value}`)
      .join('\n');
  const target = { spec: 'nobody', uid: 65534, gid: 65534 };

  it('accepts a process whose ids are all the target and that holds no capability', () => {
    expect(() => verifyDropped(target, status({}))).not.toThrow();
    expect(() => verifyDropped(target, status({ Groups: '' }))).not.toThrow();
  });

  it.each([
    ['a saved uid of 0', { Uid: '65534\t65534\t0\t65534' }, /Uid is 65534 65534 0 65534/],
    ['a saved gid of 0', { Gid: '65534\t65534\t0\t65534' }, /Gid is 65534 65534 0 65534/],
    ['supplementary group 0', { Groups: '0 65534' }, /supplementary groups are 0 65534/],
    ['another supplementary group', { Groups: '6 65534' }, /supplementary groups are 6 65534/],
    ['effective capabilities', { CapEff: '0000000000000400' }, /CapEff is 0000000000000400/],
  ])('refuses %s', (_, lines, message) => {
    expect(() => verifyDropped(target, status(lines))).toThrow(PrivilegeError);
    expect(() => verifyDropped(target, status(lines))).toThrow(message);
  });
});

describe('--run-as nobody', () => {
  // A package built where the sock_diag addon did not load: owner lookup goes through the helper process.
  let copy: string;
  beforeAll(() => {
    copy = mkdtempSync(join(tmpdir(), 'identgate-noaddon-'));
    chmodSync(copy, 0o755);
    cpSync(join(ROOT, 'dist'), join(copy, 'dist'), {
      recursive: true,
      filter: (path) => !path.endsWith('identgate-sockdiag.node'),
    });
    copyFileSync(join(ROOT, 'package.json'), join(copy, 'package.json'));
    symlinkSync(join(ROOT, 'node_modules'), join(copy, 'node_modules'));
  });
  afterAll(() => rmSync(copy, { recursive: true, force: true }));

  it('starts the sock_diag helper only after switching, so it runs as nobody too, and answers', async () => {
    expect(process.getuid?.(), 'binding port 113 and switching user need root (CI runs as root)').toBe(0);
    const nobody = await nobodyIds();
    const [command, args] = inFreshNetns([
      process.execPath,
      join(copy, 'dist/gateway/cli/main.js'),
      'serve',
      '--listen',
      '127.0.0.1:113',
      '--run-as',
      'nobody:nogroup',
      '--owner-lookup',
      'on',
    ]);
    const serve = await startDaemon(command, args, READY);
    expect(serve.stdout()).toContain('owner lookup: sock_diag');
    const helpers = childrenOf(serve.pid).filter((pid) => statusLine(pid, 'Name').startsWith('identgate-sock'));
    expect(helpers, 'one sock_diag helper').toHaveLength(1);
    await expectNobody(serve.pid, nobody, 'the gateway');
    await expectNobody(helpers[0]!, nobody, 'the sock_diag helper');
    const reply = await queryInNetns(serve.pid, '127.0.0.1', 113, '1,2');
    expect(reply.stdout).toBe('1, 2 : ERROR : NO-USER\n');
    expect(serve.stderr()).not.toMatch(/serving as root/);
  });

  it.each(['native', 'node'])(
    'with --workers 2 and the %s transport, starts every worker as nobody',
    async (transport) => {
      const nobody = await nobodyIds();
      const [command, args] = inFreshNetns([
        process.execPath,
        CLI,
        'serve',
        '--listen',
        '127.0.0.1:113',
        '--run-as',
        'nobody:nogroup',
        '--workers',
        '2',
        '--transport',
        transport,
        '--reply',
        'x',
      ]);
      const serve = await startDaemon(command, args, READY);
      const workers = childrenOf(serve.pid);
      expect(workers).toHaveLength(2);
      await expectNobody(serve.pid, nobody, 'the supervisor');
      for (const worker of workers) await expectNobody(worker, nobody, `worker ${worker}`);
      const reply = await queryInNetns(serve.pid, '127.0.0.1', 113, '1,2');
      expect(reply.stdout).toBe('1, 2 : USERID : OTHER : x\n');
    },
  );
});

describe('serving as root', () => {
  it('says so at warn once when started as root without --run-as', async () => {
    expect(process.getuid?.(), 'the warning is about root (CI runs as root)').toBe(0);
    const serve = await startDaemon(process.execPath, [CLI, 'serve', '--listen', '127.0.0.1:0', '--reply', 'x'], READY);
    const warning = await serve.logLine((line) => line.msg.startsWith('serving as root'));
    expect(warning).toMatchObject({ level: 'warn' });
    expect(warning.msg).toMatch(/add --run-as USER/);
  });
});
