/**
 * The transport contract (gateway/server/transport/types.ts), held by both adapters
 * over real loopback TCP: the libuv addon (native.ts + uv-tcp.c) and node:net
 * (node.ts). Clients are plain net.Socket peers writing literal bytes; every
 * wait is for an event, bounded by WAIT_MS, and afterEach closes what a test
 * opened even when it failed.
 */
import { execFile } from 'node:child_process';
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { TransactionEndpoints } from '../../../gateway/server/transaction.js';
import { selectTransport } from '../../../gateway/server/transport/index.js';
import { loadNativeTransport } from '../../../gateway/server/transport/native.js';
import { nodeTransport } from '../../../gateway/server/transport/node.js';
import type { ByteStream, Listener, StreamReceiver, Transport } from '../../../gateway/server/transport/types.js';

/** The built module, which finds the addon `npm run build` put next to it. */
const BUILT_TRANSPORT_INDEX = new URL('../../../dist/gateway/server/transport/index.js', import.meta.url).href;

const WAIT_MS = 5_000;

const hasIpv6Loopback = Object.values(networkInterfaces()).some((addresses) =>
  addresses?.some((address) => address.address === '::1'),
);

// ---- clean-up: everything a test opens is closed after it, pass or fail ----

const openedResources: (() => unknown)[] = [];

afterEach(async () => {
  await Promise.allSettled(openedResources.splice(0).map((close) => close()));
});

// ---- waiting for events ----

/** Lets the event loop run through `count` full iterations (each with a poll phase for I/O). */
async function loopTurns(count: number): Promise<void> {
  for (let i = 0; i < count; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** Something whose state changes on events, with a bounded wait for a condition on that state. */
abstract class Watched {
  readonly #wakers = new Set<() => void>();

  protected changed(): void {
    for (const wake of [...this.#wakers]) wake();
  }

  /** What the state is, for a timeout's message. */
  protected abstract state(): string;

  until(check: () => boolean, what: string, timeoutMs = WAIT_MS): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#wakers.delete(wake);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} (${this.state()})`));
      }, timeoutMs);
      const wake = (): void => {
        if (!check()) return;
        clearTimeout(timer);
        this.#wakers.delete(wake);
        resolve();
      };
      this.#wakers.add(wake);
      wake();
    });
  }
}

// ---- the server side: a receiver that records every call ----

type ReceiverCall = 'data' | 'end' | 'drain' | 'error' | 'close';

class RecordingReceiver extends Watched implements StreamReceiver {
  readonly calls: ReceiverCall[] = [];
  readonly errors: NodeJS.ErrnoException[] = [];
  /** Runs after each call is recorded: a test's server behaviour. */
  react: (call: ReceiverCall) => void = () => {};
  readonly #chunks: Buffer[] = [];

  onData(chunk: Uint8Array): void {
    // Copied inside the call: a borrowed chunk's memory is reused by the next read.
    this.#chunks.push(Buffer.from(chunk));
    this.#record('data');
  }

  onEnd(): void {
    this.#record('end');
  }

  onDrain(): void {
    this.#record('drain');
  }

  onError(error: NodeJS.ErrnoException): void {
    this.errors.push(error);
    this.#record('error');
  }

  onClose(): void {
    this.#record('close');
  }

  received(): Buffer {
    return Buffer.concat(this.#chunks);
  }

  count(call: ReceiverCall): number {
    return this.calls.filter((seen) => seen === call).length;
  }

  untilCall(call: ReceiverCall): Promise<void> {
    return this.until(() => this.calls.includes(call), `on${call[0]!.toUpperCase()}${call.slice(1)}`);
  }

  protected state(): string {
    return `calls [${this.calls.join(', ')}], received ${JSON.stringify(this.received().toString('latin1').slice(0, 200))}`;
  }

  #record(call: ReceiverCall): void {
    this.calls.push(call);
    this.react(call);
    this.changed();
  }
}

interface Accepted {
  readonly stream: ByteStream;
  readonly endpoints: TransactionEndpoints;
  readonly receiver: RecordingReceiver;
}

class Served extends Watched {
  readonly accepted: Accepted[] = [];
  readonly listenerErrors: Error[] = [];
  #listener: Listener | undefined;
  #taken = 0;

  get listener(): Listener {
    if (!this.#listener) throw new Error('not listening yet');
    return this.#listener;
  }

  set listener(listener: Listener) {
    this.#listener = listener;
  }

  get port(): number {
    return this.listener.address.port;
  }

  add(accepted: Accepted): void {
    this.accepted.push(accepted);
    this.changed();
  }

  /** The next accepted connection not yet handed to the test. */
  async nextAccepted(): Promise<Accepted> {
    const index = this.#taken++;
    await this.until(() => this.accepted.length > index, `accepted connection #${index + 1}`);
    return this.accepted[index]!;
  }

  protected state(): string {
    return `${this.accepted.length} accepted`;
  }
}

/**
 * Listens with the transport; every accepted stream gets a RecordingReceiver
 * at once (bytes may follow right away), then `onAccepted` (a test's server
 * behaviour) runs. Closes the listener and destroys its streams after the test.
 */
async function serve(
  transport: Transport,
  hostname = '127.0.0.1',
  port = 0,
  onAccepted: (accepted: Accepted) => void = () => {},
): Promise<Served> {
  const served = new Served();
  served.listener = await transport.listen(
    { hostname, port },
    (stream, endpoints) => {
      const receiver = new RecordingReceiver();
      stream.attach(receiver);
      const accepted = { stream, endpoints, receiver };
      openedResources.push(() => stream.destroy());
      served.add(accepted);
      onAccepted(accepted);
    },
    (error) => served.listenerErrors.push(error),
  );
  const listener = served.listener;
  openedResources.push(() => listener.close());
  return served;
}

// ---- the client side: a plain net.Socket ----

class Client extends Watched {
  readonly #chunks: Buffer[] = [];
  receivedLength = 0;
  connected = false;
  sawEnd = false;
  sawClose = false;
  error: Error | undefined;

  constructor(readonly socket: net.Socket) {
    super();
    socket.on('connect', () => this.#event(() => (this.connected = true)));
    socket.on('data', (chunk: Buffer) =>
      this.#event(() => {
        this.#chunks.push(chunk);
        this.receivedLength += chunk.length;
      }),
    );
    socket.on('end', () => this.#event(() => (this.sawEnd = true)));
    socket.on('close', () => this.#event(() => (this.sawClose = true)));
    socket.on('error', (error) => this.#event(() => (this.error = error)));
  }

  received(): Buffer {
    return Buffer.concat(this.#chunks);
  }

  /** Resolves once the socket's write has been handed to the kernel (on loopback: into the server's receive queue). */
  write(bytes: string | Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(bytes, (error) => (error ? reject(error) : resolve())));
  }

  untilReceived(expected: Buffer): Promise<void> {
    return this.until(() => this.receivedLength >= expected.length, `${expected.length} bytes`);
  }

  untilEnd(): Promise<void> {
    return this.until(() => this.sawEnd, "the client's 'end'");
  }

  untilClose(): Promise<void> {
    return this.until(() => this.sawClose, "the client's 'close'");
  }

  protected state(): string {
    return `connected ${this.connected}, end ${this.sawEnd}, close ${this.sawClose}, error ${this.error?.message ?? 'none'}, ${this.receivedLength} bytes received`;
  }

  #event(update: () => void): void {
    update();
    this.changed();
  }
}

async function connect(port: number, host = '127.0.0.1', options: { allowHalfOpen?: boolean } = {}): Promise<Client> {
  const client = new Client(net.connect({ port, host, allowHalfOpen: options.allowHalfOpen ?? false }));
  openedResources.push(() => client.socket.destroy());
  await client.until(() => client.connected || client.error !== undefined, `a connection to ${host}:${port}`);
  if (client.error) throw client.error;
  return client;
}

/** A client and the stream the server accepted for it. */
async function connectAccepted(
  served: Served,
  host = '127.0.0.1',
  options: { allowHalfOpen?: boolean } = {},
): Promise<Accepted & { client: Client }> {
  const client = await connect(served.port, host, options);
  return { client, ...(await served.nextAccepted()) };
}

/** A plain net.Server holding a port, as another program would. */
async function occupyPort(host: string): Promise<number> {
  const server = net.createServer();
  openedResources.push(() => new Promise((done) => server.close(done)));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  return (server.address() as net.AddressInfo).port;
}

function thrownBy(call: () => unknown): unknown {
  try {
    call();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

// ---- the contract, for both transports ----

// From the source tree it finds the addon in dist/ (nativeAddonPath).
const nativeTransport = loadNativeTransport();

describe.each([
  ['native', nativeTransport],
  ['node', nodeTransport],
] as const)('the %s transport', (kind, transport) => {
  it('is the transport it says it is', () => {
    expect(transport.kind).toBe(kind);
  });

  describe('an accepted connection reports its endpoints', () => {
    const listenHosts = [
      { hostname: '127.0.0.1', clientHost: '127.0.0.1' },
      { hostname: '0.0.0.0', clientHost: '127.0.0.1' },
      ...(hasIpv6Loopback ? [{ hostname: '::1', clientHost: '::1' }] : []),
    ];

    it.each(listenHosts)(
      'on a listener bound to $hostname, as the client sees them swapped',
      async ({ hostname, clientHost }) => {
        const served = await serve(transport, hostname);
        const { client, endpoints } = await connectAccepted(served, clientHost);
        expect(endpoints).toEqual({
          remoteAddress: client.socket.localAddress,
          remotePort: client.socket.localPort,
          localAddress: clientHost,
          localPort: served.port,
        });
        expect(client.socket.remoteAddress).toBe(clientHost);
      },
    );

    it.runIf(hasIpv6Loopback)('on a dual-stack [::] listener, with an IPv4 client in its mapped form', async () => {
      const served = await serve(transport, '::');
      const { client, endpoints } = await connectAccepted(served, '127.0.0.1');
      expect(endpoints).toEqual({
        remoteAddress: `::ffff:${client.socket.localAddress}`,
        remotePort: client.socket.localPort,
        localAddress: '::ffff:127.0.0.1',
        localPort: served.port,
      });
    });
  });

  it(`says its chunks are ${kind === 'native' ? '' : 'not '}borrowed`, async () => {
    const served = await serve(transport);
    const { stream } = await connectAccepted(served);
    expect(stream.borrowsChunks).toBe(kind === 'native');
  });

  it("delivers the client's bytes through onData in order", async () => {
    const served = await serve(transport);
    const { client, receiver } = await connectAccepted(served);
    // Every byte value, then enough that several reads reuse a borrowed buffer.
    const everyOctet = Buffer.from(Array.from({ length: 256 }, (_, octet) => octet));
    const pattern = Buffer.alloc(300_000, 'abcdefghijklmnopqrstuvwxyz0123456789');
    await client.write('first line\r\n');
    await client.write(everyOctet);
    await client.write(pattern);
    const expected = Buffer.concat([Buffer.from('first line\r\n', 'latin1'), everyOctet, pattern]);
    await receiver.until(() => receiver.received().length >= expected.length, `${expected.length} bytes`);
    expect(receiver.received().equals(expected)).toBe(true);
    expect(receiver.count('data')).toBeGreaterThan(1);
  });

  it('writes text as UTF-8 and accepts a small write at once', async () => {
    const served = await serve(transport);
    const { client, stream } = await connectAccepted(served);
    expect(stream.write('café €\r\n')).toBe(true);
    const expected = Buffer.from('636166c3a920e282ac0d0a', 'hex');
    await client.untilReceived(expected);
    expect(client.received()).toEqual(expected);
  });

  it('writes long text whole when a multi-byte character crosses 4 KiB', async () => {
    const served = await serve(transport);
    const { client, stream } = await connectAccepted(served);
    // 4,093 ASCII octets, then a 3-octet character that would end at octet 4,096.
    const text = `${'a'.repeat(4093)}€\r\n`;
    const expected = Buffer.concat([Buffer.alloc(4093, 'a'), Buffer.from('e282ac0d0a', 'hex')]);
    stream.write(text);
    stream.end();
    await client.untilEnd();
    expect(client.receivedLength).toBe(expected.length);
    expect(client.received().equals(expected)).toBe(true);
  });

  it("calls onEnd when the client half-closes, and end() then closes: the client sees 'end' and 'close', onClose once", async () => {
    const served = await serve(transport);
    const { client, stream, receiver } = await connectAccepted(served);
    client.socket.end();
    await receiver.untilCall('end');
    expect(receiver.calls).toEqual(['end']);
    stream.end();
    await client.untilEnd();
    await client.untilClose();
    await receiver.untilCall('close');
    await loopTurns(3);
    expect(receiver.calls).toEqual(['end', 'close']);
  });

  it('end() before the client ends sends FIN while still reading; onEnd then onClose follow the client ending', async () => {
    const served = await serve(transport);
    const { client, stream, receiver } = await connectAccepted(served, '127.0.0.1', { allowHalfOpen: true });
    stream.end();
    await client.untilEnd();
    await client.write('after fin\r\n');
    await receiver.until(() => receiver.received().toString('latin1') === 'after fin\r\n', 'the bytes sent after FIN');
    expect(receiver.calls).toEqual(['data']);
    client.socket.end();
    await receiver.untilCall('close');
    await client.untilClose();
    expect(receiver.calls).toEqual(['data', 'end', 'close']);
  });

  it('a write after end() is an error, and the connection closes without waiting for the client', async () => {
    const served = await serve(transport);
    const { client, stream, receiver } = await connectAccepted(served, '127.0.0.1', { allowHalfOpen: true });
    stream.end();
    await client.untilEnd();
    stream.write('too late\r\n');
    await receiver.untilCall('close');
    expect(receiver.errors).toHaveLength(1);
    expect(receiver.calls.at(-1)).toBe('close');
    expect(client.received().length).toBe(0);
  });

  it("destroy() closes at once: the client sees 'close' and onClose is called once, without an error", async () => {
    const served = await serve(transport);
    const { client, stream, receiver } = await connectAccepted(served);
    stream.destroy();
    await client.untilClose();
    await receiver.untilCall('close');
    await loopTurns(3);
    expect(receiver.calls).toEqual(['close']);
  });

  it('a client reset gives onClose, after an ECONNRESET error if any', async () => {
    const served = await serve(transport);
    const { client, receiver } = await connectAccepted(served);
    client.socket.resetAndDestroy();
    await receiver.untilCall('close');
    await loopTurns(3);
    expect(receiver.count('close')).toBe(1);
    expect(receiver.calls.at(-1)).toBe('close');
    expect(receiver.errors.map((error) => error.code)).toEqual(receiver.errors.map(() => 'ECONNRESET'));
  });

  it('write returns false once a client that does not read lets the buffer fill, and onDrain follows when it reads', async () => {
    const served = await serve(transport);
    const { client, stream, receiver } = await connectAccepted(served);
    client.socket.pause();
    const chunk = 'x'.repeat(65_536);
    let written = 0;
    let accepted = true;
    // Bounded: loopback socket buffers hold a few MiB, far below 2,048 chunks (128 MiB).
    for (let i = 0; i < 2_048 && accepted; i++) {
      accepted = stream.write(chunk);
      written += chunk.length;
    }
    expect(accepted).toBe(false);
    client.socket.resume();
    await Promise.all([
      receiver.untilCall('drain'),
      client.until(() => client.receivedLength === written, `all ${written} bytes`),
    ]);
    expect(client.receivedLength).toBe(written);
    expect(receiver.errors).toEqual([]);
  });

  it('pause() holds onData back until resume(), and nothing is lost', async () => {
    const served = await serve(transport, '127.0.0.1', 0, ({ stream }) => stream.pause());
    const { client, stream, receiver } = await connectAccepted(served);
    await client.write('held back\r\n');
    // No event says "nothing arrived": let the loop poll the socket a few times.
    await loopTurns(5);
    expect(receiver.calls).toEqual([]);
    stream.resume();
    await client.write('after resume\r\n');
    await receiver.until(() => receiver.received().length >= 'held back\r\nafter resume\r\n'.length, 'both writes');
    expect(receiver.received().toString('latin1')).toBe('held back\r\nafter resume\r\n');
  });

  it('rejects listening on a port already in use with EADDRINUSE', async () => {
    const port = await occupyPort('127.0.0.1');
    const listening = serve(transport, '127.0.0.1', port);
    await expect(listening).rejects.toMatchObject({ code: 'EADDRINUSE' });
  });

  it('frees the port on Listener.close(): a new listener binds it right after and accepts', async () => {
    const first = await serve(transport);
    await first.listener.close();
    const second = await serve(transport, '127.0.0.1', first.port);
    expect(second.port).toBe(first.port);
    await connectAccepted(second);
    expect(first.accepted).toEqual([]);
  });

  it('ignores write, end, destroy, pause, resume and setNoDelay after onClose', async () => {
    const served = await serve(transport);
    const { client, stream, receiver } = await connectAccepted(served);
    client.socket.end();
    await receiver.untilCall('end');
    stream.end();
    await receiver.untilCall('close');
    expect(() => {
      stream.write('too late\r\n');
      stream.end();
      stream.pause();
      stream.resume();
      stream.setNoDelay();
      stream.destroy();
    }).not.toThrow();
    await client.untilClose();
    await loopTurns(3);
    expect(receiver.calls).toEqual(['end', 'close']);
    expect(client.received().length).toBe(0);
  });

  it("does not let a closed stream's calls reach the connection that came after it", async () => {
    const served = await serve(transport);
    const first = await connectAccepted(served);
    first.stream.destroy();
    await first.receiver.untilCall('close');
    const second = await connectAccepted(served);
    first.stream.write('stray\r\n');
    first.stream.end();
    first.stream.destroy();
    expect(second.stream.write('mine\r\n')).toBe(true);
    await second.client.untilReceived(Buffer.from('mine\r\n'));
    await loopTurns(3);
    expect(second.client.received().toString('latin1')).toBe('mine\r\n');
    expect(second.client.sawClose).toBe(false);
    expect(second.receiver.calls).toEqual([]);
  });

  it('gives 500 connections in turn each its own echoed line', { timeout: 30_000 }, async () => {
    const served = await serve(transport, '127.0.0.1', 0, ({ stream, receiver }) => {
      let answered = false;
      receiver.react = (call) => {
        const text = receiver.received().toString('latin1');
        if (call !== 'data' || answered || !text.endsWith('\r\n')) return;
        answered = true;
        stream.write(`echo ${text}`);
        stream.end();
      };
    });
    const mismatches: string[] = [];
    for (let i = 0; i < 500; i++) {
      const { client, receiver } = await connectAccepted(served);
      await client.write(`connection ${i}\r\n`);
      await client.untilClose();
      // The server's close frees the connection's number for the next one.
      await receiver.untilCall('close');
      const echoed = client.received().toString('latin1');
      if (echoed !== `echo connection ${i}\r\n`) mismatches.push(`#${i}: ${JSON.stringify(echoed)}`);
    }
    expect(mismatches).toEqual([]);
    expect(served.accepted.length).toBe(500);
    expect(served.listenerErrors).toEqual([]);
  });

  it('reports the bound port in Listener.address when port 0 was asked for', async () => {
    const served = await serve(transport, '127.0.0.1', 0);
    expect(served.listener.address).toMatchObject({ address: '127.0.0.1', family: 'IPv4' });
    expect(served.listener.address.port).toBeGreaterThan(0);
    const { endpoints } = await connectAccepted(served);
    expect(endpoints.localPort).toBe(served.listener.address.port);
  });
});

// ---- choosing a transport ----

describe('selectTransport', () => {
  it("returns the node:net transport for 'node'", () => {
    const transport = selectTransport('node');
    expect(transport).toBe(nodeTransport);
    expect(transport.kind).toBe('node');
  });

  it("takes the native transport for 'auto' once its addon loads", () => {
    expect(loadNativeTransport()).toBe(nativeTransport);
    expect(selectTransport('auto')).toBe(nativeTransport);
    expect(selectTransport('auto').kind).toBe('native');
  });

  it("finds the built addon next to the built module: 'auto' is native in dist/", async () => {
    // Its own process: the addon initialises once per Node environment.
    const script = `const { selectTransport } = await import(${JSON.stringify(BUILT_TRANSPORT_INDEX)}); process.stdout.write(selectTransport('auto').kind);`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
      timeout: 10_000,
    });
    expect(stdout).toBe('native');
  });
});

describe('loadNativeTransport', () => {
  it('throws ERR_IDENT_TRANSPORT naming the missing addon when it is not built', async () => {
    // A fresh module: a loaded instance is cached and would be returned instead.
    vi.resetModules();
    const fresh = await import('../../../gateway/server/transport/native.js');
    expect(fresh.loadNativeTransport).not.toBe(loadNativeTransport);
    const error = thrownBy(() => fresh.loadNativeTransport('/nonexistent/identgate-uv.node'));
    expect(error).toMatchObject({
      code: 'ERR_IDENT_TRANSPORT',
      message: expect.stringContaining('/nonexistent/identgate-uv.node'),
    });
  });
});
