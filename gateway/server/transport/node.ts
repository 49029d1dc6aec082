/**
 * The node:net transport, portable: each accepted net.Socket wrapped in a NodeStream whose listeners are shared
 * static functions (no closures per connection).
 *
 * @example
 * const listener = await nodeTransport.listen({ hostname: '127.0.0.1', port: 0 }, onAccept, onListenerError);
 */
import net, { type Socket } from 'node:net';
import {
  LISTEN_BACKLOG,
  type ByteStream,
  type ListenTarget,
  type Listener,
  type StreamReceiver,
  type Transport,
  type AcceptHandler,
} from './types.js';

/** The receiver of a socket's events, for the listeners shared by every socket. */
const RECEIVER = Symbol('identgate.receiver');
type OwnedSocket = Socket & { [RECEIVER]: StreamReceiver | undefined };

function ignore(): void {}

class NodeStream implements ByteStream {
  readonly borrowsChunks = false;
  readonly #socket: OwnedSocket;
  /** The 'drain' listener is added the first time a write is refused; most connections never need it. */
  #drainListening = false;

  constructor(socket: Socket) {
    this.#socket = socket as OwnedSocket;
  }

  attach(receiver: StreamReceiver): void {
    const socket = this.#socket;
    socket[RECEIVER] = receiver;
    socket.on('data', NodeStream.#socketData);
    socket.on('end', NodeStream.#socketEnd);
    socket.on('error', NodeStream.#socketError);
    socket.on('close', NodeStream.#socketClose);
  }

  static #socketData(this: OwnedSocket, chunk: Buffer): void {
    this[RECEIVER]?.onData(chunk);
  }

  static #socketEnd(this: OwnedSocket): void {
    this[RECEIVER]?.onEnd();
  }

  static #socketDrain(this: OwnedSocket): void {
    this[RECEIVER]?.onDrain();
  }

  static #socketError(this: OwnedSocket, error: NodeJS.ErrnoException): void {
    this[RECEIVER]?.onError(error);
  }

  static #socketClose(this: OwnedSocket): void {
    const receiver = this[RECEIVER];
    // Node keeps a closed socket reachable for a while (its handle is released by a later GC),
    // and a young-generation GC copies everything the socket reaches: let go of the receiver.
    this[RECEIVER] = undefined;
    receiver?.onClose();
  }

  write(text: string): boolean {
    if (this.#socket.write(text)) return true;
    if (!this.#drainListening) {
      this.#drainListening = true;
      this.#socket.on('drain', NodeStream.#socketDrain);
    }
    return false;
  }

  end(): void {
    if (this.#socket.writable) this.#socket.end();
  }

  destroy(): void {
    this.#socket.destroy();
  }

  pause(): void {
    this.#socket.pause();
  }

  resume(): void {
    this.#socket.resume();
  }

  setNoDelay(): void {
    this.#socket.setNoDelay(true);
  }
}

function listen(
  target: ListenTarget,
  onAccept: AcceptHandler,
  onListenerError: (error: Error) => void,
): Promise<Listener> {
  // A listener bound to one address knows every accepted socket's local end
  // without asking the kernel (getsockname); a wildcard one does not.
  let local: net.AddressInfo | undefined;
  const accept = (socket: Socket): void => {
    const remoteAddress = socket.remoteAddress;
    const localAddress = local ? local.address : socket.localAddress;
    if (!remoteAddress || localAddress === undefined) {
      // Reset before we saw it: there is no peer left to answer.
      socket.on('error', ignore);
      socket.destroy();
      return;
    }
    onAccept(new NodeStream(socket), {
      remoteAddress,
      remotePort: socket.remotePort ?? 0,
      localAddress,
      localPort: local ? local.port : (socket.localPort ?? 0),
    });
  };
  // noDelay: false, because each connection sets TCP_NODELAY itself when Nagle could delay a reply (connection.ts #write).
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: false, noDelay: false }, accept);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const ready = (): void => {
      server.off('error', reject);
      server.on('error', onListenerError);
      const address = server.address() as net.AddressInfo;
      if (address.address !== '0.0.0.0' && address.address !== '::') local = address;
      resolve({ address, close: () => new Promise((done) => server.close(() => done())) });
    };
    if ('fd' in target) server.listen({ fd: target.fd }, ready);
    // ipv6Only keeps "[::]:113" and "0.0.0.0:113" usable side by side; "[::]" alone is dual-stack.
    else server.listen({ host: target.hostname, port: target.port, ipv6Only: false, backlog: LISTEN_BACKLOG }, ready);
  });
}

export const nodeTransport: Transport = { kind: 'node', listen };
