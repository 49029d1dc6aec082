/**
 * The server's error vocabulary: every fault the IdentServer reports through
 * `onError`, or rejects with, is an IdentServerError whose `code` says which
 * (undici-style: callers branch on codes, never on message text).
 *
 * @example
 * new IdentServer({ onError: (err) => { if (err.code === 'ERR_IDENT_HANDLER_TIMEOUT') metrics.slow++ } })
 */

export type IdentServerErrorCode =
  /** start() while already started. */
  | 'ERR_IDENT_SERVER_RUNNING'
  /** A listener could not bind; the message says why and what to do. */
  | 'ERR_IDENT_BIND'
  /** The handler threw or its promise rejected. */
  | 'ERR_IDENT_HANDLER_FAILED'
  /** The handler did not reply within the per-query deadline. */
  | 'ERR_IDENT_HANDLER_TIMEOUT'
  /** The handler's reply broke an RFC 1413 rule; UNKNOWN-ERROR was sent instead. */
  | 'ERR_IDENT_INVALID_REPLY'
  /** The handler replied twice; the second reply was ignored. */
  | 'ERR_IDENT_DUPLICATE_REPLY'
  /** A client sent a line longer than the cap; its connection was closed. */
  | 'ERR_IDENT_LINE_TOO_LONG'
  /** A connection was refused or evicted by a connection limit. */
  | 'ERR_IDENT_CONNECTION_LIMIT'
  /** A socket error on a client connection (reset, ...). */
  | 'ERR_IDENT_SOCKET'
  /** The native transport was asked for and is not built or does not load here. */
  | 'ERR_IDENT_TRANSPORT';

export class IdentServerError extends Error {
  readonly code: IdentServerErrorCode;
  constructor(code: IdentServerErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'IdentServerError';
    this.code = code;
  }
}
