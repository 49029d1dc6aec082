/**
 * `identgate serve --workers N`: one supervising process and N gateway
 * processes that accept from the same listener (gateway/cluster.ts). Real
 * processes, real sockets on loopback; the process tree is read from /proc.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { connectRaw } from '../../helpers/raw-peer.js';
import { listeningPort, runCli } from '../../helpers/cli.js';
import { CLI, READY, startDaemon, type Daemon } from './process.js';

/** The pids whose parent is `pid`, from /proc/PID/stat. */
function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (parent === pid) children.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return children.sort((a, b) => a - b);
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function until<T>(probe: () => T | undefined, what: string, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what} not seen within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function startCluster(extra: string[]): Promise<{ serve: Daemon; port: number }> {
  const serve = await startDaemon(
    process.execPath,
    [CLI, 'serve', '--listen', '127.0.0.1:0', '--workers', '2', ...extra],
    READY,
  );
  return { serve, port: listeningPort(serve.stdout()) };
}

/** The inode of the socket listening on 127.0.0.1:port, from /proc/net/tcp. */
function listeningInode(port: number): string | undefined {
  const wanted = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const row of readFileSync('/proc/net/tcp', 'latin1').split('\n').slice(1)) {
    const fields = row.trim().split(/\s+/);
    if (fields[1] === wanted && fields[3] === '0A') return fields[9];
  }
  return undefined;
}

async function ask(port: number, line: string): Promise<string> {
  const peer = await connectRaw(port);
  peer.write(line);
  const [reply] = await peer.lines(1);
  peer.socket.destroy();
  return reply!;
}

describe('serve --workers N', () => {
  it('runs N gateway processes under one supervisor, says so, and answers on the shared port', async () => {
    const { serve, port } = await startCluster(['--reply', 'x']);
    expect(serve.stdout()).toMatch(/2 worker processes/);
    expect(childrenOf(serve.pid)).toHaveLength(2);
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => ask(port, `${1000 + i}, 113\r\n`)));
    expect(replies).toEqual(Array.from({ length: 20 }, (_, i) => `${1000 + i}, 113 : USERID : OTHER : x`));
  });

  it('starts a new worker when one dies, and keeps answering meanwhile', async () => {
    const { serve, port } = await startCluster(['--reply', 'x']);
    const [victim, survivor] = childrenOf(serve.pid);
    process.kill(victim!, 'SIGKILL');
    expect(await ask(port, '1, 2\r\n')).toBe('1, 2 : USERID : OTHER : x');
    const workers = await until(() => {
      const now = childrenOf(serve.pid);
      return now.length === 2 && !now.includes(victim!) ? now : undefined;
    }, 'a replacement worker');
    expect(workers).toContain(survivor);
    await serve.logLine((line) => line.msg === 'gateway worker died; restarting it');
    expect(await ask(port, '3, 4\r\n')).toBe('3, 4 : USERID : OTHER : x');
  });

  it('serves the sum of all workers\u2019 metrics at the supervisor\u2019s --metrics address', async () => {
    const { serve, port } = await startCluster(['--reply', 'x', '--metrics', '127.0.0.1:0']);
    const serving = await serve.logLine((line) => line.msg === 'identgate serving');
    for (let i = 0; i < 12; i++) await ask(port, `${i + 1}, 113\r\n`);
    const response = await fetch(`http://127.0.0.1:${String(serving.metricsPort)}/metrics`, {
      signal: AbortSignal.timeout(5_000),
    });
    const text = await response.text();
    const line = text.split('\n').find((l) => l.startsWith('identgate_queries_total{answer="USERID"} '));
    expect(line).toBe('identgate_queries_total{answer="USERID"} 12');
  });

  it('stops the workers and itself on SIGTERM', async () => {
    const { serve } = await startCluster(['--reply', 'x']);
    const workers = childrenOf(serve.pid);
    expect(workers).toHaveLength(2);
    process.kill(serve.pid, 'SIGTERM');
    expect(await serve.exited).toBe(0);
    await until(() => (workers.every((pid) => !alive(pid)) ? true : undefined), 'the workers to exit');
  });

  it('hands the native transport\u2019s workers the supervisor\u2019s listening socket as descriptor 4', async () => {
    const { serve, port } = await startCluster(['--reply', 'x', '--transport', 'native']);
    expect(serve.stdout()).toMatch(/transport: native; 2 worker processes/);
    const inode = listeningInode(port);
    expect(inode).toBeDefined();
    for (const worker of childrenOf(serve.pid)) expect(readlinkSync(`/proc/${worker}/fd/4`)).toBe(`socket:[${inode}]`);
    expect(await ask(port, '5, 6\r\n')).toBe('5, 6 : USERID : OTHER : x');
  });

  it('shares the port through node:cluster with --transport node', async () => {
    const { serve, port } = await startCluster(['--reply', 'x', '--transport', 'node']);
    expect(serve.stdout()).toMatch(/transport: node; 2 worker processes/);
    const replies = await Promise.all(Array.from({ length: 10 }, (_, i) => ask(port, `${2000 + i}, 113\r\n`)));
    expect(replies).toEqual(Array.from({ length: 10 }, (_, i) => `${2000 + i}, 113 : USERID : OTHER : x`));
  });

  it('exits 2 with one line when the supervisor cannot bind the port, as one process does', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = taken.address() as net.AddressInfo;
      const result = await runCli(['serve', '--listen', `127.0.0.1:${port}`, '--reply', 'x', '--workers', '2']);
      expect(result.code).toBe(2);
      expect(result.stderr.trim()).toBe(
        `identgate: cannot listen on 127.0.0.1:${port}: the address is already in use (another identd running?)`,
      );
    } finally {
      taken.close();
    }
  });
});
