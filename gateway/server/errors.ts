/**
 * The server's errors: everything IdentServer reports through `onError`, or rejects with, is an IdentServerError;
 * each failure is its own class with one `code` (callers branch on codes or `instanceof`, never on message text).
 *
 * @example
 * new IdentServer({ onError: (err) => { if (err.code === 'ERR_IDENT_HANDLER_TIMEOUT') metrics.slow++ } })
 */
import { IdentgateError, type ErrorCodeOf } from '../../protocol/errors.js';

export type IdentServerErrorCode = IdentServerError['code'];

/** The base of the server's errors. */
export abstract class IdentServerError extends IdentgateError {
  abstract override readonly code: ErrorCodeOf<'server'>;
}

/** start() while already started. */
export class IdentServerRunningError extends IdentServerError {
  readonly code = 'ERR_IDENT_SERVER_RUNNING';
}

/** A listener could not bind; the message says why and what to do. */
export class IdentBindError extends IdentServerError {
  readonly code = 'ERR_IDENT_BIND';
  override readonly userError = true;
}

/** The handler threw or its promise rejected. */
export class IdentHandlerFailedError extends IdentServerError {
  readonly code = 'ERR_IDENT_HANDLER_FAILED';
}

/** The handler did not reply within the per-query deadline. */
export class IdentHandlerTimeoutError extends IdentServerError {
  readonly code = 'ERR_IDENT_HANDLER_TIMEOUT';
}

/** The handler's reply broke an RFC 1413 rule; UNKNOWN-ERROR was sent instead. */
export class IdentInvalidReplyError extends IdentServerError {
  readonly code = 'ERR_IDENT_INVALID_REPLY';
}

/** The handler replied twice; the second reply was ignored. */
export class IdentDuplicateReplyError extends IdentServerError {
  readonly code = 'ERR_IDENT_DUPLICATE_REPLY';
}

/** A client sent a line longer than the cap; its connection was closed. */
export class IdentLineTooLongError extends IdentServerError {
  readonly code = 'ERR_IDENT_LINE_TOO_LONG';
}

/** A socket error on a client connection (reset, ...) or a listener. */
export class IdentSocketError extends IdentServerError {
  readonly code = 'ERR_IDENT_SOCKET';
}

/** The native transport was asked for and is not built or does not load here. */
export class IdentTransportError extends IdentServerError {
  readonly code = 'ERR_IDENT_TRANSPORT';
  override readonly userError = true;
}
