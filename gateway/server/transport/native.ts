/**
 * The native transport: TCP on libuv through the uv-tcp.c addon, a C struct per connection instead of a net.Socket
 * (about half the CPU per connection). A paused stream is not read at all (see docs/internals.md).
 *
 * @example
 * const transport = loadNativeTransport();   // throws ERR_IDENT_TRANSPORT when the addon is missing
 * const listener = await transport.listen({ hostname: '127.0.0.1', port: 0 }, onAccept, onListenerError);
 */
import { closeSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { lookup } from 'node:dns/promises';
import { isIP, type AddressInfo } from 'node:net';
import { getSystemErrorMap } from 'node:util';
import { IdentTransportError } from '../errors.js';
import { locateNative, type NativeLocation } from '../../native-addons.js';
import type { TransactionEndpoints } from '../transaction.js';
import {
  LISTEN_BACKLOG,
  type AcceptHandler,
  type BoundSocket,
  type ByteStream,
  type ListenTarget,
  type Listener,
  type StreamReceiver,
  type Transport,
} from './types.js';

/** What uv-tcp.c exports (see its header comment). */
interface UvTcpAddon {
  init(handlers: AddonHandlers, readBuffer: ArrayBuffer): void;
  bindSocket(address: string, port: number, backlog: number): number;
  sockName(fd: number): [string, number] | number;
  listen(fd: number, backlog: number): number;
  closeListener(listener: number): void;
  write(id: number, text: string): number;
  end(id: number): void;
  destroy(id: number): void;
  pause(id: number): void;
  resume(id: number): void;
  noDelay(id: number): void;
}

interface AddonHandlers {
  connection(
    listener: number,
    id: number,
    remoteAddress: string,
    remotePort: number,
    localAddress: string | null,
    localPort: number,
  ): void;
  data(id: number, length: number): void;
  end(id: number): void;
  drain(id: number): void;
  error(id: number, errno: number): void;
  close(id: number): void;
  acceptError(listener: number, errno: number): void;
}

/**
 * Where the addon is: built here into dist/, else prebuilt in this package for this platform, CPU and C library
 * (gateway/native-addons.ts); null with the reason when neither.
 */
export function nativeAddonPath(): NativeLocation {
  return locateNative('identgate-uv.node');
}

/** Reads land here; 64 KiB, like node:net's read size. */
const READ_BUFFER_OCTETS = 65_536;

let errorNames: Map<number, [string, string]> | undefined;

/** A system error as node:net reports one: `code`, `errno`, `syscall` and the system's text. */
function systemError(errno: number, syscall: string, where?: string): NodeJS.ErrnoException {
  errorNames ??= getSystemErrorMap();
  const [code, text] = errorNames.get(errno) ?? [`E${-errno}`, `error ${errno}`];
  return Object.assign(new Error(`${syscall} ${code}: ${text}${where ? ` ${where}` : ''}`), { code, errno, syscall });
}

/**
 * A client resetting or vanishing mid-read is ordinary (the benchmark's load
 * generator closes every connection with a reset): one shared error per code,
 * made once, instead of an Error with a stack trace per connection.
 */
const ORDINARY_READ_ERRORS = new Map<number, NodeJS.ErrnoException>();
function readError(errno: number): NodeJS.ErrnoException {
  const ordinary = ORDINARY_READ_ERRORS.get(errno);
  if (ordinary) return ordinary;
  const error = systemError(errno, 'read');
  if (error.code === 'ECONNRESET' || error.code === 'ETIMEDOUT' || error.code === 'EPIPE')
    ORDINARY_READ_ERRORS.set(errno, error);
  return error;
}

class NativeStream implements ByteStream {
  readonly borrowsChunks = true;
  receiver: StreamReceiver | undefined;
  closed = false;

  constructor(
    readonly addon: UvTcpAddon,
    readonly id: number,
  ) {}

  attach(receiver: StreamReceiver): void {
    this.receiver = receiver;
  }

  write(text: string): boolean {
    if (this.closed) return true;
    const result = this.addon.write(this.id, text);
    // A failed write closes the connection in the addon; onClose follows from the event loop.
    if (result < 0) queueMicrotask(() => this.receiver?.onError(systemError(result, 'write')));
    return result !== 0;
  }

  end(): void {
    if (!this.closed) this.addon.end(this.id);
  }

  destroy(): void {
    if (!this.closed) this.addon.destroy(this.id);
  }

  pause(): void {
    if (!this.closed) this.addon.pause(this.id);
  }

  resume(): void {
    if (!this.closed) this.addon.resume(this.id);
  }

  setNoDelay(): void {
    if (!this.closed) this.addon.noDelay(this.id);
  }
}

interface ListenerEntry {
  readonly onAccept: AcceptHandler;
  readonly onListenerError: (error: Error) => void;
  readonly address: AddressInfo;
}

export class NativeTransport implements Transport {
  readonly kind = 'native';
  readonly #addon: UvTcpAddon;
  readonly #read = new Uint8Array(READ_BUFFER_OCTETS);
  /** Open connections by the addon's number. */
  readonly #streams: (NativeStream | undefined)[] = [];
  readonly #listeners: (ListenerEntry | undefined)[] = [];

  constructor(addon: UvTcpAddon) {
    this.#addon = addon;
    const streams = this.#streams;
    const listeners = this.#listeners;
    const read = this.#read;
    addon.init(
      {
        connection(listener, id, remoteAddress, remotePort, localAddress, localPort) {
          const entry = listeners[listener];
          if (!entry) return addon.destroy(id);
          const stream = new NativeStream(addon, id);
          streams[id] = stream;
          const endpoints: TransactionEndpoints =
            localAddress === null
              ? { remoteAddress, remotePort, localAddress: entry.address.address, localPort: entry.address.port }
              : { remoteAddress, remotePort, localAddress, localPort };
          entry.onAccept(stream, endpoints);
        },
        data(id, length) {
          streams[id]?.receiver?.onData(read.subarray(0, length));
        },
        end(id) {
          streams[id]?.receiver?.onEnd();
        },
        drain(id) {
          streams[id]?.receiver?.onDrain();
        },
        error(id, errno) {
          streams[id]?.receiver?.onError(readError(errno));
        },
        close(id) {
          const stream = streams[id];
          streams[id] = undefined;
          if (!stream) return;
          stream.closed = true;
          stream.receiver?.onClose();
        },
        acceptError(listener, errno) {
          listeners[listener]?.onListenerError(systemError(errno, 'accept'));
        },
      },
      read.buffer,
    );
  }

  /** A bound, listening socket that nothing accepts on yet: for a supervisor to hand to its workers. */
  async bindSocket(target: { readonly hostname: string; readonly port: number }): Promise<number> {
    // node:net resolves a host name the same way before binding.
    const address = isIP(target.hostname) ? target.hostname : (await lookup(target.hostname)).address;
    const fd = this.#addon.bindSocket(address, target.port, LISTEN_BACKLOG);
    if (fd < 0) throw systemError(fd, 'listen', `${address}:${target.port}`);
    return fd;
  }

  /**
   * Binds (or adopts the descriptor) without accepting: until accept(),
   * connections wait in the kernel's backlog and nothing of theirs is read.
   */
  async bind(target: ListenTarget): Promise<BoundSocket> {
    const addon = this.#addon;
    const fd = 'fd' in target ? target.fd : await this.bindSocket(target);
    const name = addon.sockName(fd);
    if (typeof name === 'number') {
      if (!('fd' in target)) closeSync(fd);
      throw systemError(name, 'getsockname');
    }
    const [host, port] = name;
    const address: AddressInfo = { address: host, port, family: host.includes(':') ? 'IPv6' : 'IPv4' };
    let state: 'bound' | 'accepting' | 'closed' = 'bound';
    return {
      address,
      accept: (onAccept, onListenerError) => {
        if (state !== 'bound') throw new Error(`this socket is ${state}`);
        state = 'accepting';
        const id = addon.listen(fd, LISTEN_BACKLOG);
        if (id < 0) throw systemError(id, 'listen');
        const entry: ListenerEntry = { onAccept, onListenerError, address };
        this.#listeners[id] = entry;
        return {
          address,
          close: async () => {
            if (this.#listeners[id] !== entry) return;
            this.#listeners[id] = undefined;
            addon.closeListener(id);
          },
        };
      },
      close: async () => {
        if (state !== 'bound') return;
        state = 'closed';
        closeSync(fd);
      },
    };
  }

  async listen(
    target: ListenTarget,
    onAccept: AcceptHandler,
    onListenerError: (error: Error) => void,
  ): Promise<Listener> {
    return (await this.bind(target)).accept(onAccept, onListenerError);
  }
}

let instance: NativeTransport | undefined;

/**
 * The process's native transport, loaded on first use. Throws
 * IdentTransportError (ERR_IDENT_TRANSPORT), naming why, when the addon is not
 * built or does not load here.
 */
export function loadNativeTransport(addonPath?: string): NativeTransport {
  if (instance) return instance;
  const located: NativeLocation =
    addonPath === undefined ? nativeAddonPath() : present(addonPath) ? { path: addonPath } : missing(addonPath);
  if (located.path === null) throw new IdentTransportError(`the native transport is not available: ${located.reason}`);
  let addon: UvTcpAddon;
  try {
    addon = createRequire(import.meta.url)(located.path) as UvTcpAddon;
  } catch (error) {
    throw new IdentTransportError(
      `the native transport ${located.path} does not load: ${(error as Error).message.split('\n')[0]}`,
      { cause: error },
    );
  }
  instance = new NativeTransport(addon);
  return instance;
}

function missing(path: string): NativeLocation {
  return { path: null, reason: `${path} is missing; \`identgate build-addons\` builds it with a C compiler` };
}

/** By stat(), not access(): access() checks the real user without capabilities (CAP_DAC_READ_SEARCH). */
function present(path: string): boolean {
  try {
    return statSync(path, { throwIfNoEntry: false }) !== undefined;
  } catch {
    return false;
  }
}
