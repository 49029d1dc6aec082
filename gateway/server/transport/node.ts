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
  type BoundSocket,
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
    // Accepted paused (pauseOnConnect): reading starts now that someone listens.
    socket.resume();
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

function bind(target: ListenTarget): Promise<BoundSocket> {
  // A listener bound to one address knows every accepted socket's local end
  // without asking the kernel (getsockname); a wildcard one does not.
  let local: net.AddressInfo | undefined;
  let onAccept: AcceptHandler | undefined;
  /** Connections that came before accept(): paused (pauseOnConnect), so not one byte of theirs is read yet. */
  let waiting: Socket[] = [];
  const take = (socket: Socket): void => {
    const remoteAddress = socket.remoteAddress;
    const localAddress = local ? local.address : socket.localAddress;
    if (!remoteAddress || localAddress === undefined) {
      // Reset before we saw it: there is no peer left to answer.
      socket.on('error', ignore);
      socket.destroy();
      return;
    }
    onAccept!(new NodeStream(socket), {
      remoteAddress,
      remotePort: socket.remotePort ?? 0,
      localAddress,
      localPort: local ? local.port : (socket.localPort ?? 0),
    });
  };
  const arrive = (socket: Socket): void => {
    if (onAccept) return take(socket);
    socket.on('error', ignore);
    waiting.push(socket);
  };
  // noDelay: false, because each connection sets TCP_NODELAY itself when Nagle could delay a reply (connection.ts #write).
  // pauseOnConnect: a socket reads nothing until its connection attaches (NodeStream.attach resumes it).
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: false }, arrive);
  const close = () => new Promise<void>((done) => server.close(() => done()));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const ready = (): void => {
      server.off('error', reject);
      const address = server.address() as net.AddressInfo;
      if (address.address !== '0.0.0.0' && address.address !== '::') local = address;
      let listenerError: (error: Error) => void = ignore;
      server.on('error', (error) => listenerError(error));
      resolve({
        address,
        accept(handler, onListenerError) {
          if (onAccept) throw new Error('this socket is already accepting');
          onAccept = handler;
          listenerError = onListenerError;
          const early = waiting;
          waiting = [];
          for (const socket of early) {
            socket.off('error', ignore);
            if (socket.destroyed) continue;
            take(socket);
          }
          return { address, close };
        },
        close: async () => {
          for (const socket of waiting.splice(0)) socket.destroy();
          await close();
        },
      });
    };
    if ('fd' in target) server.listen({ fd: target.fd }, ready);
    // ipv6Only keeps "[::]:113" and "0.0.0.0:113" usable side by side; "[::]" alone is dual-stack.
    else server.listen({ host: target.hostname, port: target.port, ipv6Only: false, backlog: LISTEN_BACKLOG }, ready);
  });
}

async function listen(
  target: ListenTarget,
  onAccept: AcceptHandler,
  onListenerError: (error: Error) => void,
): Promise<Listener> {
  return (await bind(target)).accept(onAccept, onListenerError);
}

export const nodeTransport: Transport = { kind: 'node', bind, listen };
