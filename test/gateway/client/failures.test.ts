/**
 * IdentClient when things go wrong: replies for other ports, garbage, over-long
 * and unsolicited lines, silence, a server that hangs up, a refused connection
 * and the reconnect after it, a server that answers one query per connection,
 * and the caller closing the client. Every failure carries a stable code.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import {
  ident,
  IdentClient,
  IdentClientError,
  IdentClosedError,
  IdentConnectError,
  IdentMalformedReplyError,
  IdentPortMismatchError,
  IdentTimeoutError,
  type IdentClientOptions,
} from '../../../gateway/client/client.js';
import { closedAfterEachTest, closedPort } from './fake-server.js';

const { cleanups, fake } = closedAfterEachTest();

function newClient(options: IdentClientOptions): IdentClient {
  const client = new IdentClient({ timeout: 2_000, ...options });
  cleanups.push(() => client.close());
  return client;
}

/** Awaits a rejection and returns the error, failing the test if the promise resolves. */
async function failure(promise: Promise<unknown>): Promise<IdentClientError> {
  const outcome = await promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  if (!('error' in outcome)) throw new Error(`expected a rejection, got ${JSON.stringify(outcome.value)}`);
  expect(outcome.error).toBeInstanceOf(IdentClientError);
  return outcome.error as IdentClientError;
}

describe('malformed replies', () => {
  it('rejects a reply for other ports as malformed and drops the connection', async () => {
    const server = await fake((_line, socket) => socket.write('9, 9 : USERID : UNIX : mallory\r\n'));
    const client = newClient({ port: server.port });
    const error = await failure(client.ident(1, 2));
    expect(error).toBeInstanceOf(IdentPortMismatchError);
    expect(error).toBeInstanceOf(IdentMalformedReplyError);
    expect(error.code).toBe('ERR_IDENT_MALFORMED_REPLY');
    expect(error).toMatchObject({
      expected: { serverPort: 1, clientPort: 2 },
      received: { serverPort: 9, clientPort: 9 },
    });
    await server.allClosed();
  });

  it('rejects every query in flight when a reply has the wrong ports', async () => {
    const server = await fake();
    const client = newClient({ port: server.port });
    const first = failure(client.ident(1, 2));
    const second = failure(client.ident(3, 4));
    await server.waitForLines(2);
    server.sockets[0]!.write('3, 4 : USERID : UNIX : out-of-order\r\n');
    expect((await first).code).toBe('ERR_IDENT_MALFORMED_REPLY');
    expect((await second).code).toBe('ERR_IDENT_MALFORMED_REPLY');
  });

  it('rejects a garbage reply as malformed', async () => {
    const server = await fake((_line, socket) => socket.write('hello there\r\n'));
    const error = await failure(newClient({ port: server.port }).ident(1, 2));
    expect(error).toBeInstanceOf(IdentMalformedReplyError);
    expect(error).not.toBeInstanceOf(IdentPortMismatchError);
    expect(error.code).toBe('ERR_IDENT_MALFORMED_REPLY');
    expect((error as IdentMalformedReplyError).line).toBe('hello there');
  });

  it('rejects a reply line longer than the cap as malformed', async () => {
    const server = await fake((line, socket) => socket.write(`${line} : USERID : UNIX : ${'x'.repeat(2000)}`));
    const error = await failure(newClient({ port: server.port }).ident(1, 2));
    expect(error.code).toBe('ERR_IDENT_MALFORMED_REPLY');
    expect(error.message).toMatch(/longer than 1000 octets/);
  });

  it('drops the connection after an unsolicited reply and reconnects for the next query', async () => {
    const server = await fake((line, socket) =>
      socket.write(`${line} : ERROR : NO-USER\r\n${line} : ERROR : NO-USER\r\n`),
    );
    const client = newClient({ port: server.port });
    expect((await client.ident(1, 2)).errorType).toBe('NO-USER');
    expect((await client.ident(3, 4)).errorType).toBe('NO-USER');
    expect(server.connections).toBe(2);
  });

  it('reconnects after a malformed reply', async () => {
    let replies = 0;
    const server = await fake((line, socket) =>
      socket.write(replies++ === 0 ? 'garbage\r\n' : `${line} : USERID : UNIX : fine\r\n`),
    );
    const client = newClient({ port: server.port });
    expect((await failure(client.ident(1, 2))).code).toBe('ERR_IDENT_MALFORMED_REPLY');
    expect((await client.ident(1, 2)).userId).toBe('fine');
    expect(server.connections).toBe(2);
  });
});

describe('timeouts', () => {
  it('rejects with a timeout error when the server stays silent', async () => {
    const server = await fake();
    const client = newClient({ port: server.port, timeout: 200 });
    const started = performance.now();
    const error = await failure(client.ident(1, 2));
    expect(error).toBeInstanceOf(IdentTimeoutError);
    expect(error.code).toBe('ERR_IDENT_TIMEOUT');
    expect(error).toMatchObject({ query: { serverPort: 1, clientPort: 2 }, timeout: 200 });
    expect(performance.now() - started).toBeGreaterThanOrEqual(190);
  });

  it('drops a connection nobody waits on after a timeout and asks the next query on a new one', async () => {
    let replies = 0;
    const server = await fake((line, socket) =>
      replies++ === 0 ? undefined : socket.write(`${line} : USERID : UNIX : late\r\n`),
    );
    const client = newClient({ port: server.port, timeout: 200 });
    expect((await failure(client.ident(1, 2))).code).toBe('ERR_IDENT_TIMEOUT');
    expect((await client.ident(1, 2)).userId).toBe('late');
    expect(server.connections).toBe(2);
  });

  it('counts each timeout from when its query was sent, and a late reply does not answer the next query', async () => {
    const server = await fake();
    const client = newClient({ port: server.port, timeout: 400 });
    const first = failure(client.ident(1, 2));
    await server.waitForLines(1);
    await delay(200); // the second query is sent half a timeout later
    const second = client.ident(3, 4);
    expect((await first).code).toBe('ERR_IDENT_TIMEOUT');
    // The first query has timed out, the second has ~200 ms left: both replies now arrive, in order.
    server.sockets[0]!.write('1, 2 : USERID : UNIX : first\r\n3, 4 : USERID : UNIX : second\r\n');
    expect((await second).userId).toBe('second');
    expect(server.connections).toBe(1);
  });

  it('sends an identical query again after the first one timed out', async () => {
    let replies = 0;
    const server = await fake((line, socket) =>
      replies++ === 0 ? undefined : socket.write(`${line} : USERID : UNIX : retried\r\n`),
    );
    const client = newClient({ port: server.port, timeout: 200 });
    await failure(client.ident(5, 6));
    expect((await client.ident(5, 6)).userId).toBe('retried');
    expect(server.lines).toEqual(['5, 6', '5, 6']);
  });
});

describe('closed connections', () => {
  it('rejects every query in flight with a closed error when the server hangs up without answering', async () => {
    const server = await fake();
    const client = newClient({ port: server.port });
    const asked = [failure(client.ident(1, 2)), failure(client.ident(3, 4)), failure(client.ident(5, 6))];
    await server.waitForLines(3);
    server.sockets[0]!.end();
    for (const error of await Promise.all(asked)) {
      expect(error).toBeInstanceOf(IdentClosedError);
      expect(error.code).toBe('ERR_IDENT_CLOSED');
    }
  });

  it('rejects with a closed error carrying the socket error when the server resets the connection', async () => {
    const server = await fake((_line, socket) => socket.resetAndDestroy());
    const error = await failure(newClient({ port: server.port }).ident(1, 2));
    expect(error.code).toBe('ERR_IDENT_CLOSED');
    expect((error.cause as NodeJS.ErrnoException | undefined)?.code).toBe('ECONNRESET');
  });

  it('reconnects after the server hung up', async () => {
    let lines = 0;
    const server = await fake((line, socket) =>
      lines++ === 0 ? socket.end() : socket.write(`${line} : USERID : UNIX : back\r\n`),
    );
    const client = newClient({ port: server.port });
    expect((await failure(client.ident(1, 2))).code).toBe('ERR_IDENT_CLOSED');
    expect((await client.ident(1, 2)).userId).toBe('back');
  });

  it('sends the queries a one-query-per-connection server left unanswered again on new connections', async () => {
    const server = await fake((line, socket) => socket.end(`${line} : USERID : UNIX : u${line.split(',')[0]}\r\n`));
    const client = newClient({ port: server.port });
    const responses = await Promise.all([client.ident(1, 9), client.ident(2, 9), client.ident(3, 9)]);
    expect(responses.map((response) => response.userId)).toEqual(['u1', 'u2', 'u3']);
    expect(server.connections).toBe(3);
  });

  it('asks a one-query-per-connection server query after query', async () => {
    const server = await fake((line, socket) => socket.end(`${line} : ERROR : NO-USER\r\n`));
    const client = newClient({ port: server.port });
    for (let port = 1; port <= 5; port++) expect((await client.ident(port, 113)).errorType).toBe('NO-USER');
  });

  it('rejects the queries in flight with a closed error when the caller closes the client', async () => {
    const server = await fake();
    const client = newClient({ port: server.port });
    const asked = [failure(client.ident(1, 2)), failure(client.ident(3, 4))];
    await server.waitForLines(2);
    await client.close();
    for (const error of await Promise.all(asked)) expect(error.code).toBe('ERR_IDENT_CLOSED');
    await server.allClosed();
  });

  it('rejects queries asked after close()', async () => {
    const client = newClient({ port: await closedPort() });
    await client.close();
    expect((await failure(client.ident(1, 2))).code).toBe('ERR_IDENT_CLOSED');
  });
});

describe('refused connections', () => {
  it('rejects with a connect error that keeps the errno as cause', async () => {
    const port = await closedPort();
    const client = newClient({ port });
    const asked = [failure(client.ident(1, 2)), failure(client.ident(3, 4))];
    for (const error of await Promise.all(asked)) {
      expect(error).toBeInstanceOf(IdentConnectError);
      expect(error.code).toBe('ERR_IDENT_CONNECT');
      expect((error.cause as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
      expect(error.message).toContain(`127.0.0.1:${port}`);
    }
  });

  it('connects again on the next call once the server is up', async () => {
    const port = await closedPort();
    const client = newClient({ port });
    expect((await failure(client.ident(1, 2))).code).toBe('ERR_IDENT_CONNECT');
    await fake((line, socket) => socket.write(`${line} : USERID : UNIX : up\r\n`), { port });
    expect((await client.ident(1, 2)).userId).toBe('up');
  });

  it('names an IPv6 server in brackets when the connection is refused', async () => {
    const port = await closedPort('::1');
    const error = await failure(newClient({ hostname: '::1', port }).ident(1, 2));
    expect(error.code).toBe('ERR_IDENT_CONNECT');
    expect(error.message).toContain(`[::1]:${port}`);
  });

  it('makes the one-call helper reject with a connect error', async () => {
    const port = await closedPort();
    const error = await failure(ident({ port, serverPort: 1, clientPort: 2 }));
    expect(error.code).toBe('ERR_IDENT_CONNECT');
  });
});
