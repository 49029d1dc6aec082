/**
 * A fake ident server for the IdentClient tests: a bare net.Server on a
 * loopback address that records every request line it receives and lets each
 * test answer with literal bytes (or not at all). Waiting is event-driven:
 * `waitForLines(n)` resolves when the n-th request line has arrived.
 *
 * @example
 * const server = await FakeIdentServer.start((line, socket) => socket.write(`${line} : ERROR : NO-USER\r\n`));
 * const client = new IdentClient({ port: server.port });
 * await client.ident(1, 2);
 * await server.close();
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach } from 'vitest';

/** Called for each request line (without its line end) received on `socket`. */
export type OnRequestLine = (line: string, socket: Socket) => unknown;

export class FakeIdentServer {
  /** Every request line received, over all connections, in arrival order. */
  readonly lines: string[] = [];
  /** Number of TCP connections accepted so far. */
  connections = 0;
  readonly #server: Server;
  /** Accepted sockets, in order, so a test can write to one when it chooses. */
  readonly sockets: Socket[] = [];
  #waiters: { count: number; resolve: () => void }[] = [];

  private constructor(server: Server) {
    this.#server = server;
  }

  /** Listens on an ephemeral port of `host` (default 127.0.0.1). */
  static async start(
    onLine: OnRequestLine = () => {},
    options: { host?: string; port?: number; onConnection?: (socket: Socket) => void } = {},
  ): Promise<FakeIdentServer> {
    const server = createServer();
    const fake = new FakeIdentServer(server);
    server.on('connection', (socket) => fake.#accept(socket, onLine, options.onConnection));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    return fake;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** Resolves once at least `count` request lines have arrived. */
  waitForLines(count: number): Promise<void> {
    if (this.lines.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ count, resolve }));
  }

  /** Resolves when every accepted connection has closed. */
  async allClosed(): Promise<void> {
    await Promise.all(
      this.sockets.map((socket) =>
        socket.closed ? undefined : new Promise((resolve) => socket.once('close', resolve)),
      ),
    );
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(socket: Socket, onLine: OnRequestLine, onConnection: ((socket: Socket) => void) | undefined): void {
    this.connections++;
    this.sockets.push(socket);
    socket.setNoDelay(true);
    socket.on('error', () => {}); // a client that resets is fine here
    let partial = '';
    socket.on('data', (chunk: Buffer) => {
      partial += chunk.toString('latin1');
      let lf: number;
      while ((lf = partial.indexOf('\n')) !== -1) {
        const line = partial.slice(0, lf).replace(/\r$/, '');
        partial = partial.slice(lf + 1);
        this.lines.push(line);
        this.#waiters = this.#waiters.filter((waiter) => {
          if (this.lines.length < waiter.count) return true;
          waiter.resolve();
          return false;
        });
        void onLine(line, socket);
      }
    });
    onConnection?.(socket);
  }
}

/** Writes `octets` one at a time, each in its own write, waiting for each to be flushed. */
export async function dribble(socket: Socket, octets: Uint8Array): Promise<void> {
  for (const octet of octets) {
    await new Promise<void>((resolve, reject) =>
      socket.write(Uint8Array.of(octet), (error) => (error ? reject(error) : resolve())),
    );
  }
}

/** A loopback port nothing listens on right now (bound, then released). */
export async function closedPort(host = '127.0.0.1'): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * For a test file: `cleanups` run after each test, newest first (push a
 * client's close there), and `fake` starts a FakeIdentServer closed that way.
 *
 * @example
 * const { cleanups, fake } = closedAfterEachTest();
 * const server = await fake((line, socket) => socket.write(`${line} : ERROR : NO-USER\r\n`));
 */
export function closedAfterEachTest(): {
  cleanups: (() => Promise<void>)[];
  fake: (...args: Parameters<typeof FakeIdentServer.start>) => Promise<FakeIdentServer>;
} {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  return {
    cleanups,
    fake: async (...args) => {
      const server = await FakeIdentServer.start(...args);
      cleanups.push(() => server.close());
      return server;
    },
  };
}
