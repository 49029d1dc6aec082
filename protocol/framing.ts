/**
 * Incremental line framing for RFC 1413 connections (LF or CRLF ends a line; over maxLineOctets is
 * a protocol error), push or pull; like smtp-server's smtp-stream it only splits lines (docs/internals.md).
 */

import { IdentgateError } from './errors.js';

export const DEFAULT_MAX_LINE_OCTETS = 1000;

const LF = 0x0a;
const CR = 0x0d;

/** Thrown by LineSplitter.push when a line grows past the cap. */
export class LineTooLongError extends IdentgateError {
  readonly code = 'ERR_PROTOCOL_LINE_TOO_LONG';
  /** The complete lines of the same chunk that came before the over-long one. */
  lines: Uint8Array[] = [];
  constructor(readonly maxLineOctets: number) {
    super(`request line longer than ${maxLineOctets} octets without a line end`);
  }
}

/** The buffer of a splitter holding nothing; never written (feed replaces it), so one serves all. */
const EMPTY = new Uint8Array(0);

export class LineSplitter {
  /** Octets received and not yet returned as lines, from #start. */
  #buffer: Uint8Array = EMPTY;
  #start = 0;
  /** #buffer is this splitter's own copy, not a fed chunk. */
  #owned = true;
  readonly #maxLineOctets: number;

  constructor(maxLineOctets = DEFAULT_MAX_LINE_OCTETS) {
    this.#maxLineOctets = maxLineOctets;
  }

  /** Octets held back: an unfinished line, plus complete lines not yet taken with nextLine(). */
  get pendingOctets(): number {
    return this.#buffer.length - this.#start;
  }

  /** Appends a chunk without splitting it (pull mode: then call nextLine()). */
  feed(chunk: Uint8Array): void {
    const rest = this.#buffer.length - this.#start;
    if (rest === 0) {
      this.#buffer = chunk;
      this.#owned = false;
    } else {
      const joined = new Uint8Array(rest + chunk.length);
      joined.set(this.#buffer.subarray(this.#start), 0);
      joined.set(chunk, rest);
      this.#buffer = joined;
      this.#owned = true;
    }
    this.#start = 0;
  }

  /**
   * Copies what is still held out of the fed chunks, for a caller that reuses
   * a chunk's memory once it has taken the lines it could (a transport reading
   * every connection into one buffer). Holding nothing, it keeps nothing.
   */
  detach(): void {
    if (this.#buffer.length === this.#start) this.release();
    else if (!this.#owned) {
      this.#buffer = this.#buffer.slice(this.#start);
      this.#start = 0;
      this.#owned = true;
    }
  }

  /** Drops whatever is buffered (the connection is gone); the splitter starts empty again. */
  release(): void {
    this.#buffer = EMPTY;
    this.#start = 0;
    this.#owned = true;
  }

  /** True when a complete line is waiting to be taken. */
  hasLine(): boolean {
    return this.#buffer.indexOf(LF, this.#start) !== -1;
  }

  /**
   * Takes the next complete line (without its line end), or undefined when
   * none is complete yet. The line may share memory with fed chunks. Throws
   * LineTooLongError when the next line exceeds the cap.
   */
  nextLine(): Uint8Array | undefined {
    const data = this.#buffer;
    const start = this.#start;
    const lf = data.indexOf(LF, start);
    if (lf === -1) {
      const rest = data.length - start;
      // One more octet is allowed when it is the CR of a CRLF split across chunks.
      const limit = rest > 0 && data[data.length - 1] === CR ? this.#maxLineOctets + 1 : this.#maxLineOctets;
      if (rest > limit) throw new LineTooLongError(this.#maxLineOctets);
      if (rest > 0 && start > 0 && data.length > 4096) {
        // Keep only the unfinished line, not the whole chunk it arrived in.
        this.#buffer = data.slice(start);
        this.#start = 0;
        this.#owned = true;
      }
      return undefined;
    }
    const end = lf > start && data[lf - 1] === CR ? lf - 1 : lf;
    if (end - start > this.#maxLineOctets) throw new LineTooLongError(this.#maxLineOctets);
    this.#start = lf + 1;
    return data.subarray(start, end);
  }

  /**
   * Feeds a chunk and returns every complete line it finished (push mode).
   * Throws LineTooLongError when a line exceeds the cap; its `lines` holds the
   * complete lines that came before it, which are still requests.
   */
  push(chunk: Uint8Array): Uint8Array[] {
    this.feed(chunk);
    const lines: Uint8Array[] = [];
    try {
      for (let line = this.nextLine(); line !== undefined; line = this.nextLine()) lines.push(line);
    } catch (error) {
      if (error instanceof LineTooLongError) error.lines = lines;
      throw error;
    }
    return lines;
  }
}
