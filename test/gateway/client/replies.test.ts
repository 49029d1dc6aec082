/**
 * IdentClient reading replies from fake servers that write literal bytes:
 * USERID and ERROR answers, several queries on one connection, replies in one
 * packet, split across packets or dribbled one octet at a time, LF line ends,
 * shared answers for identical queries, the one-call helper, and IPv6.
 */
import { describe, expect, it } from 'vitest';
import { ident, IdentClient } from '../../../gateway/client/client.js';
import { closedAfterEachTest, dribble, FakeIdentServer } from './fake-server.js';

const { cleanups, fake } = closedAfterEachTest();

function clientFor(server: FakeIdentServer, hostname = '127.0.0.1'): IdentClient {
  const client = new IdentClient({ hostname, port: server.port, timeout: 2_000 });
  cleanups.push(() => client.close());
  return client;
}

describe('IdentClient replies', () => {
  it('reads a USERID reply into userId, opsys and charset', async () => {
    const server = await fake((line, socket) => socket.write(`${line} : USERID : UNIX : stjohns\r\n`));
    const response = await clientFor(server).ident(6193, 23);
    expect(response).toEqual({
      serverPort: 6193,
      clientPort: 23,
      isSuccess: true,
      userId: 'stjohns',
      userIdOctets: new TextEncoder().encode('stjohns'),
      opsys: 'UNIX',
      charset: 'US-ASCII',
      errorType: undefined,
      raw: '6193, 23 : USERID : UNIX : stjohns',
    });
    expect(server.lines).toEqual(['6193, 23']);
  });

  it('reads an ERROR reply into errorType with isSuccess false', async () => {
    const server = await fake((line, socket) => socket.write(`${line} : ERROR : NO-USER\r\n`));
    const response = await clientFor(server).ident(6195, 23);
    expect(response).toMatchObject({
      serverPort: 6195,
      clientPort: 23,
      isSuccess: false,
      errorType: 'NO-USER',
      raw: '6195, 23 : ERROR : NO-USER',
    });
    expect(response.userId).toBeUndefined();
    expect(response.opsys).toBeUndefined();
    expect(response.charset).toBeUndefined();
  });

  it('accepts replies that end with LF only', async () => {
    const server = await fake((line, socket) => socket.write(`${line} : USERID : OTHER : lf\n`));
    const response = await clientFor(server).ident(1, 2);
    expect(response.userId).toBe('lf');
    expect(response.raw).toBe('1, 2 : USERID : OTHER : lf');
  });

  it('keeps the octets of a user id in a charset other than US-ASCII or UTF-8', async () => {
    const server = await fake((line, socket) =>
      socket.write(
        Buffer.concat([
          Buffer.from(`${line} : USERID : UNIX , ISO-8859-1 : j`),
          Buffer.from([0xf6]),
          Buffer.from('rg\r\n'),
        ]),
      ),
    );
    const response = await clientFor(server).ident(1, 2);
    expect(response.charset).toBe('ISO-8859-1');
    expect(response.userId).toBe('jörg');
    expect(response.userIdOctets).toEqual(Uint8Array.of(0x6a, 0xf6, 0x72, 0x67));
  });

  it('answers several queries on one connection in the order they were asked', async () => {
    const server = await fake((line, socket) =>
      socket.write(`${line} : USERID : UNIX : user${line.split(',')[0]}\r\n`),
    );
    const client = clientFor(server);
    const responses = await Promise.all([client.ident(101, 1), client.ident(102, 2), client.ident(103, 3)]);
    expect(responses.map((response) => [response.serverPort, response.clientPort, response.userId])).toEqual([
      [101, 1, 'user101'],
      [102, 2, 'user102'],
      [103, 3, 'user103'],
    ]);
    expect(server.lines).toEqual(['101, 1', '102, 2', '103, 3']);
    expect(server.connections).toBe(1);
  });

  it('reuses the connection for a query asked after the previous one was answered', async () => {
    const server = await fake((line, socket) => socket.write(`${line} : ERROR : HIDDEN-USER\r\n`));
    const client = clientFor(server);
    await client.ident(1, 2);
    await client.ident(3, 4);
    expect(server.connections).toBe(1);
    expect(server.lines).toEqual(['1, 2', '3, 4']);
  });

  it('reads several replies that arrive in one packet', async () => {
    const server = await fake();
    const client = clientFor(server);
    const asked = Promise.all([client.ident(1, 10), client.ident(2, 20), client.ident(3, 30)]);
    await server.waitForLines(3);
    // All three replies, with mixed line ends, in a single write.
    server.sockets[0]!.write('1, 10 : USERID : UNIX : a\r\n2, 20 : ERROR : NO-USER\n3, 30 : USERID : UNIX : c\r\n');
    const responses = await asked;
    expect(responses.map((response) => response.userId ?? response.errorType)).toEqual(['a', 'NO-USER', 'c']);
  });

  it('reads replies split across packets at arbitrary points', async () => {
    const server = await fake();
    const client = clientFor(server);
    const asked = Promise.all([client.ident(1, 10), client.ident(2, 20)]);
    await server.waitForLines(2);
    const socket = server.sockets[0]!;
    for (const piece of ['1, 10 : USE', 'RID : UNIX : al', 'ice\r', '\n2, 20 : ERR', 'OR : NO-USER\r\n']) {
      await new Promise((resolve) => socket.write(piece, resolve));
    }
    const responses = await asked;
    expect(responses[0].userId).toBe('alice');
    expect(responses[1].errorType).toBe('NO-USER');
  });

  it('reads a reply dribbled one octet at a time', async () => {
    const server = await fake(
      (line, socket) => void dribble(socket, new TextEncoder().encode(`${line} : USERID : UNIX , UTF-8 : jörg\r\n`)),
    );
    const response = await clientFor(server).ident(6193, 23);
    expect(response.userId).toBe('jörg');
    expect(response.charset).toBe('UTF-8');
  });

  it('sends one request line for identical queries in flight and gives them the same answer', async () => {
    const server = await fake();
    const client = clientFor(server);
    const first = client.ident(400, 500);
    const second = client.ident(400, 500);
    expect(second).toBe(first);
    expect(client.pendingQueries).toBe(1);
    await server.waitForLines(1);
    server.sockets[0]!.write('400, 500 : USERID : UNIX : grimlock\r\n');
    const [a, b] = await Promise.all([first, second]);
    expect(a.userId).toBe('grimlock');
    expect(b).toBe(a);
    // A later distinct query flushes anything else the client may have written.
    server.sockets[0]!.on('data', () => server.sockets[0]!.write('1, 2 : ERROR : NO-USER\r\n'));
    await client.ident(1, 2);
    expect(server.lines).toEqual(['400, 500', '1, 2']);
  });

  it('asks again once an identical query has been answered', async () => {
    const server = await fake((line, socket) => socket.write(`${line} : USERID : UNIX : again\r\n`));
    const client = clientFor(server);
    await client.ident(7, 8);
    await client.ident(7, 8);
    expect(server.lines).toEqual(['7, 8', '7, 8']);
  });

  it('works over IPv6 loopback', async () => {
    const server = await fake((line, socket) => socket.write(`${line} : USERID : UNIX : six\r\n`), { host: '::1' });
    const client = clientFor(server, '::1');
    const response = await client.ident(6193, 23);
    expect(response.userId).toBe('six');
    expect(server.sockets[0]!.remoteAddress).toBe('::1');
  });

  it('connects from the given localAddress', async () => {
    const server = await fake((line, socket) => socket.write(`${line} : USERID : UNIX : local\r\n`));
    const client = new IdentClient({ port: server.port, localAddress: '127.0.0.1', timeout: 2_000 });
    cleanups.push(() => client.close());
    await client.ident(1, 2);
    expect(server.sockets[0]!.remoteAddress).toBe('127.0.0.1');
  });
});

describe('ident() one-call helper', () => {
  it('opens a connection, asks one question and closes the connection', async () => {
    const server = await fake((line, socket) => socket.write(`${line} : USERID : UNIX : once\r\n`));
    const response = await ident({ port: server.port, serverPort: 6193, clientPort: 23, timeout: 2_000 });
    expect(response.userId).toBe('once');
    await server.allClosed();
    expect(server.connections).toBe(1);
  });

  it('works over IPv6', async () => {
    const server = await fake((line, socket) => socket.write(`${line} : ERROR : NO-USER\r\n`), { host: '::1' });
    const response = await ident({ hostname: '::1', port: server.port, serverPort: 1, clientPort: 2, timeout: 2_000 });
    expect(response.errorType).toBe('NO-USER');
  });
});
