/**
 * IdentClient against the real IdentServer, both on loopback: the seed's
 * example (400, 500 is grimlock, anything else NO-USER), pipelined queries on
 * one connection, shared answers for identical queries, answers given out of
 * order by the handler, charsets, IPv6, and reconnecting after the server
 * restarts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ident, IdentClient } from '../../../gateway/client/client.js';
import { IdentServer, type IdentHandler, type IdentServerOptions } from '../../../gateway/server/server.js';
import type { IdentTransaction } from '../../../gateway/server/transaction.js';
import { TRANSPORTS } from '../../helpers/server.js';
import { closedPort } from './fake-server.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** The seed's example handler. */
const grimlock: IdentHandler = (tx) => {
  if (tx.req.serverPort === 400 && tx.req.clientPort === 500) tx.replyWithUser('grimlock');
  else tx.replyWithError('NO-USER');
};

async function startServer(handler: IdentHandler, options: IdentServerOptions = {}): Promise<IdentServer> {
  const server = new IdentServer({ hostname: '127.0.0.1', port: 0, ...options });
  await server.start(handler);
  cleanups.push(() => server.stop({ graceMs: 200 }));
  return server;
}

function clientFor(server: IdentServer, hostname = '127.0.0.1'): IdentClient {
  const client = new IdentClient({ hostname, port: server.port, timeout: 2_000 });
  cleanups.push(() => client.close());
  return client;
}

describe.each(TRANSPORTS)('IdentClient against IdentServer (%s transport)', (transport) => {
  it('gets grimlock with opsys OTHER for 400, 500', async () => {
    const client = clientFor(await startServer(grimlock, { transport }));
    const response = await client.ident(400, 500);
    expect(response).toMatchObject({
      serverPort: 400,
      clientPort: 500,
      isSuccess: true,
      userId: 'grimlock',
      opsys: 'OTHER',
      charset: 'US-ASCII',
      errorType: undefined,
      raw: '400, 500 : USERID : OTHER : grimlock',
    });
  });

  it('gets NO-USER for any other ports', async () => {
    const client = clientFor(await startServer(grimlock, { transport }));
    const response = await client.ident(401, 500);
    expect(response).toMatchObject({
      serverPort: 401,
      clientPort: 500,
      isSuccess: false,
      errorType: 'NO-USER',
      userId: undefined,
    });
  });

  it('asks several queries on one connection and gets each its own answer', async () => {
    const remotePorts = new Set<number>();
    const server = await startServer(
      (tx) => {
        remotePorts.add(tx.remotePort);
        grimlock(tx);
      },
      { transport },
    );
    const client = clientFor(server);
    const responses = await Promise.all([client.ident(401, 500), client.ident(400, 500), client.ident(400, 501)]);
    expect(responses.map((response) => response.userId ?? response.errorType)).toEqual([
      'NO-USER',
      'grimlock',
      'NO-USER',
    ]);
    expect(remotePorts.size).toBe(1);
  });

  it('matches answers to queries when the handler answers them in reverse order', async () => {
    const waiting: IdentTransaction[] = [];
    const server = await startServer(
      (tx) => {
        waiting.push(tx);
        if (waiting.length === 3)
          for (const held of waiting.reverse()) held.replyWithUser('UNIX', `user${held.req.serverPort}`);
      },
      { transport },
    );
    const client = clientFor(server);
    const responses = await Promise.all([client.ident(1, 113), client.ident(2, 113), client.ident(3, 113)]);
    expect(responses.map((response) => response.userId)).toEqual(['user1', 'user2', 'user3']);
  });

  it('puts identical queries in flight to the server once', async () => {
    let asked = 0;
    const server = await startServer(
      (tx) => {
        asked++;
        grimlock(tx);
      },
      { transport },
    );
    const client = clientFor(server);
    const [a, b] = await Promise.all([client.ident(400, 500), client.ident(400, 500)]);
    expect(b).toBe(a);
    expect(a.userId).toBe('grimlock');
    expect(asked).toBe(1);
  });

  it('reads a UTF-8 user id and an X-token error', async () => {
    const server = await startServer(
      (tx) => {
        if (tx.req.serverPort === 1) tx.replyWithUser('UNIX', 'jörg', 'UTF-8');
        else tx.replyWithError('X-RATE-LIMITED');
      },
      { transport },
    );
    const client = clientFor(server);
    expect(await client.ident(1, 2)).toMatchObject({ userId: 'jörg', opsys: 'UNIX', charset: 'UTF-8' });
    expect(await client.ident(2, 2)).toMatchObject({ isSuccess: false, errorType: 'X-RATE-LIMITED' });
  });

  it('is seen by the handler from the client socket it connected from', async () => {
    let remoteAddress: string | undefined;
    const server = await startServer(
      (tx) => {
        remoteAddress = tx.remoteAddress;
        grimlock(tx);
      },
      { transport },
    );
    const client = new IdentClient({ port: server.port, localAddress: '127.0.0.1', timeout: 2_000 });
    cleanups.push(() => client.close());
    await client.ident(400, 500);
    expect(remoteAddress).toBe('127.0.0.1');
  });

  it('works over IPv6 loopback', async () => {
    const server = await startServer(grimlock, { transport, hostname: '::1' });
    const response = await clientFor(server, '::1').ident(400, 500);
    expect(response.userId).toBe('grimlock');
  });

  it('answers through the one-call helper', async () => {
    const server = await startServer(grimlock, { transport });
    const response = await ident({ port: server.port, serverPort: 400, clientPort: 500, timeout: 2_000 });
    expect(response.userId).toBe('grimlock');
  });

  it('fails with a connect error while the server is down and succeeds once it is back', async () => {
    const port = await closedPort();
    const server = new IdentServer({ hostname: '127.0.0.1', port, transport });
    cleanups.push(() => server.stop({ graceMs: 200 }));
    const client = new IdentClient({ port, timeout: 2_000 });
    cleanups.push(() => client.close());
    await expect(client.ident(400, 500)).rejects.toMatchObject({ code: 'ERR_IDENT_CONNECT' });
    await server.start(grimlock);
    expect((await client.ident(400, 500)).userId).toBe('grimlock');
    await server.stop({ graceMs: 200 });
    await expect(client.ident(400, 500)).rejects.toMatchObject({ code: 'ERR_IDENT_CONNECT' });
    await server.start(grimlock);
    expect((await client.ident(400, 500)).userId).toBe('grimlock');
  });
});
