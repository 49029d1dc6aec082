/**
 * identgate's IdentClient against oidentd (Debian oidentd), a real ident
 * server, on ephemeral loopback ports. oidentd looks real connections up in
 * the kernel's socket tables, so the tests open real TCP connections (one of
 * them owned by the user nobody) and check that the client asks about the
 * right port pair and reads oidentd's replies: USERID with and without a
 * charset, ERROR NO-USER, and INVALID-PORT for a query out of range. oidentd
 * answers one query per connection and closes it, which also exercises the
 * client's resending of queries left unanswered. Running oidentd and the
 * connection as nobody needs root, as in CI.
 */
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { userInfo } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdentClient, ident } from '../../gateway/client/client.js';
import { freePort, requireTools, startService, waitForListener, type Service } from './netns.js';

const HOST = '127.0.0.1';

interface Oidentd {
  readonly port: number;
  readonly service: Service;
}

async function startOidentd(extraArgs: readonly string[]): Promise<Oidentd> {
  const port = await freePort(HOST);
  // -i foreground, -S log to stderr, -q quiet: the test reads nothing but replies.
  const service = startService('oidentd', ['-i', '-S', '-q', '-a', HOST, '-p', String(port), ...extraArgs]);
  try {
    await waitForListener(HOST, port, 10_000);
  } catch (error) {
    await service.stop();
    throw new Error(`oidentd did not start: ${service.output()}`, { cause: error });
  }
  return { port, service };
}

/** A listener and a connection to it, both owned by this process. */
interface Connection {
  readonly listener: Server;
  readonly outgoing: Socket;
  readonly incoming: Socket;
}

async function openConnection(): Promise<Connection> {
  const listener = createServer();
  listener.listen(0, HOST);
  await once(listener, 'listening');
  const accepted = once(listener, 'connection') as Promise<[Socket]>;
  const outgoing = connect({ host: HOST, port: portOf(listener) });
  await once(outgoing, 'connect');
  const [incoming] = await accepted;
  return { listener, outgoing, incoming };
}

async function closeConnection(connection: Connection): Promise<void> {
  connection.outgoing.destroy();
  connection.incoming.destroy();
  connection.listener.close();
  await once(connection.listener, 'close');
}

function portOf(server: Server): number {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  return address.port;
}

let oidentd: Oidentd | undefined;
let oidentdOther: Oidentd | undefined;
let connection: Connection | undefined;

beforeAll(async () => {
  await requireTools([{ command: 'oidentd', debianPackage: 'oidentd' }]);
  oidentd = await startOidentd([]);
  // Answers with opsys OTHER and names the charset: "USERID : OTHER , UTF-8 : user".
  oidentdOther = await startOidentd(['-o', '-c', 'UTF-8']);
  connection = await openConnection();
});

afterAll(async () => {
  if (connection) await closeConnection(connection);
  await oidentd?.service.stop();
  await oidentdOther?.service.stop();
});

function started(): { oidentd: Oidentd; oidentdOther: Oidentd; connection: Connection } {
  if (!oidentd || !oidentdOther || !connection) throw new Error('beforeAll did not finish');
  return { oidentd, oidentdOther, connection };
}

describe('IdentClient querying oidentd', () => {
  it('gets the name of the user that owns a real connection', async () => {
    const { oidentd, connection } = started();
    const client = new IdentClient({ hostname: HOST, port: oidentd.port, timeout: 5_000 });
    try {
      // oidentd's host is ours: the outgoing socket's port is the server port.
      const serverPort = connection.outgoing.localPort!;
      const clientPort = portOf(connection.listener);
      const response = await client.ident(serverPort, clientPort);
      expect(response).toMatchObject({
        serverPort,
        clientPort,
        isSuccess: true,
        userId: userInfo().username,
        opsys: 'UNIX',
        charset: 'US-ASCII',
        errorType: undefined,
      });
      expect(response.raw).toBe(`${serverPort},${clientPort}:USERID:UNIX:${userInfo().username}`);
    } finally {
      await client.close();
    }
  });

  it('gets the user nobody for a connection a process running as nobody opened', async () => {
    const { oidentd, connection } = started();
    expect(
      process.getuid?.(),
      'this test runs a process as nobody with setpriv, which needs root (CI runs as root)',
    ).toBe(0);
    await requireTools([{ command: 'setpriv', debianPackage: 'util-linux' }]);
    const listenerPort = portOf(connection.listener);
    const script = `const s = require('node:net').connect(${listenerPort}, '${HOST}', () => console.log(s.localPort));`;
    const nobody = startService('setpriv', [
      '--reuid=nobody',
      '--regid=nogroup',
      '--clear-groups',
      process.execPath,
      '-e',
      script,
    ]);
    try {
      const nobodyPort = Number(await nobody.firstLine);
      const response = await ident({
        hostname: HOST,
        port: oidentd.port,
        timeout: 5_000,
        serverPort: nobodyPort,
        clientPort: listenerPort,
      });
      expect(response).toMatchObject({ isSuccess: true, userId: 'nobody', opsys: 'UNIX' });
    } finally {
      await nobody.stop();
    }
  });

  it('reads opsys OTHER and the charset when oidentd names them', async () => {
    const { oidentdOther, connection } = started();
    const serverPort = connection.outgoing.localPort!;
    const clientPort = portOf(connection.listener);
    const response = await ident({ hostname: HOST, port: oidentdOther.port, timeout: 5_000, serverPort, clientPort });
    expect(response).toMatchObject({ isSuccess: true, userId: userInfo().username, opsys: 'OTHER', charset: 'UTF-8' });
    expect(response.raw).toBe(`${serverPort},${clientPort}:USERID:OTHER,UTF-8:${userInfo().username}`);
  });

  it('gets ERROR NO-USER for a port pair no connection uses', async () => {
    const { oidentd } = started();
    const unused = await freePort(HOST);
    const response = await ident({
      hostname: HOST,
      port: oidentd.port,
      timeout: 5_000,
      serverPort: unused,
      clientPort: 9,
    });
    expect(response).toMatchObject({
      serverPort: unused,
      clientPort: 9,
      isSuccess: false,
      errorType: 'NO-USER',
      userId: undefined,
    });
  });

  it('answers several queries on one client although oidentd closes the connection after each reply', async () => {
    const { oidentd, connection } = started();
    const client = new IdentClient({ hostname: HOST, port: oidentd.port, timeout: 5_000 });
    try {
      const serverPort = connection.outgoing.localPort!;
      const clientPort = portOf(connection.listener);
      const unused = await freePort(HOST);
      const responses = await Promise.all([
        client.ident(serverPort, clientPort),
        client.ident(unused, 9),
        client.ident(clientPort, serverPort), // the accepted side of the same connection
      ]);
      expect(
        responses.map((response) => [
          response.serverPort,
          response.clientPort,
          response.isSuccess ? response.userId : response.errorType,
        ]),
      ).toEqual([
        [serverPort, clientPort, userInfo().username],
        [unused, 9, 'NO-USER'],
        [clientPort, serverPort, userInfo().username],
      ]);
    } finally {
      await client.close();
    }
  });

  it('gets ERROR INVALID-PORT from oidentd for a port out of range', async () => {
    const { oidentd } = started();
    // IdentClient refuses to send port 0 (RangeError), so this query is written by hand.
    const socket = connect({ host: HOST, port: oidentd.port });
    socket.setEncoding('utf8');
    await once(socket, 'connect');
    socket.write('0, 0\r\n');
    let reply = '';
    socket.on('data', (chunk: string) => (reply += chunk));
    await once(socket, 'end');
    socket.destroy();
    expect(reply).toBe('0,0:ERROR:INVALID-PORT\r\n');
    await expect(new IdentClient({ hostname: HOST, port: oidentd.port }).ident(0, 0)).rejects.toThrow(RangeError);
  });
});
