import net from 'node:net';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { runCli } from '../../helpers/cli.js';
import { grimlock, startServer } from '../../helpers/server.js';

/** A hostile ident server: answers every connection with these literal bytes. */
async function fakeServer(reply: Buffer): Promise<{ port: number; close(): void }> {
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    socket.once('data', () => socket.end(reply));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

/** Any C0 control, DEL or C1 control (as UTF-8 text). */
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

describe('identgate query', () => {
  it('prints the USERID reply and exits 0', async () => {
    const { port } = await startServer(grimlock);
    const result = await runCli(['query', '127.0.0.1', '400,500', '--port', String(port)]);
    expect(result).toMatchObject({ code: 0, stdout: '400, 500 : USERID : OTHER : grimlock\n', stderr: '' });
  });

  it('prints an ERROR reply and exits 1', async () => {
    const { port } = await startServer(grimlock);
    const result = await runCli(['query', '127.0.0.1', '401,500', '--port', String(port)]);
    expect(result).toMatchObject({ code: 1, stdout: '401, 500 : ERROR : NO-USER\n' });
  });

  it('prints the parsed reply as JSON with --json', async () => {
    const { port } = await startServer(grimlock);
    const result = await runCli(['query', '127.0.0.1', '400,500', '--port', String(port), '--json']);
    expect(JSON.parse(result.stdout)).toMatchObject({
      serverPort: 400,
      clientPort: 500,
      isSuccess: true,
      userId: 'grimlock',
      opsys: 'OTHER',
      charset: 'US-ASCII',
    });
  });

  it('queries an IPv6 server given in brackets', async () => {
    const { port } = await startServer(grimlock, { hostname: '::1' });
    const result = await runCli(['query', '[::1]', '400,500', '--port', String(port)]);
    expect(result.code).toBe(0);
  });

  it('exits 2 with one line when the server refuses the connection', async () => {
    const { server, port } = await startServer(grimlock);
    await server.stop();
    const result = await runCli(['query', '127.0.0.1', '400,500', '--port', String(port)]);
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/cannot connect/);
  });

  it('exits 2 with one line on a timeout', async () => {
    const { port } = await startServer(() => {}, { queryDeadlineMs: 10_000 });
    const result = await runCli(['query', '127.0.0.1', '400,500', '--port', String(port), '--timeout', '200']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^identgate: .*200 ms/);
  });

  it('exits 2 with one line on bad arguments', async () => {
    for (const args of [
      ['query'],
      ['query', 'h', '0,5'],
      ['query', 'h', '1,2', '--port', 'x'],
      ['query', 'h', '1,2', '--frobnicate'],
    ]) {
      const result = await runCli(args);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
    }
  });

  it('prints a hostile server\u2019s control characters as escapes, never raw', async () => {
    // OSC title, clear screen, a carriage return, the 8-bit CSI (UTF-8 c2 9b) and a right-to-left override.
    const userId = Buffer.concat([
      Buffer.from('\x1b]0;pwned\x07\x1b[2Jroot\rx'),
      Buffer.from([0xc2, 0x9b]),
      Buffer.from('31m\u202eab\\'),
    ]);
    const server = await fakeServer(
      Buffer.concat([Buffer.from('400, 500 : USERID : UNIX : '), userId, Buffer.from('\r\n')]),
    );
    try {
      const result = await runCli(['query', '127.0.0.1', '400,500', '--port', String(server.port)]);
      expect(result.code).toBe(0);
      expect(result.stdout).toBe(
        '400, 500 : USERID : UNIX : \\x1b]0;pwned\\x07\\x1b[2Jroot\\x0dx\\x9b31m\\u{202e}ab\\\\\n',
      );
      expect(result.stdout.slice(0, -1)).not.toMatch(RAW_CONTROL);
    } finally {
      server.close();
    }
  });

  it('keeps --json exact JSON of the hostile reply, with no raw control character', async () => {
    const server = await fakeServer(Buffer.from('400, 500 : USERID : UNIX : a\x1b[2J\u009b\u202eb\r\n'));
    try {
      const result = await runCli(['query', '127.0.0.1', '400,500', '--port', String(server.port), '--json']);
      expect(result.code).toBe(0);
      expect(JSON.parse(result.stdout)).toMatchObject({ userId: 'a\x1b[2J\u009b\u202eb' });
      expect(result.stdout.slice(0, -1)).not.toMatch(RAW_CONTROL);
      expect(result.stdout).not.toContain('\u202e');
    } finally {
      server.close();
    }
  });

  it('escapes control characters in the one error line about a malformed reply', async () => {
    const server = await fakeServer(Buffer.from('\x1b[31mnot ident\u009b\r\n'));
    try {
      const result = await runCli(['query', '127.0.0.1', '400,500', '--port', String(server.port)]);
      expect(result.code).toBe(2);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr.slice(0, -1)).not.toMatch(RAW_CONTROL);
    } finally {
      server.close();
    }
  });

  it('documents itself with --help', async () => {
    const result = await runCli(['query', '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/--port PORT/);
    expect(result.stdout).toMatch(/Exit status: 0 USERID, 1 ERROR reply, 2 usage or network failure/);
  });
});
