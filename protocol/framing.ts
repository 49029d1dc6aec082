/**
 * Incremental line framing for RFC 1413 connections, fed raw octets as they
 * arrive. LF ends a line and a CR right before it is dropped (CRLF or LF); a
 * bare CR is part of the line. An unterminated last line is never a request.
 * More than `maxLineOctets` octets without a line end is a protocol error: the
 * caller closes the connection (RFC 1413 sets no limit; 1000 is ours).
 *
 * Modelled on smtp-server's smtp-stream: it only splits lines and hands them on.
 *
 * @example
 * const splitter = new LineSplitter();
 * splitter.push(bytes('61'));          // []
 * splitter.push(bytes('93, 23\r\n'));  // [bytes('6193, 23')]
 */

export const DEFAULT_MAX_LINE_OCTETS = 1000;

const LF = 0x0a;
const CR = 0x0d;

/** Thrown by LineSplitter.push when a line grows past the cap. */
export class LineTooLongError extends Error {
  readonly code = 'ERR_IDENT_LINE_TOO_LONG';
  /** The complete lines of the same chunk that came before the over-long one. */
  lines: Uint8Array[] = [];
  constructor(readonly maxLineOctets: number) {
    super(`request line longer than ${maxLineOctets} octets without a line end`);
    this.name = 'LineTooLongError';
  }
}

function tooLong(maxLineOctets: number, lines: Uint8Array[]): LineTooLongError {
  const error = new LineTooLongError(maxLineOctets);
  error.lines = lines;
  return error;
}

export class LineSplitter {
  #partial: Uint8Array | undefined;
  readonly #maxLineOctets: number;

  constructor(maxLineOctets = DEFAULT_MAX_LINE_OCTETS) {
    this.#maxLineOctets = maxLineOctets;
  }

  /** Octets held back waiting for a line end. */
  get pendingOctets(): number {
    return this.#partial?.length ?? 0;
  }

  /**
   * Feeds a chunk and returns the complete lines it finished, without line ends.
   * Returned arrays may share memory with `chunk`; copy them to keep them.
   * Throws LineTooLongError when a line exceeds the cap; its `lines` holds the
   * complete lines that came before it, which are still requests.
   */
  push(chunk: Uint8Array): Uint8Array[] {
    const lines: Uint8Array[] = [];
    let data = chunk;
    if (this.#partial) {
      const joined = new Uint8Array(this.#partial.length + chunk.length);
      joined.set(this.#partial, 0);
      joined.set(chunk, this.#partial.length);
      data = joined;
      this.#partial = undefined;
    }
    let start = 0;
    for (let lf = data.indexOf(LF, start); lf !== -1; lf = data.indexOf(LF, start)) {
      const end = lf > start && data[lf - 1] === CR ? lf - 1 : lf;
      if (end - start > this.#maxLineOctets) throw tooLong(this.#maxLineOctets, lines);
      lines.push(data.subarray(start, end));
      start = lf + 1;
    }
    const rest = data.length - start;
    if (rest > 0) {
      // One more octet is allowed when it is the CR of a CRLF split across chunks.
      const limit = data[data.length - 1] === CR ? this.#maxLineOctets + 1 : this.#maxLineOctets;
      if (rest > limit) throw tooLong(this.#maxLineOctets, lines);
      this.#partial = data.slice(start);
    }
    return lines;
  }
}
