/**
 * IdentServer, the listening side of RFC 1413 (after Perl's AnyEvent::Ident::Server): listeners, the live
 * connections and the limits across them (overall, per address or IPv6 prefix), start and stop.
 * One connection's life is connection.ts.
 *
 * @example
 * const server = new IdentServer({ hostname: '127.0.0.1', port: 0 });
 * await server.start((tx) => {
 *   if (tx.req.serverPort === 400 && tx.req.clientPort === 500) tx.replyWithUser('grimlock');
 *   else tx.replyWithError('NO-USER');
 * });
 * console.log(`listening on port ${server.port}`);
 * await server.stop();
 */
import type { AddressInfo } from 'node:net';
import { DEFAULT_MAX_LINE_OCTETS } from '../../protocol/index.js';
import { IdentConnection, type ConnectionHooks, type ConnectionLimits, type IdentHandler } from './connection.js';
import { AddressGroups } from './address-groups.js';
import { ConfigError } from '../../protocol/errors.js';
import { hostPort } from '../describe.js';
import { IdentBindError, IdentServerError, IdentServerRunningError, IdentSocketError } from './errors.js';
import { LiveConnections } from './live-connections.js';
import type { TransactionEndpoints } from './transaction.js';
import { selectTransport, type TransportChoice } from './transport/index.js';
import type { BoundSocket, ByteStream, ListenTarget, Listener } from './transport/types.js';

export type { IdentHandler } from './connection.js';
export { IdentTransaction } from './transaction.js';
export * from './errors.js';
export type { ListenTarget } from './transport/types.js';
export type { TransportChoice } from './transport/index.js';

/** Documented defaults; README.md and docs/operations.md list them. */
export const SERVER_DEFAULTS = {
  hostname: '127.0.0.1',
  port: 113,
  /** RFC 1413 §2 suggests 60-180 s. */
  idleTimeoutMs: 120_000,
  maxLineOctets: DEFAULT_MAX_LINE_OCTETS,
  maxInFlight: 64,
  maxQueriesPerConnection: 1000,
  queryDeadlineMs: 5_000,
  maxConnections: 4096,
  maxConnectionsPerAddress: 32,
  perAddressPrefix6: 64,
} as const;

/**
 * Beyond its cap an address may have this many times more connections at
 * once, each served once (a burst of one-query clients, such as an IRC server
 * checking hosts after a netsplit); beyond that, new ones are refused.
 */
export const PER_ADDRESS_BURST_FACTOR = 16;
/** A connection taken beyond its address's cap must send its first query within this. */
export const BEYOND_CAP_FIRST_QUERY_MS = 2_000;
/** How many of an address's connections, longest held first, are looked at for one to take back. */
const RECLAIM_SCAN = 64;

export type RefuseReason = 'per_address' | 'global' | 'evicted' | 'evicted_per_address';

export interface IdentServerOptions extends Partial<ConnectionLimits> {
  /** Address to listen on (IPv4 or IPv6). Ignored when `listen` is given. */
  hostname?: string;
  /** Port to listen on; 0 picks a free one. Ignored when `listen` is given. */
  port?: number;
  /** Several listeners at once (repeatable --listen, systemd descriptors). */
  listen?: readonly ListenTarget[];
  /** Connections open at once; at the cap the stalest idle one is evicted, else the new one is refused. */
  maxConnections?: number;
  /**
   * Idle connections one remote address (or IPv6 prefix) may hold. At the cap
   * a new connection takes back the address's longest-held connection that
   * has been answered and has nothing in flight; when there is none it is
   * served once (see PER_ADDRESS_BURST_FACTOR); docs/operations.md, Limits.
   */
  maxConnectionsPerAddress?: number;
  /** IPv6 clients count per prefix of this many bits (1-128; default 64). */
  perAddressPrefix6?: number;
  /** Faults of handlers, replies, clients and limits. Never throws into the server. */
  onError?: (error: IdentServerError) => void;
  /** Called once per listener after it is bound. */
  onBind?: (address: AddressInfo) => void;
  /**
   * How connections are read and written: 'native' (the libuv addon built by
   * `npm run build`; about half the CPU per connection), 'node' (node:net), or
   * 'auto' (native when it loads, else node). Default 'auto'.
   */
  transport?: TransportChoice;
  /** Called for each refused or evicted connection, with the reason. */
  onRefuse?: (reason: RefuseReason, remoteAddress: string) => void;
  /** Called for each line answered INVALID-PORT without asking the handler (not a query). */
  onInvalidQuery?: () => void;
}

/** How often idle connections are looked for: a connection closes between idleTimeoutMs and this much later. */
function idleSweepInterval(idleTimeoutMs: number): number {
  return Math.min(1_000, Math.max(10, Math.floor(idleTimeoutMs / 4)));
}

/** The one-line ERR_IDENT_BIND error for a listener that cannot bind: what failed and what to do. */
export function bindError(target: ListenTarget, error: NodeJS.ErrnoException): IdentServerError {
  if ('fd' in target)
    return new IdentBindError(`cannot listen on file descriptor ${target.fd}: ${error.message}`, {
      cause: error,
    });
  const where = hostPort(target.hostname, target.port);
  switch (error.code) {
    case 'EACCES':
      return new IdentBindError(
        `cannot listen on ${where}: ports below 1024 need privileges — run as root with --run-as, grant CAP_NET_BIND_SERVICE, use systemd socket activation (see docs/operations.md), or pick a port of 1024 or more`,
        { cause: error },
      );
    case 'EADDRINUSE':
      return new IdentBindError(`cannot listen on ${where}: the address is already in use (another identd running?)`, {
        cause: error,
      });
    case 'EADDRNOTAVAIL':
      return new IdentBindError(`cannot listen on ${where}: no such local address on this host`, {
        cause: error,
      });
    default:
      return new IdentBindError(`cannot listen on ${where}: ${error.message}`, { cause: error });
  }
}

export class IdentServer {
  readonly #targets: readonly ListenTarget[];
  readonly #limits: ConnectionLimits;
  readonly #maxConnections: number;
  readonly #maxPerAddress: number;
  readonly #options: IdentServerOptions;
  #listeners: Listener[] = [];
  /** Bound by bind(), not accepting yet; start() takes them. */
  #bound: BoundSocket[] = [];
  /** Resolves stop()'s wait once the last connection has closed. */
  #onLastClose: (() => void) | undefined;
  /** What every connection reports to this server; made once per start(). */
  #hooks: ConnectionHooks | undefined;
  /** Live connections, stalest input first (moved to the newest end whenever input arrives). */
  readonly #connections = new LiveConnections<IdentConnection>();
  readonly #groups: AddressGroups<IdentConnection>;
  #starting = false;
  #transportKind: 'native' | 'node' | undefined;
  #idleSweep: NodeJS.Timeout | undefined;

  constructor(options: IdentServerOptions = {}) {
    this.#options = options;
    this.#targets = options.listen ?? [
      { hostname: options.hostname ?? SERVER_DEFAULTS.hostname, port: options.port ?? SERVER_DEFAULTS.port },
    ];
    if (this.#targets.length === 0) throw new ConfigError('IdentServer needs at least one address to listen on');
    this.#limits = {
      idleTimeoutMs: options.idleTimeoutMs ?? SERVER_DEFAULTS.idleTimeoutMs,
      maxLineOctets: options.maxLineOctets ?? SERVER_DEFAULTS.maxLineOctets,
      maxInFlight: options.maxInFlight ?? SERVER_DEFAULTS.maxInFlight,
      maxQueriesPerConnection: options.maxQueriesPerConnection ?? SERVER_DEFAULTS.maxQueriesPerConnection,
      queryDeadlineMs: options.queryDeadlineMs ?? SERVER_DEFAULTS.queryDeadlineMs,
      hideErrors: options.hideErrors ?? false,
    };
    this.#maxConnections = options.maxConnections ?? SERVER_DEFAULTS.maxConnections;
    this.#maxPerAddress = options.maxConnectionsPerAddress ?? SERVER_DEFAULTS.maxConnectionsPerAddress;
    const prefix6 = options.perAddressPrefix6 ?? SERVER_DEFAULTS.perAddressPrefix6;
    if (!Number.isInteger(prefix6) || prefix6 < 1 || prefix6 > 128)
      throw new ConfigError(`IdentServer option perAddressPrefix6 must be an integer from 1 to 128, got ${prefix6}`);
    this.#groups = new AddressGroups(prefix6);
    const { hideErrors: _, ...numeric } = this.#limits;
    for (const [name, value] of Object.entries({
      ...numeric,
      maxConnections: this.#maxConnections,
      maxConnectionsPerAddress: this.#maxPerAddress,
    })) {
      if (!Number.isInteger(value) || value < 1)
        throw new ConfigError(`IdentServer option ${name} must be a positive integer, got ${value}`);
    }
  }

  /** The first listener's bound port (the ephemeral one when port 0 was asked). */
  get port(): number {
    return this.addresses[0]?.port ?? 0;
  }

  /** Every bound address (after bind() or start()). */
  get addresses(): AddressInfo[] {
    return [...this.#listeners, ...this.#bound].map((listener) => listener.address);
  }

  /** The transport in use while started: 'native' or 'node'. */
  get transport(): 'native' | 'node' | undefined {
    return this.#transportKind;
  }

  /** Connections open right now. */
  get connectionCount(): number {
    return this.#connections.size;
  }

  get listening(): boolean {
    return this.#listeners.length > 0;
  }

  /**
   * Binds every listener without accepting: connections wait unread until
   * start(). A process that starts as root binds, drops privileges, then
   * starts, so no untrusted byte is read as root. start() binds by itself
   * when bind() was not called.
   */
  async bind(): Promise<void> {
    if (this.#starting || this.#bound.length > 0 || this.#listeners.length > 0) {
      throw new IdentServerRunningError('IdentServer is already bound; call stop() first');
    }
    this.#starting = true;
    try {
      const transport = selectTransport(this.#options.transport ?? 'auto');
      this.#transportKind = transport.kind;
      for (const target of this.#targets) {
        const bound = await transport.bind(target).catch((error: NodeJS.ErrnoException) => {
          throw error instanceof IdentServerError ? error : bindError(target, error);
        });
        this.#bound.push(bound);
      }
    } catch (error) {
      await Promise.all(this.#bound.map((bound) => bound.close()));
      this.#bound = [];
      this.#transportKind = undefined;
      throw error;
    } finally {
      this.#starting = false;
    }
  }

  /** Binds every listener (unless bind() did) and starts answering with `handler`. */
  async start(handler: IdentHandler): Promise<void> {
    if (typeof handler !== 'function') throw new TypeError('IdentServer.start needs a handler function');
    if (this.#starting || this.#listeners.length > 0) {
      throw new IdentServerRunningError('IdentServer is already started; call stop() first');
    }
    if (this.#bound.length === 0) await this.bind();
    this.#hooks = {
      handler,
      onError: (error) => this.#report(error),
      onProgress: (connection) => this.#connections.touch(connection),
      onClose: (connection) => {
        this.#connections.remove(connection);
        this.#groups.remove(connection.addressGroup, connection);
        if (this.#connections.size === 0) this.#onLastClose?.();
      },
      onInvalidQuery: this.#options.onInvalidQuery ?? (() => {}),
    };
    const bound = this.#bound;
    this.#bound = [];
    for (const socket of bound) {
      const listener = socket.accept(
        (stream, endpoints) => this.#accept(stream, endpoints),
        (error) => this.#report(new IdentSocketError(`listener error: ${error.message}`, { cause: error })),
      );
      this.#listeners.push(listener);
      this.#options.onBind?.(listener.address);
    }
    const idleTimeoutMs = this.#limits.idleTimeoutMs;
    this.#idleSweep = setInterval(() => this.#closeIdle(idleTimeoutMs), idleSweepInterval(idleTimeoutMs)).unref();
  }

  /**
   * One sweep for every connection instead of a timer per socket: the list is
   * ordered by last progress, so it stops at the first connection that made
   * progress within the timeout.
   */
  #closeIdle(idleTimeoutMs: number): void {
    const cutoff = performance.now() - idleTimeoutMs;
    for (const connection of this.#connections) {
      if (connection.lastProgress > cutoff) break;
      connection.closeIfIdle();
    }
  }

  #accept(stream: ByteStream, endpoints: TransactionEndpoints): void {
    const address = endpoints.remoteAddress;
    const group = this.#groups.keyOf(address);
    let once = false;
    if (this.#groups.size(group) >= this.#maxPerAddress && !this.#reclaim(group)) {
      if (this.#groups.size(group) >= this.#maxPerAddress * PER_ADDRESS_BURST_FACTOR)
        return this.#refuse(stream, 'per_address', address);
      once = true;
    }
    if (this.#connections.size >= this.#maxConnections && !this.#evictStalest())
      return this.#refuse(stream, 'global', address);
    const connection = new IdentConnection(stream, endpoints, this.#limits, this.#hooks!);
    connection.addressGroup = group;
    this.#groups.add(group, connection);
    this.#connections.add(connection);
    if (once) connection.serveOnce(Math.min(this.#limits.idleTimeoutMs, BEYOND_CAP_FIRST_QUERY_MS));
  }

  /**
   * At an address's cap: its longest-held connection that has been answered
   * and has nothing in flight (or does not read its replies) makes room.
   * Counting it gone at once is what lets a client that reconnects before its
   * last close was seen in.
   */
  #reclaim(group: string): boolean {
    let looked = 0;
    for (const connection of this.#groups.members(group)) {
      if (++looked > RECLAIM_SCAN) break;
      if (!connection.reclaimable) continue;
      this.#drop(connection, 'evicted_per_address');
      return true;
    }
    return false;
  }

  /** At the global cap, the idle connection that has gone longest without progress makes room. */
  #evictStalest(): boolean {
    for (const connection of this.#connections) {
      if (!connection.idle) continue;
      this.#drop(connection, 'evicted');
      return true;
    }
    return false;
  }

  /** Evicts: out of the counts now, closed on the next turn. */
  #drop(connection: IdentConnection, reason: 'evicted' | 'evicted_per_address'): void {
    this.#connections.remove(connection);
    this.#groups.remove(connection.addressGroup, connection);
    this.#options.onRefuse?.(reason, connection.endpoints.remoteAddress);
    connection.destroy();
  }

  #refuse(stream: ByteStream, reason: 'per_address' | 'global', address: string): void {
    this.#options.onRefuse?.(reason, address);
    stream.destroy();
  }

  #report(error: IdentServerError): void {
    try {
      this.#options.onError?.(error);
    } catch {
      // A faulty onError must not take the server down.
    }
  }

  /**
   * Stops accepting, answers the queries already received, closes idle
   * connections, and resolves when every connection is closed. Connections
   * still open after `graceMs` are dropped. start() may be called again after.
   */
  async stop({ graceMs = 5_000 }: { graceMs?: number } = {}): Promise<void> {
    const listeners: { close(): Promise<void> }[] = [...this.#listeners, ...this.#bound];
    this.#listeners = [];
    this.#bound = [];
    clearInterval(this.#idleSweep);
    this.#idleSweep = undefined;
    const closed = Promise.all(listeners.map((listener) => listener.close()));
    const allClosed = new Promise<void>((resolve) => {
      this.#onLastClose = resolve;
    });
    if (this.#connections.size === 0) this.#onLastClose?.();
    for (const connection of [...this.#connections]) connection.finish();
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        for (const connection of this.#connections) connection.destroy();
        resolve();
      }, graceMs);
    });
    await Promise.race([allClosed, grace]);
    clearTimeout(timer);
    // Destroyed sockets close on the next turn; resolve only once every one has.
    await allClosed;
    this.#onLastClose = undefined;
    await closed;
    this.#transportKind = undefined;
  }
}
