import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createDelegateRunner, forwardAllowList, parseForwardCidr } from '../../../gateway/delegate/index.js';
import type { ForwardDelegate, LookupRequest } from '../../../protocol/wire.js';
import type { IdentAnswer } from '../../../protocol/reply.js';

const FALLBACK: IdentAnswer = { type: 'ERROR', error: 'UNKNOWN-ERROR' };
const servers: Server[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

/** A fake identd: `onLine` gets each request line and the socket, and writes literal bytes. */
async function fakeIdentd(onLine: (line: string, socket: Socket) => void): Promise<{ port: number; lines: string[] }> {
  const lines: string[] = [];
  const server = createServer((socket) => {
    socket.on('error', () => {});
    let buffered = '';
    socket.on('data', (chunk) => {
      buffered += chunk.toString('latin1');
      let end;
      while ((end = buffered.indexOf('\n')) !== -1) {
        const line = buffered.slice(0, end).replace(/\r$/, '');
        buffered = buffered.slice(end + 1);
        lines.push(line);
        onLine(line, socket);
      }
    });
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as AddressInfo).port, lines };
}

async function refusedPort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const request: LookupRequest = {
  v: 1,
  id: 't-1',
  gateway: 'gw',
  query: { serverPort: 40001, clientPort: 6697 },
  connection: { localAddress: '127.0.0.1', localPort: 113, remoteAddress: '127.0.0.1', remotePort: 50000 },
  owner: { uid: 999, userName: 'thelounge' },
};

function delegate(port: number, overrides: Partial<ForwardDelegate> = {}): ForwardDelegate {
  return {
    kind: 'forward',
    host: '127.0.0.1',
    port,
    opsys: 'OTHER',
    accept: { maxLength: 16, localNames: false, deny: ['root'] },
    ...overrides,
  };
}

const runner = createDelegateRunner({
  passwd: { uidOf: async (name: string) => (name === 'daemon' ? 1 : null) } as never,
});
const run = (d: ForwardDelegate, deadlineMs = 500) => runner.run(d, request, FALLBACK, performance.now() + deadlineMs);

describe('forwarding a query to an app identd', () => {
  it("answers with the app's user id, asking about the query's own ports", async () => {
    const identd = await fakeIdentd((line, socket) => socket.write(`${line} : USERID : TheLounge : alice\r\n`));
    const result = await run(delegate(identd.port));
    expect(identd.lines).toEqual(['40001, 6697']);
    expect(result).toEqual({ answer: { type: 'USERID', opsys: 'OTHER', userId: 'alice' }, outcome: 'forward' });
  });

  it('asks about other ports when the delegate names them (NAT: the inner host sees other ports)', async () => {
    const identd = await fakeIdentd((_line, socket) => socket.write('1234, 6697 : USERID : UNIX : bob\r\n'));
    const result = await run(delegate(identd.port, { query: { serverPort: 1234, clientPort: 6697 } }));
    expect(identd.lines).toEqual(['1234, 6697']);
    expect(result.answer).toEqual({ type: 'USERID', opsys: 'OTHER', userId: 'bob' });
  });

  it('answers the fallback within the deadline when the identd never answers', async () => {
    const identd = await fakeIdentd(() => {});
    const started = performance.now();
    const result = await run(delegate(identd.port), 200);
    const took = performance.now() - started;
    expect(result.answer).toEqual(FALLBACK);
    expect(result.outcome).toMatch(/^fallback: .*timeout/);
    expect(took).toBeGreaterThanOrEqual(150);
    expect(took).toBeLessThan(400);
  });

  it('answers the fallback for garbage', async () => {
    const identd = await fakeIdentd((_line, socket) => socket.write('HTTP/1.1 400 Bad Request\r\n\r\n'));
    expect((await run(delegate(identd.port))).outcome).toMatch(/: garbage/);
  });

  it('answers the fallback for a reply about other ports', async () => {
    const identd = await fakeIdentd((_line, socket) => socket.write('1, 2 : USERID : UNIX : alice\r\n'));
    expect((await run(delegate(identd.port))).answer).toEqual(FALLBACK);
  });

  it('answers the fallback when the identd closes without answering', async () => {
    const identd = await fakeIdentd((_line, socket) => socket.end());
    expect((await run(delegate(identd.port))).outcome).toMatch(/: closed/);
  });

  it('answers the fallback when the port is refused', async () => {
    expect((await run(delegate(await refusedPort()))).outcome).toMatch(/: refused/);
  });

  it("answers the fallback for the identd's ERROR (NO-USER: it does not know the connection)", async () => {
    const identd = await fakeIdentd((line, socket) => socket.write(`${line} : ERROR : NO-USER\r\n`));
    expect((await run(delegate(identd.port))).outcome).toMatch(/: error NO-USER$/);
  });

  it("refuses a reply the rule's constraints forbid: denied, too long, another local account, white space", async () => {
    for (const [name, why] of [
      ['root', /denied by the rule/],
      ['a'.repeat(17), /longer than 16/],
      ['daemon', /another local account \(uid 1\)/],
      ['two words', /white space/],
    ] as const) {
      const identd = await fakeIdentd((line, socket) => socket.write(`${line} : USERID : UNIX : ${name}\r\n`));
      const result = await run(delegate(identd.port));
      expect(result.answer).toEqual(FALLBACK);
      expect(result.outcome).toMatch(why);
    }
  });

  it('forwards only to allowed addresses', async () => {
    const result = await run(delegate(113, { host: '192.0.2.1' }));
    expect(result.outcome).toMatch(/forwarding to 192\.0\.2\.1 is not allowed/);
  });
});

describe('forwardAllowList', () => {
  it('allows loopback (IPv4, IPv6 and IPv4-mapped) and configured CIDRs, nothing else', () => {
    const allowed = forwardAllowList(['10.0.3.0/24', 'fd00::/8'], false);
    expect(['127.0.0.1', '127.9.9.9', '::1', '::ffff:127.0.0.1', '10.0.3.7', 'fd00::5'].map(allowed)).toEqual(
      new Array(6).fill(true),
    );
    expect(['10.0.4.1', '192.0.2.1', '2001:db8::1', 'localhost'].map(allowed)).toEqual(new Array(4).fill(false));
  });

  it('refuses a CIDR that is not one, in one line', () => {
    expect(() => parseForwardCidr('10.0.0.0/33')).toThrow(/not an address or CIDR: "10.0.0.0\/33"/);
    expect(() => parseForwardCidr('example.net')).toThrow(/not an address or CIDR/);
  });
});

describe('forwarding to the inner host behind this NAT router (docs/nat.md)', () => {
  const nobodyAllowed = createDelegateRunner({
    forwardAllowed: () => false,
    passwd: { uidOf: async () => null } as never,
  });
  const natRequest = (innerAddress: string): LookupRequest => ({
    ...request,
    owner: null,
    nat: { innerAddress, innerPort: 40002 },
  });

  it('may ask the inner host its own NAT lookup found, whatever --forward-allow says', async () => {
    const identd = await fakeIdentd((line, socket) => socket.write(`${line} : USERID : UNIX : carol\r\n`));
    const inner = delegate(identd.port, { query: { serverPort: 40002, clientPort: 6697 } });
    const result = await nobodyAllowed.run(inner, natRequest('127.0.0.1'), FALLBACK, performance.now() + 500);
    expect(identd.lines).toEqual(['40002, 6697']);
    expect(result.answer).toEqual({ type: 'USERID', opsys: 'OTHER', userId: 'carol' });
  });

  it('may not ask another host than the inner one when --forward-allow does not list it', async () => {
    const identd = await fakeIdentd((line, socket) => socket.write(`${line} : USERID : UNIX : carol\r\n`));
    const result = await nobodyAllowed.run(
      delegate(identd.port),
      natRequest('10.0.0.2'),
      FALLBACK,
      performance.now() + 500,
    );
    expect(identd.lines).toEqual([]);
    expect(result.outcome).toMatch(/forwarding to 127\.0\.0\.1 is not allowed/);
  });
});
