/**
 * One client connection of an IdentServer (smtp-server's smtp-connection): its state, line framing, queries to the
 * handler, replies in request order, and the per-connection limits (the idle timeout counts progress: input accepted
 * or output drained). Bytes move through a transport/ ByteStream.
 */
import {
  formatReplyUnchecked,
  LineSplitter,
  LineTooLongError,
  parseRequestOctets,
  replyRuleViolation,
  type IdentAnswer,
  type IdentQuery,
} from '../../protocol/index.js';
import {
  IdentDuplicateReplyError,
  IdentHandlerFailedError,
  IdentHandlerTimeoutError,
  IdentInvalidReplyError,
  IdentLineTooLongError,
  IdentSocketError,
  type IdentServerError,
} from './errors.js';
import type { LiveNode } from './live-connections.js';
import { IdentTransaction, type AnswerSink, type TransactionEndpoints } from './transaction.js';
import type { ByteStream, StreamReceiver } from './transport/types.js';

export type IdentHandler = (tx: IdentTransaction) => unknown;

/** Per-connection limits, resolved from IdentServerOptions. */
export interface ConnectionLimits {
  readonly maxLineOctets: number;
  readonly maxInFlight: number;
  readonly maxQueriesPerConnection: number;
  /**
   * A connection that makes no progress this long is closed (by the server's
   * sweep) when it is idle: nothing in flight, or replies the client does not read.
   */
  readonly idleTimeoutMs: number;
  readonly queryDeadlineMs: number;
  /** RFC 1413 §6: answer UNKNOWN-ERROR instead of any specific error (only when configured). */
  readonly hideErrors?: boolean;
}

/** What a connection tells its server; one object shared by all of the server's connections. */
export interface ConnectionHooks {
  readonly handler: IdentHandler;
  readonly onError: (error: IdentServerError) => void;
  /** Input was accepted or output drained: the server keeps connections ordered by it (idle sweep, eviction). */
  readonly onProgress: (connection: IdentConnection) => void;
  readonly onClose: (connection: IdentConnection) => void;
  /** A line that is not a query was answered INVALID-PORT (RFC 1413 §6; UNKNOWN-ERROR when errors are hidden). */
  readonly onInvalidQuery: () => void;
}

const UNKNOWN_ERROR: IdentAnswer = { type: 'ERROR', error: 'UNKNOWN-ERROR' };
const HIDDEN_INVALID_PORT = '0, 0 : ERROR : UNKNOWN-ERROR\r\n';
const INVALID_QUERY: IdentQuery = { serverPort: 0, clientPort: 0 };
/** A first write this short fits in one segment on any path: at most 510 octets in UTF-8, and the smallest IPv4 MSS is 536. */
const NAGLE_SAFE_CHARS = 170;

/**
 * A query waiting for its reply line, in arrival order. It is also the
 * transaction's answer sink, so a query costs one object here, not a closure.
 */
class Slot implements AnswerSink {
  reply: string | undefined;
  constructor(
    readonly query: IdentQuery,
    readonly deadline: number,
    readonly settle: (slot: Slot, answer: IdentAnswer) => boolean,
    reply?: string,
  ) {
    this.reply = reply;
  }

  answer(answer: IdentAnswer): boolean {
    return this.settle(this, answer);
  }
}

/** Ports to echo for a line that is not a valid query: only numbers we re-format, never client bytes. */
function invalidPortReply(line: Uint8Array): string {
  const match = /^[ \t]*(\d{1,10})[ \t]*,[ \t]*(\d{1,10})[ \t]*$/.exec(String.fromCharCode(...line.subarray(0, 64)));
  const ports = match && line.length <= 64 ? `${Number(match[1])}, ${Number(match[2])}` : '0, 0';
  return `${ports} : ERROR : INVALID-PORT\r\n`;
}

/** How long a connection that has ended its side may wait for a client that never reads or closes. */
const MAX_LINGER_MS = 5_000;

export class IdentConnection implements LiveNode<IdentConnection>, StreamReceiver {
  readonly stream: ByteStream;
  readonly endpoints: TransactionEndpoints;
  /** The server's live list (live-connections.ts) owns these links. */
  liveOlder: IdentConnection | null = null;
  liveNewer: IdentConnection | null = null;
  /**
   * performance.now() (monotonic: wall-clock jumps neither close nor keep
   * connections) of the last progress: input accepted, output drained, or the accept.
   */
  lastProgress = performance.now();
  /** The server's key for this connection's remote address or IPv6 prefix (address-groups.ts). */
  addressGroup = '';

  readonly #limits: ConnectionLimits;
  readonly #hooks: ConnectionHooks;
  readonly #splitter: LineSplitter;
  #slots: Slot[] = [];
  #head = 0;
  #queries = 0;
  /** No new input is read (stop(), or a limit was hit); buffered lines may still be answered. */
  #readingStopped = false;
  /** No further line is answered: the line cap or maxQueriesPerConnection was hit. */
  #linesStopped = false;
  /** The client half-closed: answer what it sent, then close. */
  #peerEnded = false;
  #closed = false;
  #deadlineTimer: NodeJS.Timeout | undefined;
  #pumpScheduled = false;
  /** Inside #pump's loop: replies settled now go out with its one #flush. */
  #pumping = false;
  #waitingForDrain = false;
  #paused = false;
  /** Something was written (see #write: TCP_NODELAY from the second write on). */
  #wrote = false;
  #noDelay = false;
  #ended = false;
  #lingerTimer: NodeJS.Timeout | undefined;
  /** Answers what it receives, then ends: the server took it beyond the per-address cap (serveOnce). */
  #once = false;
  #firstQueryTimer: NodeJS.Timeout | undefined;
  /** Every Slot of this connection answers through this one function. */
  readonly #settleSlot = (slot: Slot, answer: IdentAnswer): boolean => this.#answer(slot, answer);

  /** The idle timeout is the server's sweep over its connections (closeIfIdle), not a timer per connection. */
  constructor(stream: ByteStream, endpoints: TransactionEndpoints, limits: ConnectionLimits, hooks: ConnectionHooks) {
    this.stream = stream;
    this.endpoints = endpoints;
    this.#limits = limits;
    this.#hooks = hooks;
    this.#splitter = new LineSplitter(limits.maxLineOctets);
    stream.attach(this);
  }

  /** Queries received and not yet written back (a buffered unanswered line counts as one). */
  get pending(): number {
    return this.#slots.length - this.#head + (!this.#linesStopped && this.#splitter.hasLine() ? 1 : 0);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Nothing the server still owes a client that is listening: no query in
   * flight, or replies written that the client does not read (a write stalled
   * on the client). The idle sweep closes such a connection once it has made
   * no progress for idleTimeoutMs, and the global cap may evict it.
   */
  get idle(): boolean {
    return this.pending === 0 || this.#waitingForDrain;
  }

  /**
   * Idle, and the client has had its answers: it asked at least once, or its
   * writes stall. What the per-address cap may take back; a connection whose
   * first query is still on its way is never reclaimable.
   */
  get reclaimable(): boolean {
    return this.#waitingForDrain || (this.#queries > 0 && this.pending === 0);
  }

  /**
   * Serves this connection once: it must send its first query within
   * `firstQueryMs`, and it ends as soon as what it sent is answered. For a
   * connection taken beyond its address's cap, so that it cannot stay idle.
   */
  serveOnce(firstQueryMs: number): void {
    this.#once = true;
    this.#firstQueryTimer = setTimeout(() => {
      if (this.#queries === 0) this.stream.destroy();
    }, firstQueryMs);
  }

  /** Stops reading, answers what was received, then closes (graceful shutdown and limits). */
  finish(): void {
    this.#readingStopped = true;
    this.#maybeEnd();
  }

  /** Closes at once, dropping anything unanswered. */
  destroy(): void {
    this.stream.destroy();
  }

  #peer(): string {
    return `${this.endpoints.remoteAddress}:${this.endpoints.remotePort}`;
  }

  /** The transport's call: bytes from the client. */
  onData(chunk: Uint8Array): void {
    if (this.#readingStopped) return;
    this.#progressed();
    this.#splitter.feed(chunk);
    this.#pump();
    // The chunk's memory is the transport's again after this call: keep a copy of what is left.
    if (this.stream.borrowsChunks) this.#splitter.detach();
  }

  /** The transport's call: a read or write failed; onClose follows. */
  onError(error: NodeJS.ErrnoException): void {
    // A client resetting or vanishing is ordinary client behaviour, not a fault to report.
    if (error.code === 'ECONNRESET' || error.code === 'EPIPE' || error.code === 'ETIMEDOUT') return;
    this.#hooks.onError(new IdentSocketError(`client ${this.#peer()}: ${error.message}`, { cause: error }));
  }

  /** The server keeps connections ordered by their last progress: idle sweep and eviction take the stalest. */
  #progressed(): void {
    this.lastProgress = performance.now();
    this.#hooks.onProgress(this);
  }

  #pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.stream.pause();
  }

  /**
   * Takes lines from the splitter while fewer than maxInFlight queries wait;
   * beyond that the rest stays unsplit and the socket is paused (backpressure),
   * so a packet of thousands of lines costs only what is answered.
   */
  #pump(): void {
    while (!this.#linesStopped && this.#slots.length - this.#head < this.#limits.maxInFlight) {
      let line: Uint8Array | undefined;
      try {
        line = this.#splitter.nextLine();
      } catch (error) {
        if (!(error instanceof LineTooLongError)) throw error;
        this.#hooks.onError(
          new IdentLineTooLongError(`client ${this.#peer()}: ${error.message}; closing`, {
            cause: error,
          }),
        );
        // The lines before the over-long one are answered, then the connection closes.
        this.#linesStopped = true;
        this.finish();
        break;
      }
      if (line === undefined) break;
      this.#pumping = true;
      try {
        this.#dispatch(line);
      } finally {
        this.#pumping = false;
      }
    }
    const backlogged = !this.#linesStopped && this.#splitter.hasLine();
    if (backlogged || this.#waitingForDrain) this.#pause();
    else if (!this.#readingStopped && this.#paused) {
      this.#paused = false;
      this.stream.resume();
    }
    this.#flush();
  }

  /**
   * Continues after replies went out. #pump pauses the socket whenever it
   * leaves lines behind or waits for a drain, so a paused socket is the only
   * case with work left; it yields to other connections first (setImmediate).
   */
  #schedulePump(): void {
    if (this.#pumpScheduled || this.#waitingForDrain || this.#closed || !this.#paused) return;
    this.#pumpScheduled = true;
    setImmediate(() => {
      this.#pumpScheduled = false;
      if (!this.#closed) this.#pump();
    });
  }

  #dispatch(line: Uint8Array): void {
    // Lines beyond maxQueriesPerConnection are not requests we answer.
    if (++this.#queries >= this.#limits.maxQueriesPerConnection) {
      this.#linesStopped = true;
      this.finish();
    }
    const query = parseRequestOctets(line);
    if (!query) {
      const reply = this.#limits.hideErrors ? HIDDEN_INVALID_PORT : invalidPortReply(line);
      this.#slots.push(new Slot(INVALID_QUERY, 0, this.#settleSlot, reply));
      this.#hooks.onInvalidQuery();
      return;
    }
    const slot = new Slot(query, performance.now() + this.#limits.queryDeadlineMs, this.#settleSlot);
    this.#slots.push(slot);
    const tx = new IdentTransaction(query, this.endpoints, slot);
    try {
      const result = this.#hooks.handler(tx);
      if (result && typeof (result as PromiseLike<unknown>).then === 'function') {
        (result as PromiseLike<unknown>).then(undefined, (error: unknown) => this.#handlerFailed(slot, error));
      }
    } catch (error) {
      this.#handlerFailed(slot, error);
    }
  }

  #handlerFailed(slot: Slot, error: unknown): void {
    const message = error instanceof Error ? error.message : String(error);
    this.#hooks.onError(
      new IdentHandlerFailedError(`handler failed for ${slot.query.serverPort}, ${slot.query.clientPort}: ${message}`, {
        cause: error,
      }),
    );
    this.#settle(slot, UNKNOWN_ERROR);
  }

  /** The transaction's sink: validates, records, flushes. */
  #answer(slot: Slot, answer: IdentAnswer): boolean {
    if (slot.reply !== undefined) {
      this.#hooks.onError(
        new IdentDuplicateReplyError(`second reply to ${slot.query.serverPort}, ${slot.query.clientPort} ignored`),
      );
      return false;
    }
    const violation = replyRuleViolation(answer);
    if (violation) {
      this.#hooks.onError(
        new IdentInvalidReplyError(
          `reply to ${slot.query.serverPort}, ${slot.query.clientPort} not sent: ${violation}`,
        ),
      );
      answer = UNKNOWN_ERROR;
    }
    this.#settle(slot, answer);
    return true;
  }

  #settle(slot: Slot, answer: IdentAnswer): void {
    if (slot.reply !== undefined) return;
    if (this.#limits.hideErrors && answer.type === 'ERROR') answer = UNKNOWN_ERROR;
    slot.reply = formatReplyUnchecked(slot.query, answer);
    // Replies produced synchronously inside #pump are flushed once per chunk there.
    if (!this.#pumping && slot === this.#slots[this.#head]) queueMicrotask(() => this.#flush());
  }

  /** Writes every answered reply at the head of the queue, in order, in one write. */
  #flush(): void {
    if (this.#closed) return;
    let out = '';
    while (this.#head < this.#slots.length) {
      const reply = this.#slots[this.#head]!.reply;
      if (reply === undefined) break;
      out += reply;
      this.#head++;
    }
    if (this.#head === this.#slots.length) {
      this.#slots.length = 0;
      this.#head = 0;
    } else if (this.#head > 1024) {
      this.#slots = this.#slots.slice(this.#head);
      this.#head = 0;
    }
    if (out) this.#write(out);
    if (this.#slots.length - this.#head < this.#limits.maxInFlight) this.#schedulePump();
    this.#armDeadline();
    if (this.#once && this.#queries > 0 && this.pending === 0) this.#readingStopped = true;
    this.#maybeEnd();
  }

  /**
   * Nagle's algorithm holds a short segment only while earlier data is
   * unacknowledged, so a connection's first write, if it fits in any segment,
   * cannot be held: TCP_NODELAY (a system call) is set before a later write
   * or a longer first one. A one-query connection never pays for it.
   */
  #write(out: string): void {
    if (!this.#noDelay && (this.#wrote || out.length > NAGLE_SAFE_CHARS)) {
      this.#noDelay = true;
      this.stream.setNoDelay();
    }
    this.#wrote = true;
    if (!this.stream.write(out)) {
      // A client that does not read its replies stops being read: bounded buffers.
      this.#waitingForDrain = true;
      this.#pause();
    }
  }

  /** The transport's call: the replies written so far are out. */
  onDrain(): void {
    // A client still reading keeps a finished connection open (the linger is for one that stopped).
    this.#lingerTimer?.refresh();
    this.#waitingForDrain = false;
    this.#progressed();
    this.#schedulePump();
    this.#maybeEnd();
  }

  /** One timer per connection: the head of the queue always has the earliest deadline. */
  #armDeadline(): void {
    const head = this.#slots[this.#head];
    if (!head) {
      if (this.#deadlineTimer) clearTimeout(this.#deadlineTimer);
      this.#deadlineTimer = undefined;
      return;
    }
    if (this.#deadlineTimer) return;
    this.#deadlineTimer = setTimeout(() => this.#onDeadline(), Math.max(0, head.deadline - performance.now()));
  }

  #onDeadline(): void {
    this.#deadlineTimer = undefined;
    const now = performance.now();
    for (let i = this.#head; i < this.#slots.length; i++) {
      const slot = this.#slots[i]!;
      if (slot.deadline > now) break;
      if (slot.reply !== undefined) continue;
      this.#hooks.onError(
        new IdentHandlerTimeoutError(
          `no reply to ${slot.query.serverPort}, ${slot.query.clientPort} within ${this.#limits.queryDeadlineMs} ms; sent UNKNOWN-ERROR`,
        ),
      );
      slot.reply = formatReplyUnchecked(slot.query, UNKNOWN_ERROR);
    }
    this.#flush();
  }

  /** The transport's call: the client half-closed. */
  onEnd(): void {
    // RFC 1413 half-close: answer everything received, then close. An
    // unterminated last line is not a request.
    this.#peerEnded = true;
    this.#maybeEnd();
  }

  /**
   * The server's idle sweep, for a connection without progress for
   * idleTimeoutMs: closes it when idle, whatever it has pending (a client that
   * does not read its replies holds nothing), but not while a query is in the
   * handler (bounded by the query deadline instead).
   */
  closeIfIdle(): void {
    if (this.idle) this.stream.destroy();
  }

  #maybeEnd(): void {
    if (!(this.#peerEnded || this.#readingStopped) || this.pending > 0 || this.#closed || this.#ended) return;
    this.#ended = true;
    this.stream.end();
    // A peer that never reads or never closes cannot hold the connection open after end().
    if (this.#readingStopped || this.#waitingForDrain) {
      this.#lingerTimer = setTimeout(() => this.stream.destroy(), Math.min(this.#limits.idleTimeoutMs, MAX_LINGER_MS));
    }
  }

  /** The transport's call: the connection is gone. */
  onClose(): void {
    this.#closed = true;
    if (this.#deadlineTimer) clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = undefined;
    if (this.#lingerTimer) clearTimeout(this.#lingerTimer);
    if (this.#firstQueryTimer) clearTimeout(this.#firstQueryTimer);
    this.#splitter.release();
    this.#hooks.onClose(this);
  }
}
