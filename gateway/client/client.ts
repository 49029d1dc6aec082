/**
 * IdentClient, the RFC 1413 client (after Perl's AnyEvent::Ident::Client): many queries per connection, replies
 * matched in order and checked against the ports asked, a timeout per query, coded errors, reconnection on demand.
 *
 * @example
 * const client = new IdentClient({ hostname: '192.0.2.7', timeout: 5_000 });
 * const response = await client.ident(6193, 23);
 * if (response.isSuccess) console.log(response.userId, response.opsys);
 * else console.log('refused:', response.errorType);
 * await client.close();
 */
import { connect, type Socket } from 'node:net';
import { ConfigError } from '../../protocol/errors.js';
import { DEFAULT_MAX_LINE_OCTETS, LineSplitter, LineTooLongError } from '../../protocol/framing.js';
import { parseReply } from '../../protocol/reply.js';
import { formatRequest, isPort, type IdentQuery } from '../../protocol/request.js';
import { hostPort } from '../describe.js';
import {
  IdentClosedError,
  IdentConnectError,
  IdentMalformedReplyError,
  IdentPortMismatchError,
  IdentTimeoutError,
  type IdentClientError,
} from './errors.js';

export {
  IdentClientError,
  IdentClosedError,
  IdentConnectError,
  IdentMalformedReplyError,
  IdentPortMismatchError,
  IdentTimeoutError,
  type IdentClientErrorCode,
} from './errors.js';

/** How to reach the ident server. */
export interface IdentClientOptions {
  /** Host name or IP literal of the ident server (IPv6 as '::1', no brackets). Default '127.0.0.1'. */
  hostname?: string;
  /** Default 113. */
  port?: number;
  /** Milliseconds a query may wait for its reply, counted from when it is asked (connecting included). Default 10 000. */
  timeout?: number;
  /** Local address to connect from (the ident server sees this as the querying host). */
  localAddress?: string;
  /** Longest reply line accepted, without its line end. Default 1000 octets. */
  maxLineOctets?: number;
}

interface IdentResponseBase extends IdentQuery {
  /** The reply line as received, without its line end, decoded as UTF-8. */
  readonly raw: string;
}

/** `<ports> : USERID : <opsys>[ , <charset>] : <user id>` */
export interface IdentUserIdResponse extends IdentResponseBase {
  readonly isSuccess: true;
  readonly userId: string;
  /** The user id exactly as it arrived, for charsets other than US-ASCII and UTF-8. */
  readonly userIdOctets: Uint8Array;
  readonly opsys: string;
  /** As sent, or 'US-ASCII' when the reply named none. */
  readonly charset: string;
  readonly errorType: undefined;
}

/** `<ports> : ERROR : <error token>` */
export interface IdentErrorResponse extends IdentResponseBase {
  readonly isSuccess: false;
  /** 'NO-USER', 'HIDDEN-USER', 'INVALID-PORT', 'UNKNOWN-ERROR', an X-token, or what the server made up. */
  readonly errorType: string;
  readonly userId: undefined;
  readonly userIdOctets: undefined;
  readonly opsys: undefined;
  readonly charset: undefined;
}

/** What an ident server answered; narrow on `isSuccess`. */
export type IdentResponse = IdentUserIdResponse | IdentErrorResponse;

/** Options of the one-call helper `ident()`. */
export interface IdentOptions extends IdentClientOptions, IdentQuery {}

const DEFAULT_TIMEOUT_MS = 10_000;
/** setTimeout's largest delay; beyond it Node fires at once. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** A query waiting for its answer; shared by every caller that asked the same ports meanwhile. */
interface PendingQuery {
  readonly key: string;
  readonly query: IdentQuery;
  readonly promise: Promise<IdentResponse>;
  readonly resolve: (response: IdentResponse) => void;
  readonly reject: (error: Error) => void;
  timer: NodeJS.Timeout | undefined;
  settled: boolean;
}

/** One request line written on a connection, in order; `pending` is cleared when the query timed out. */
interface Slot {
  readonly query: IdentQuery;
  pending: PendingQuery | undefined;
}

const utf8 = new TextDecoder('utf-8');

/**
 * A client for one ident server. Keeps at most one TCP connection, opened on
 * the first query and again after a failure; `close()` ends it for good.
 *
 * @example
 * const client = new IdentClient({ hostname: '::1', port: 1113, timeout: 2_000 });
 * const [a, b] = await Promise.all([client.ident(400, 500), client.ident(401, 501)]);
 * await client.close();
 */
export class IdentClient {
  readonly hostname: string;
  readonly port: number;
  readonly timeout: number;
  readonly localAddress: string | undefined;
  readonly maxLineOctets: number;
  #connection: Connection | undefined;
  readonly #inFlight = new Map<string, PendingQuery>();
  #closed = false;
  readonly #events: ConnectionEvents = {
    answered: (pending, response) => this.#settle(pending, response),
    ended: (connection, orphans, error, answered) => this.#connectionEnded(connection, orphans, error, answered),
  };

  constructor(options: IdentClientOptions = {}) {
    const {
      hostname = '127.0.0.1',
      port = 113,
      timeout = DEFAULT_TIMEOUT_MS,
      localAddress,
      maxLineOctets = DEFAULT_MAX_LINE_OCTETS,
    } = options;
    if (typeof hostname !== 'string' || hostname === '') throw badOption('hostname', 'a non-empty string', hostname);
    if (typeof port !== 'number' || !isPort(port)) throw badOption('port', 'an integer in 1..65535', port);
    if (typeof timeout !== 'number' || !(timeout > 0 && timeout <= MAX_TIMEOUT_MS))
      throw badOption('timeout', `a number of milliseconds > 0 and <= ${MAX_TIMEOUT_MS}`, timeout);
    if (localAddress !== undefined && (typeof localAddress !== 'string' || localAddress === ''))
      throw badOption('localAddress', 'a non-empty string', localAddress);
    if (typeof maxLineOctets !== 'number' || !Number.isInteger(maxLineOctets) || maxLineOctets < 1)
      throw badOption('maxLineOctets', 'a positive integer', maxLineOctets);
    this.hostname = hostname;
    this.port = port;
    this.timeout = timeout;
    this.localAddress = localAddress;
    this.maxLineOctets = maxLineOctets;
  }

  /** Number of distinct queries waiting for a reply. */
  get pendingQueries(): number {
    return this.#inFlight.size;
  }

  /**
   * Asks who owns the connection from our `clientPort` to the server's
   * `serverPort`. Resolves with the server's answer (USERID or ERROR); rejects
   * with an IdentClientError when no trustworthy answer arrives, or with a
   * TypeError/RangeError for ports outside 1..65535.
   *
   * @example
   * const response = await client.ident(6193, 23);
   * // { serverPort: 6193, clientPort: 23, isSuccess: true, userId: 'stjohns', opsys: 'UNIX',
   * //   charset: 'US-ASCII', errorType: undefined, raw: '6193, 23 : USERID : UNIX : stjohns', ... }
   */
  ident(serverPort: number, clientPort: number): Promise<IdentResponse> {
    try {
      checkPort('serverPort', serverPort);
      checkPort('clientPort', clientPort);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    if (this.#closed) return Promise.reject(new IdentClosedError('the ident client is closed'));
    const key = `${serverPort},${clientPort}`;
    const existing = this.#inFlight.get(key);
    if (existing) return existing.promise;

    let resolve!: (response: IdentResponse) => void;
    let reject!: (error: Error) => void;
    const promise = new Promise<IdentResponse>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const pending: PendingQuery = {
      key,
      query: { serverPort, clientPort },
      promise,
      resolve,
      reject,
      timer: undefined,
      settled: false,
    };
    this.#inFlight.set(key, pending);
    pending.timer = setTimeout(() => this.#timedOut(pending), this.timeout);
    this.#send(pending);
    return promise;
  }

  /**
   * Ends the connection and rejects every query in flight with
   * IdentClosedError. Later calls to `ident()` reject the same way.
   *
   * @example
   * await client.close();
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const error = new IdentClosedError('the ident client was closed before the server answered');
    for (const pending of [...this.#inFlight.values()]) this.#settle(pending, error);
    const connection = this.#connection;
    this.#connection = undefined;
    if (connection) await connection.destroy();
  }

  /** Writes the query on the current connection, opening one if there is none or it is ending. */
  #send(pending: PendingQuery): void {
    let connection = this.#connection;
    if (!connection || !connection.usable) {
      connection = new Connection(this.#events, this.hostname, this.port, this.localAddress, this.maxLineOctets);
      this.#connection = connection;
    }
    connection.send(pending);
  }

  #timedOut(pending: PendingQuery): void {
    pending.timer = undefined;
    this.#settle(pending, new IdentTimeoutError(pending.query, this.timeout));
    // Its slot stays on the connection so that a late reply is consumed in order.
    // A connection left with nobody waiting is dropped: the next call starts afresh.
    const connection = this.#connection;
    if (connection && !connection.hasLiveSlots) this.#discard(connection);
  }

  /** Resolves or rejects a pending query once, and forgets it. */
  #settle(pending: PendingQuery, outcome: IdentResponse | Error): void {
    if (pending.settled) return;
    pending.settled = true;
    if (pending.timer) clearTimeout(pending.timer);
    pending.timer = undefined;
    if (this.#inFlight.get(pending.key) === pending) this.#inFlight.delete(pending.key);
    if (outcome instanceof Error) pending.reject(outcome);
    else pending.resolve(outcome);
  }

  #discard(connection: Connection): void {
    if (this.#connection === connection) this.#connection = undefined;
    void connection.destroy();
  }

  /**
   * A connection is gone. `answered` is how many replies it delivered: a server
   * that answered and then closed serves one query per connection, so the
   * queries it left unanswered go out again on a new one.
   */
  #connectionEnded(connection: Connection, orphans: PendingQuery[], error: IdentClientError, answered: number): void {
    if (this.#connection === connection) this.#connection = undefined;
    const retry = answered > 0 && error instanceof IdentClosedError && !this.#closed;
    for (const pending of orphans) {
      if (pending.settled) continue;
      if (retry) this.#send(pending);
      else this.#settle(pending, error);
    }
  }
}

/** How a connection reports back to its client. */
interface ConnectionEvents {
  answered(pending: PendingQuery, response: IdentResponse): void;
  ended(connection: Connection, orphans: PendingQuery[], error: IdentClientError, answered: number): void;
}

/** One TCP connection to the ident server and the FIFO of queries written on it. */
class Connection {
  readonly #events: ConnectionEvents;
  readonly #socket: Socket;
  readonly #splitter: LineSplitter;
  readonly #hostname: string;
  readonly #port: number;
  readonly #slots: Slot[] = [];
  readonly #closedPromise: Promise<void>;
  #connected = false;
  #ending = false;
  #done = false;
  #answered = 0;
  #socketError: Error | undefined;

  constructor(
    events: ConnectionEvents,
    hostname: string,
    port: number,
    localAddress: string | undefined,
    maxLineOctets: number,
  ) {
    this.#events = events;
    this.#hostname = hostname;
    this.#port = port;
    this.#splitter = new LineSplitter(maxLineOctets);
    this.#socket = connect({ host: hostname, port, ...(localAddress === undefined ? {} : { localAddress }) });
    this.#socket.setNoDelay(true);
    this.#closedPromise = new Promise((resolve) => this.#socket.once('close', () => resolve()));
    this.#socket.on('connect', () => {
      this.#connected = true;
    });
    this.#socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    this.#socket.on('end', () => {
      this.#ending = true;
    });
    this.#socket.on('error', (error) => {
      this.#socketError ??= error;
    });
    this.#socket.on('close', () => this.#onClose());
  }

  /** False once the server has started closing or the connection failed. */
  get usable(): boolean {
    return !this.#done && !this.#ending && !this.#socket.destroyed;
  }

  /** True while some query written here is still waiting for its reply. */
  get hasLiveSlots(): boolean {
    return this.#slots.some((slot) => slot.pending && !slot.pending.settled);
  }

  send(pending: PendingQuery): void {
    this.#slots.push({ query: pending.query, pending });
    this.#socket.write(formatRequest(pending.query));
  }

  destroy(): Promise<void> {
    this.#done = true;
    this.#socket.destroy();
    return this.#closedPromise;
  }

  #onData(chunk: Buffer): void {
    if (this.#done) return;
    let lines: Uint8Array[];
    try {
      // A plain Uint8Array view, so that the user id parseReply slices off is a copy, not a view into the chunk.
      lines = this.#splitter.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    } catch (error) {
      if (!(error instanceof LineTooLongError)) throw error;
      this.#fail(
        new IdentMalformedReplyError(`ident reply longer than ${error.maxLineOctets} octets`, undefined, {
          cause: error,
        }),
      );
      return;
    }
    for (const line of lines) {
      if (this.#done) return;
      this.#onLine(line);
    }
  }

  #onLine(octets: Uint8Array): void {
    const raw = utf8.decode(octets);
    const slot = this.#slots.shift();
    if (!slot) {
      this.#fail(new IdentMalformedReplyError(`unsolicited ident reply ${JSON.stringify(raw)}`, raw));
      return;
    }
    const reply = parseReply(octets);
    if (!reply) {
      this.#slots.unshift(slot);
      this.#fail(new IdentMalformedReplyError(`not an RFC 1413 reply: ${JSON.stringify(raw)}`, raw));
      return;
    }
    const { query } = slot;
    if (reply.serverPort !== query.serverPort || reply.clientPort !== query.clientPort) {
      this.#slots.unshift(slot);
      this.#fail(
        new IdentPortMismatchError(query, { serverPort: reply.serverPort, clientPort: reply.clientPort }, raw),
      );
      return;
    }
    this.#answered++;
    if (!slot.pending) return; // it timed out; the late reply only keeps the order
    const ports = { serverPort: reply.serverPort, clientPort: reply.clientPort };
    const response: IdentResponse =
      reply.type === 'USERID'
        ? {
            ...ports,
            isSuccess: true,
            userId: reply.userId,
            userIdOctets: reply.userIdOctets,
            opsys: reply.opsys,
            charset: reply.charset,
            errorType: undefined,
            raw,
          }
        : {
            ...ports,
            isSuccess: false,
            errorType: reply.error,
            userId: undefined,
            userIdOctets: undefined,
            opsys: undefined,
            charset: undefined,
            raw,
          };
    this.#events.answered(slot.pending, response);
  }

  /** Drops the connection and fails every query still waiting on it with `error`. */
  #fail(error: IdentClientError): void {
    if (this.#done) return;
    this.#done = true;
    this.#socket.destroy();
    this.#events.ended(this, this.#orphans(), error, 0);
  }

  #onClose(): void {
    if (this.#done) return;
    this.#done = true;
    const where = hostPort(this.#hostname, this.#port);
    const cause = this.#socketError;
    const error = !this.#connected
      ? new IdentConnectError(this.#hostname, this.#port, { cause })
      : new IdentClosedError(
          `ident server ${where} closed the connection before answering${cause ? ` (${describe(cause)})` : ''}`,
          cause ? { cause } : undefined,
        );
    this.#events.ended(this, this.#orphans(), error, this.#answered);
  }

  #orphans(): PendingQuery[] {
    const orphans: PendingQuery[] = [];
    for (const slot of this.#slots.splice(0)) if (slot.pending && !slot.pending.settled) orphans.push(slot.pending);
    return orphans;
  }
}

/**
 * Opens a connection, asks one question, and closes it.
 *
 * @example
 * const response = await ident({ hostname: '::1', port: 113, serverPort: 6193, clientPort: 23, timeout: 2_000 });
 * if (response.isSuccess) console.log(response.userId);
 */
export async function ident(options: IdentOptions): Promise<IdentResponse> {
  if (options === null || typeof options !== 'object') throw invalidType('options', 'an object', options);
  const { serverPort, clientPort, ...clientOptions } = options;
  checkPort('serverPort', serverPort);
  checkPort('clientPort', clientPort);
  const client = new IdentClient(clientOptions);
  try {
    return await client.ident(serverPort, clientPort);
  } finally {
    await client.close();
  }
}

function checkPort(name: string, port: unknown): asserts port is number {
  if (typeof port !== 'number') throw invalidType(name, 'a port number', port);
  if (!isPort(port)) throw outOfRange(name, 'an integer in 1..65535', port);
}

function shown(value: unknown): string {
  return typeof value === 'string'
    ? JSON.stringify(value)
    : typeof value === 'number'
      ? String(value)
      : value === null
        ? 'null'
        : typeof value;
}

/** Bad constructor options are a ConfigError, as in every identgate module; bad arguments to a call stay TypeError/RangeError. */
function badOption(name: string, expected: string, value: unknown): ConfigError {
  return new ConfigError(`IdentClient option ${name} must be ${expected}, got ${shown(value)}`);
}

function invalidType(name: string, expected: string, value: unknown): TypeError {
  return Object.assign(new TypeError(`${name} must be ${expected}, got ${shown(value)}`), {
    code: 'ERR_INVALID_ARG_TYPE',
  });
}

function outOfRange(name: string, expected: string, value: unknown): RangeError {
  return Object.assign(new RangeError(`${name} must be ${expected}, got ${String(value)}`), {
    code: 'ERR_OUT_OF_RANGE',
  });
}

function describe(error: Error): string {
  const code = (error as NodeJS.ErrnoException).code;
  return code ?? error.message;
}
