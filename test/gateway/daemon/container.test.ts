/**
 * identgate as PID 1, as in a container without an init: the sock_diag
 * helper must see its parent as the gateway (it is PID 1 here) and keep
 * running, not take PID 1 for "my parent died" and leave the gateway to
 * start it again and again. A fresh PID namespace (unshare, needs root);
 * the network namespace is the test's own, so a real loopback connection
 * can be asked about.
 */
import { chmodSync, copyFileSync, cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { once } from 'node:events';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectRaw } from '../../helpers/raw-peer.js';
import { listeningPort } from '../../helpers/cli.js';
import { READY, ROOT, startDaemon } from './process.js';

function childrenOf(pid: number): number[] {
  return readdirSync('/proc').flatMap((entry) => {
    if (!/^\d+$/.test(entry)) return [];
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid ? [Number(entry)] : [];
    } catch {
      return [];
    }
  });
}

const nameOf = (pid: number) => readFileSync(`/proc/${pid}/comm`, 'utf8').trim();

describe('as PID 1', () => {
  // A package whose sock_diag addon did not load: owner lookup goes through the helper process.
  let copy: string;
  beforeAll(() => {
    copy = mkdtempSync(join(tmpdir(), 'identgate-pid1-'));
    chmodSync(copy, 0o755);
    cpSync(join(ROOT, 'dist'), join(copy, 'dist'), {
      recursive: true,
      filter: (path) => !path.endsWith('identgate-sockdiag.node'),
    });
    copyFileSync(join(ROOT, 'package.json'), join(copy, 'package.json'));
    symlinkSync(join(ROOT, 'node_modules'), join(copy, 'node_modules'));
  });
  afterAll(() => rmSync(copy, { recursive: true, force: true }));

  it('keeps one sock_diag helper running and answers owners through it', async () => {
    expect(process.getuid?.(), 'a PID namespace needs root (CI runs as root)').toBe(0);
    const serve = await startDaemon(
      'unshare',
      [
        '--pid',
        '--fork',
        '--mount-proc',
        '--',
        process.execPath,
        join(copy, 'dist/gateway/cli/main.js'),
        'serve',
        '--listen',
        '127.0.0.1:0',
        '--owner-lookup',
        'on',
      ],
      READY,
    );
    const [gateway] = childrenOf(serve.pid);
    expect(readFileSync(`/proc/${gateway}/status`, 'utf8')).toMatch(/^NSpid:\s+\d+\s+1$/m);
    // A connection of this (root) process for the gateway to find.
    const target = net.createServer().listen(0, '127.0.0.1');
    await once(target, 'listening');
    const client = net.connect((target.address() as net.AddressInfo).port, '127.0.0.1');
    await once(client, 'connect');
    try {
      const peer = await connectRaw(listeningPort(serve.stdout()));
      peer.write(`${client.remotePort}, ${client.localPort}\r\n`);
      expect(await peer.lines(1)).toEqual([`${client.remotePort}, ${client.localPort} : USERID : UNIX : root`]);
      const helpers = childrenOf(gateway!).filter((pid) => nameOf(pid).startsWith('identgate-sock'));
      expect(helpers).toHaveLength(1);
      expect(serve.stderr()).not.toMatch(/sock_diag helper exited/);
    } finally {
      client.destroy();
      target.close();
    }
  });
});
