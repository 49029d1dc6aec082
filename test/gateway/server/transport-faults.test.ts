/**
 * The native transport (uv-tcp.c) under faults a client cannot cause but a
 * host can: no memory for an accepted connection (calloc failing, made so by
 * a preload library, test/fixtures/failing-calloc.c, in a child process), and
 * a second listener asked for on a descriptor another listener already has.
 * Real loopback TCP; every wait is bounded.
 */
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadNativeTransport } from '../../../gateway/server/transport/native.js';

const WAIT_MS = 5_000;
const BUILT_NATIVE = new URL('../../../dist/gateway/server/transport/native.js', import.meta.url).href;
const SHIM_SOURCE = fileURLToPath(new URL('../../fixtures/failing-calloc.c', import.meta.url));

const scratch = mkdtempSync(join(tmpdir(), 'identgate-transport-faults-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function bounded<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`)), WAIT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Connects, and resolves with what the server sent before the connection ended (reset or FIN). */
function exchange(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    let received = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('error', () => {});
    socket.on('close', () => resolve(received));
  });
}

/** A server in a child process: each connection gets "hello\r\n" and the end; accept errors are printed. */
const SERVER_SCRIPT = `
const { loadNativeTransport } = await import(process.argv[1]);
const listener = await loadNativeTransport().listen(
  { hostname: '127.0.0.1', port: 0 },
  (stream) => {
    stream.attach({ onData() {}, onEnd() {}, onDrain() {}, onError() {}, onClose() {} });
    stream.write('hello\\r\\n');
    stream.end();
  },
  (error) => console.log('acceptError ' + error.code),
);
console.log('port ' + listener.address.port);
`;

describe('the native transport', () => {
  it('closes a connection it has no memory for, reports ENOMEM, and goes on accepting', async () => {
    const shim = join(scratch, 'failing-calloc.so');
    execFileSync('cc', ['-shared', '-fPIC', '-O2', SHIM_SOURCE, '-o', shim, '-ldl']);
    // calloc from the addon: the transport, the listener, then the first connection's, which fails.
    const child = spawn(process.execPath, ['--input-type=module', '-e', SERVER_SCRIPT, BUILT_NATIVE], {
      env: { ...process.env, LD_PRELOAD: shim, IDENTGATE_TEST_CALLOC_OK: '2', IDENTGATE_TEST_CALLOC_FAIL: '1' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
      const first = await bounded(lines.next(), 'the child to listen');
      const port = Number(/^port (\d+)$/.exec(String(first.value))?.[1]);
      expect(port).toBeGreaterThan(0);
      // The first connection is accepted and closed at once, with nothing sent.
      expect(await bounded(exchange(port), 'the refused connection to close')).toBe('');
      expect((await bounded(lines.next(), 'the accept error')).value).toBe('acceptError ENOMEM');
      // The listener still accepts: the next connection is served.
      expect(await bounded(exchange(port), 'the next connection')).toBe('hello\r\n');
    } finally {
      child.kill();
      if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
    }
  });

  it('refuses a listener on a descriptor another listener has (EEXIST) and leaves that one accepting', async () => {
    const transport = loadNativeTransport();
    const fd = await transport.bindSocket({ hostname: '127.0.0.1', port: 0 });
    const accepted: string[] = [];
    const first = await transport.listen(
      { fd },
      (stream) => {
        stream.attach({ onData() {}, onEnd() {}, onDrain() {}, onError() {}, onClose() {} });
        accepted.push('first');
        stream.write('first\r\n');
        stream.end();
      },
      () => {},
    );
    try {
      await expect(
        transport.listen(
          { fd },
          () => accepted.push('second'),
          () => {},
        ),
      ).rejects.toMatchObject({
        code: 'EEXIST',
      });
      expect(await bounded(exchange(first.address.port), 'a connection to the first listener')).toBe('first\r\n');
      expect(accepted).toEqual(['first']);
    } finally {
      await first.close();
    }
  });
});
