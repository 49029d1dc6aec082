/** `identgate worker` as an operator starts it: what it warns about at start. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, startDaemon } from '../daemon/process.js';

const dir = mkdtempSync(join(tmpdir(), 'identgate-worker-cli-'));
const secretFile = join(dir, 'secret');
writeFileSync(secretFile, '0123456789abcdef0123456789abcdef\n');
const READY = /identgate worker listening on http:\S+\n/;

describe('identgate worker', () => {
  it('warns that a PUT stays in memory without --policy, and about plain http beyond loopback', async () => {
    const worker = await startDaemon(
      process.execPath,
      [CLI, 'worker', '--listen', '0.0.0.0:0', '--secret-file', secretFile, '--admin-token-file', secretFile],
      READY,
    );
    const memory = await worker.logLine((line) => String(line.msg).startsWith('no --policy FILE'));
    expect(memory).toMatchObject({ level: 'warn' });
    expect(String(memory.msg)).toContain('kept in memory only');
    const http = await worker.logLine((line) => String(line.msg).includes('plain http'));
    expect(http).toMatchObject({ level: 'warn' });
  });

  it('warns about neither on loopback with a policy file', async () => {
    const policy = join(dir, 'policy.json');
    writeFileSync(policy, JSON.stringify({ version: 1, rules: [], default: { action: { error: 'NO-USER' } } }));
    const args = ['--secret-file', secretFile, '--admin-token-file', secretFile, '--policy', policy];
    const worker = await startDaemon(process.execPath, [CLI, 'worker', '--listen', '127.0.0.1:0', ...args], READY);
    await worker.logLine((line) => line.msg === 'identgate worker serving');
    worker.child.kill('SIGTERM');
    await worker.exited;
    expect(worker.stderr()).not.toMatch(/"level":"warn"/);
  });
});
