import { describe, expect, it } from 'vitest';
import { runCli } from '../../helpers/cli.js';
import { grimlock, startServer } from '../../helpers/server.js';

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

  it('documents itself with --help', async () => {
    const result = await runCli(['query', '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/--port PORT/);
    expect(result.stdout).toMatch(/Exit status: 0 USERID, 1 ERROR reply, 2 usage or network failure/);
  });
});
