/**
 * Start-up failures an operator meets: a port that is taken is one line on
 * stderr and exit 2, with every process identgate started gone (the
 * `--workers` supervisor and its workers too), never a stack trace.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI, ROOT } from './process.js';

const taken: net.Server[] = [];
afterEach(() => {
  for (const server of taken.splice(0)) server.close();
});

/** A loopback port something else listens on. */
async function takenPort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  taken.push(server);
  await once(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

/** Runs the CLI in its own process group; resolves once it exited, with whether anything of its group is left. */
async function runGroup(args: string[]): Promise<{ code: number | null; stderr: string; leftOver: boolean }> {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 15_000);
  const [code] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  let leftOver = true;
  try {
    process.kill(-child.pid!, 0);
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    leftOver = false;
  }
  return { code, stderr, leftOver };
}

function secretFile(): string {
  const file = join(mkdtempSync(join(tmpdir(), 'identgate-fail-')), 'secret');
  writeFileSync(file, 'clean-failure-secret-0123456789\n', { mode: 0o600 });
  return file;
}

describe('a port that is taken', () => {
  it.each([['1'], ['2']])(
    '--metrics on a busy port with --workers %s: one line, exit 2, no process left',
    async (workers) => {
      const port = await takenPort();
      const result = await runGroup([
        'serve',
        '--listen',
        '127.0.0.1:0',
        '--reply',
        'x',
        '--metrics',
        `127.0.0.1:${port}`,
        '--workers',
        workers,
      ]);
      expect(result.code).toBe(2);
      expect(result.stderr).toBe(`identgate: --metrics 127.0.0.1:${port}: cannot listen (EADDRINUSE)\n`);
      expect(result.leftOver).toBe(false);
    },
  );

  it('identgate worker --listen on a busy port: one line, exit 2, no process left', async () => {
    const port = await takenPort();
    const result = await runGroup(['worker', '--listen', `127.0.0.1:${port}`, '--secret-file', secretFile()]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      `identgate: cannot listen on 127.0.0.1:${port}: the address is already in use (another identgate worker running?)\n`,
    );
    expect(result.leftOver).toBe(false);
  });
});
