/**
 * The JSON logs an operator reads from the journal: failures of the policy
 * worker at warn with their cause, one line per query at --log-level debug,
 * every line JSON, and never the shared secret — not even at trace, not from
 * the gateway and not from the worker, whether the worker accepts or refuses.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { connectRaw } from '../../helpers/raw-peer.js';
import { listeningPort } from '../../helpers/cli.js';
import { CLI, READY, jsonLogLines, startDaemon } from './process.js';

const SECRET = 'ops-test-secret-5f0c2a9e7b1d4c3a8e6f';
const OTHER_SECRET = 'ops-test-other-secret-9d8c7b6a5f4e3d2c';

function secretFile(secret: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'identgate-ops-')), 'secret');
  writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  return file;
}

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

async function startWorker(secret: string) {
  const worker = await startDaemon(
    process.execPath,
    [CLI, 'worker', '--listen', '127.0.0.1:0', '--secret-file', secretFile(secret), '--log-level', 'trace'],
    /listening on http:\/\/\S+\n/,
  );
  return { worker, url: /listening on (http:\/\/\S+)/.exec(worker.stdout())![1]! };
}

describe('logs', () => {
  it('logs an unreachable policy worker at warn with cause refused, and answers the fallback', async () => {
    const upstream = `http://127.0.0.1:${await closedPort()}`;
    const serve = await startDaemon(
      process.execPath,
      [
        CLI,
        'serve',
        '--listen',
        '127.0.0.1:0',
        '--upstream',
        upstream,
        '--secret-file',
        secretFile(SECRET),
        '--owner-lookup',
        'off',
      ],
      READY,
    );
    const peer = await connectRaw(listeningPort(serve.stdout()));
    peer.write('1, 2\r\n');
    expect(await peer.lines(1)).toEqual(['1, 2 : ERROR : UNKNOWN-ERROR']);
    // Not the last-good policy's own line about the same worker (its poll fails too).
    const failure = await serve.logLine(
      (line) => line.level === 'warn' && line.cause !== undefined && !String(line.msg).startsWith('last-good'),
    );
    expect(failure).toMatchObject({ level: 'warn', cause: 'refused' });
    expect(failure.msg).toMatch(/^policy worker failed, answering the fallback: /);
  });

  it('logs one JSON line per query at --log-level debug, with its answer', async () => {
    const serve = await startDaemon(
      process.execPath,
      [CLI, 'serve', '--listen', '127.0.0.1:0', '--owner-lookup', 'off', '--log-level', 'debug'],
      READY,
    );
    const peer = await connectRaw(listeningPort(serve.stdout()));
    peer.write('1, 2\r\n3, 4\r\n');
    await peer.lines(2);
    await serve.logLine(
      (line) => line.msg === 'query' && (line.query as { serverPort?: number } | undefined)?.serverPort === 3,
    );
    const queries = jsonLogLines(serve.stderr()).filter((line) => line.msg === 'query');
    expect(queries).toHaveLength(2);
    expect(queries[0]).toMatchObject({
      level: 'debug',
      query: { serverPort: 1, clientPort: 2 },
      answer: { type: 'ERROR', error: 'NO-USER' },
      remoteAddress: '127.0.0.1',
    });
    expect(queries[1]).toMatchObject({ level: 'debug', query: { serverPort: 3, clientPort: 4 } });
  });

  it('logs no query lines at the default level', async () => {
    const serve = await startDaemon(
      process.execPath,
      [CLI, 'serve', '--listen', '127.0.0.1:0', '--owner-lookup', 'off'],
      READY,
    );
    const peer = await connectRaw(listeningPort(serve.stdout()));
    peer.write('1, 2\r\n');
    await peer.lines(1);
    serve.child.kill('SIGTERM');
    await serve.exited;
    // Tests run as root (CI does), so the one warning about serving as root comes first.
    const lines = jsonLogLines(serve.stderr()).filter((line) => !line.msg.startsWith('serving as root'));
    expect(lines.map((line) => line.msg)).toEqual(['identgate serving', 'stopping']);
    expect(lines.every((line) => line.level === 'info')).toBe(true);
  });

  it('never writes the secret, at trace, whether the worker accepts the signature or refuses it', async () => {
    const good = await startWorker(SECRET);
    const forged = await startWorker(OTHER_SECRET);
    const file = secretFile(SECRET);
    const gateways = await Promise.all(
      [good.url, forged.url, `http://127.0.0.1:${await closedPort()}`].map((upstream) =>
        startDaemon(
          process.execPath,
          [
            CLI,
            'serve',
            '--listen',
            '127.0.0.1:0',
            '--upstream',
            upstream,
            '--secret-file',
            file,
            '--log-level',
            'trace',
            '--owner-lookup',
            'off',
            '--gateway-name',
            'ops',
          ],
          READY,
        ),
      ),
    );
    const replies: string[] = [];
    for (const gateway of gateways) {
      const peer = await connectRaw(listeningPort(gateway.stdout()));
      peer.write('1, 2\r\n');
      replies.push(...(await peer.lines(1)));
    }
    expect(replies).toEqual(['1, 2 : ERROR : NO-USER', '1, 2 : ERROR : UNKNOWN-ERROR', '1, 2 : ERROR : UNKNOWN-ERROR']);
    await good.worker.logLine((line) => line.msg === 'decisions');
    await forged.worker.logLine((line) => line.level === 'warn');
    for (const daemon of [...gateways, good.worker, forged.worker]) {
      daemon.child.kill('SIGTERM');
      await daemon.exited;
      const output = daemon.stdout() + daemon.stderr();
      expect(output).not.toContain(SECRET);
      expect(output).not.toContain(OTHER_SECRET);
      jsonLogLines(daemon.stderr()); // all JSON
    }
  });
});
