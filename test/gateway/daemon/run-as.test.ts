/**
 * `identgate serve --run-as USER[:GROUP]`: started as root, it binds port 113
 * and then runs as the named user, as docs/operations.md tells operators who
 * do not use systemd. Port 113 is bound inside a fresh network namespace, so
 * the host's port is never touched; these tests need root (CI runs as root).
 */
import { chmodSync, copyFileSync, cpSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, READY, ROOT, inFreshNetns, queryInNetns, runToEnd, startDaemon, statusIds } from './process.js';

async function idsOf(name: string): Promise<{ uid: number; gid: number }> {
  const { stdout } = await runToEnd('id', [name]);
  const match = /uid=(\d+).*gid=(\d+)/.exec(stdout);
  if (!match) throw new Error(`id ${name}: ${stdout}`);
  const group = await runToEnd('getent', ['group', 'nogroup']);
  return { uid: Number(match[1]), gid: Number(group.stdout.split(':')[2]) };
}

describe('--run-as', () => {
  it('binds port 113 as root, then answers as nobody:nogroup with no other groups', async () => {
    expect(process.getuid?.(), 'binding port 113 and switching user need root (CI runs as root)').toBe(0);
    const nobody = await idsOf('nobody');
    const [command, args] = inFreshNetns([
      process.execPath,
      CLI,
      'serve',
      '--listen',
      '127.0.0.1:113',
      '--run-as',
      'nobody:nogroup',
      '--reply',
      'x',
    ]);
    const serve = await startDaemon(command, args, READY);
    expect(serve.stdout()).toContain('identgate listening on 127.0.0.1:113');
    const reply = await queryInNetns(serve.pid, '127.0.0.1', 113, '1,2');
    expect(reply.stdout).toBe('1, 2 : USERID : OTHER : x\n');
    // unshare and sh exec, so serve.pid is the node process itself: real, effective, saved and fs ids.
    expect(await statusIds(serve.pid, 'Uid')).toEqual([nobody.uid, nobody.uid, nobody.uid, nobody.uid]);
    expect(await statusIds(serve.pid, 'Gid')).toEqual([nobody.gid, nobody.gid, nobody.gid, nobody.gid]);
    expect(await statusIds(serve.pid, 'Groups')).toEqual([nobody.gid]);
    const switched = await serve.logLine((line) => typeof line.msg === 'string' && line.msg.startsWith('running as'));
    expect(switched).toMatchObject({
      level: 'info',
      msg: 'running as nobody:nogroup',
      uid: nobody.uid,
      gid: nobody.gid,
    });
  });

  it('exits 2 with one line when the user does not exist', async () => {
    const result = await runToEnd(process.execPath, [
      CLI,
      'serve',
      '--listen',
      '127.0.0.1:0',
      '--run-as',
      'no-such-user-identgate',
      '--reply',
      'x',
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe('identgate: --run-as: no user named "no-such-user-identgate" on this host\n');
  });

  it('exits 2 with one line when the group does not exist', async () => {
    expect(process.getuid?.(), 'the group is looked up once running as root (CI runs as root)').toBe(0);
    const result = await runToEnd(process.execPath, [
      CLI,
      'serve',
      '--listen',
      '127.0.0.1:0',
      '--run-as',
      'nobody:no-such-group-identgate',
      '--reply',
      'x',
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe('identgate: --run-as: no group named "no-such-group-identgate" on this host\n');
  });

  it('exits 2 with one line when it is started as another user than root', async () => {
    expect(process.getuid?.(), 'setpriv --reuid needs root (CI runs as root)').toBe(0);
    const result = await runToEnd('setpriv', [
      '--reuid',
      'nobody',
      '--regid',
      'nogroup',
      '--clear-groups',
      '--inh-caps=-all,+dac_read_search',
      '--ambient-caps=+dac_read_search',
      '--',
      process.execPath,
      CLI,
      'serve',
      '--listen',
      '127.0.0.1:0',
      '--run-as',
      'daemon',
      '--reply',
      'x',
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      'identgate: --run-as needs identgate to start as root (it binds first, then switches user)\n',
    );
  });

  it('finds the native transport as another user with CAP_DAC_READ_SEARCH under a directory only root may enter', async () => {
    expect(process.getuid?.(), 'setpriv --reuid needs root (CI runs as root)').toBe(0);
    // A checkout under a private directory (as /root is): access() denies the other user, stat() does not.
    const home = mkdtempSync(join(tmpdir(), 'identgate-private-'));
    chmodSync(home, 0o700);
    try {
      cpSync(join(ROOT, 'dist'), join(home, 'dist'), { recursive: true });
      copyFileSync(join(ROOT, 'package.json'), join(home, 'package.json'));
      symlinkSync(join(ROOT, 'node_modules'), join(home, 'node_modules'));
      const result = await runToEnd('setpriv', [
        '--reuid',
        'nobody',
        '--regid',
        'nogroup',
        '--clear-groups',
        '--inh-caps=-all,+dac_read_search',
        '--ambient-caps=+dac_read_search',
        '--',
        process.execPath,
        '--input-type=module',
        '-e',
        `const { selectTransport } = await import(${JSON.stringify(join(home, 'dist/gateway/server/transport/index.js'))}); console.log(selectTransport('auto').kind);`,
      ]);
      expect(result.stderr).toBe('');
      expect(result.stdout).toBe('native\n');
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});
