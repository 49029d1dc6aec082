/**
 * The native transport's handles belong to one Node environment: when a
 * worker thread running an IdentServer ends without stop(), the addon closes
 * its listeners and connections before the environment is torn down (an
 * async cleanup hook). Without it Node aborts ("uv_loop_close() while having
 * open handles") or crashes in a close callback of an unloaded addon. Each
 * case runs in a child process, so a crash is a failed test, not a dead runner.
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../../helpers/cli.js';

const SERVER = new URL('../../../dist/gateway/server/server.js', import.meta.url).href;

function runScript(source: string): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', source], { cwd: ROOT, timeout: 20_000 });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk));
    child.on('close', (code, signal) => resolve({ code, signal, output }));
  });
}

/** A worker thread that starts a native IdentServer, answers one query from the parent, and then ends as `ending` says. */
function workerScenario(ending: string): string {
  return `
import net from 'node:net';
import { Worker } from 'node:worker_threads';
const worker = new Worker(\`
  const { parentPort } = await import('node:worker_threads');
  const { IdentServer } = await import(${JSON.stringify(SERVER)});
  const server = new IdentServer({ hostname: '127.0.0.1', port: 0, transport: 'native' });
  await server.start((tx) => tx.replyWithUser('threaded'));
  parentPort.postMessage(server.port);
  parentPort.once('message', () => { ${ending} });
\`, { eval: true, type: 'module' });
const port = await new Promise((resolve) => worker.once('message', resolve));
const client = net.connect(port, '127.0.0.1');
client.write('1, 2\\r\\n');
const reply = await new Promise((resolve) => client.once('data', (chunk) => resolve(String(chunk).trim())));
${ending.startsWith('terminate') ? 'await worker.terminate();' : "worker.postMessage('end'); await new Promise((resolve) => worker.once('exit', resolve));"}
client.destroy();
console.log('REPLY ' + reply);
console.log('PARENT OK');
`;
}

describe('native transport teardown', () => {
  it('survives a worker thread with a live server and connection being terminated', async () => {
    const result = await runScript(workerScenario('terminate'));
    expect(result.output).toContain('REPLY 1, 2 : USERID : OTHER : threaded');
    expect(result.output).toContain('PARENT OK');
    expect(result.signal).toBeNull();
    expect(result.code).toBe(0);
  });

  it('survives a worker thread calling process.exit() with a live server and connection', async () => {
    const result = await runScript(workerScenario('process.exit(0);'));
    expect(result.output).toContain('PARENT OK');
    expect(result.signal).toBeNull();
    expect(result.code).toBe(0);
  });

  it('lets the process exit at once with process.exit() while a native server has an open connection', async () => {
    const result = await runScript(`
import net from 'node:net';
const { IdentServer } = await import(${JSON.stringify(SERVER)});
const server = new IdentServer({ hostname: '127.0.0.1', port: 0, transport: 'native' });
await server.start((tx) => tx.replyWithUser('x'));
const client = net.connect(server.port, '127.0.0.1');
client.write('1, 2\\r\\n');
client.once('data', () => process.exit(7));
`);
    expect(result.signal).toBeNull();
    expect(result.code).toBe(7);
  });
});
