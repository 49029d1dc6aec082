/**
 * What IdentServer and IdentConnection need from a TCP transport, so the ident logic is written once over two
 * adapters (node.ts, native.ts): listen, hand over each connection as a ByteStream, never decide anything about ident.
 *
 * @example
 * const listener = await transport.listen({ hostname: '127.0.0.1', port: 0 }, (stream, endpoints) => {
 *   stream.attach({ onData: (chunk) => stream.write('...'), onEnd: () => stream.end(), onDrain() {}, onError() {}, onClose() {} });
 * });
 * await listener.close();
 */
import type { AddressInfo } from 'node:net';
import type { TransactionEndpoints } from '../transaction.js';

/** Where to listen: an address and port, or a descriptor passed by systemd. */
export type ListenTarget = { readonly hostname: string; readonly port: number } | { readonly fd: number };

/** The calls a connection gets from its stream, each from the event loop (never inside a stream method). */
export interface StreamReceiver {
  /** Bytes from the client; when the stream `borrowsChunks`, valid only during this call. */
  onData(chunk: Uint8Array): void;
  /** The client half-closed its side. */
  onEnd(): void;
  /** The write buffer emptied after write() returned false. */
  onDrain(): void;
  /** A read or write failed (ECONNRESET, EPIPE...); onClose follows. */
  onError(error: NodeJS.ErrnoException): void;
  /** The connection is gone; no call follows. */
  onClose(): void;
}

/** One accepted TCP connection. Calls after onClose are ignored. */
export interface ByteStream {
  /** onData's chunk lives in memory the transport reuses: copy what must outlive the call. */
  readonly borrowsChunks: boolean;
  attach(receiver: StreamReceiver): void;
  /** Sends text as UTF-8; false when the buffer is above its high-water mark (wait for onDrain). */
  write(text: string): boolean;
  /** Half-closes once written data is out; the connection closes when the client has half-closed too. */
  end(): void;
  /** Closes now, dropping unsent data. */
  destroy(): void;
  /** Stops reading (backpressure); resume() reads again. */
  pause(): void;
  resume(): void;
  /** TCP_NODELAY on. */
  setNoDelay(): void;
}

export type AcceptHandler = (stream: ByteStream, endpoints: TransactionEndpoints) => void;

export interface Listener {
  readonly address: AddressInfo;
  /** Stops accepting and frees the port; open connections are not touched. */
  close(): Promise<void>;
}

/**
 * A bound, listening socket whose connections nobody takes yet: a process
 * that starts as root binds port 113, drops privileges, and only then
 * accepts, so no untrusted byte is read with root's rights. Until accept(),
 * connections wait unread (in the kernel's backlog with the native
 * transport; accepted but paused, not read, with node:net).
 */
export interface BoundSocket {
  readonly address: AddressInfo;
  /** Starts handing connections over (those that waited first); once. */
  accept(onAccept: AcceptHandler, onListenerError: (error: Error) => void): Listener;
  /** Frees the port without accepting (connections that waited are dropped). */
  close(): Promise<void>;
}

export interface Transport {
  readonly kind: 'native' | 'node';
  /**
   * Binds (or adopts the descriptor) without accepting. Rejects with the
   * system's error (its `code`: EADDRINUSE, EACCES...) when it cannot.
   */
  bind(target: ListenTarget): Promise<BoundSocket>;
  /**
   * bind() and accept() in one. `onListenerError` gets faults after binding
   * (accept failing).
   */
  listen(target: ListenTarget, onAccept: AcceptHandler, onListenerError: (error: Error) => void): Promise<Listener>;
}

/** The listen backlog of both transports. */
export const LISTEN_BACKLOG = 1024;
