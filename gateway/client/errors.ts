/**
 * The ways an IdentClient query fails, one class per failure with a stable `code`, all IdentClientErrors. An
 * `ERROR : NO-USER` answer is not a failure; IdentPortMismatchError shares IdentMalformedReplyError's code.
 *
 * @example
 * try {
 *   await client.ident(6193, 23);
 * } catch (error) {
 *   if (error instanceof IdentClientError && error.code === 'ERR_IDENT_TIMEOUT') retryLater();
 *   else throw error;
 * }
 */
import { IdentgateError, type ErrorCodeOf } from '../../protocol/errors.js';
import type { IdentQuery } from '../../protocol/request.js';
import { errnoMessage, hostPort } from '../describe.js';

export type IdentClientErrorCode = IdentClientError['code'];

/** Base class of every failure an ident query can end in. */
export abstract class IdentClientError extends IdentgateError {
  abstract override readonly code: ErrorCodeOf<'client'>;
  // An ident server that is down, slow or broken is the operator's to fix: one line, no stack.
  override readonly userError = true;
}

/** No reply arrived within `timeout` milliseconds of sending the query. */
export class IdentTimeoutError extends IdentClientError {
  readonly code = 'ERR_IDENT_TIMEOUT';
  constructor(
    readonly query: IdentQuery,
    readonly timeout: number,
  ) {
    super(`no ident reply to "${query.serverPort}, ${query.clientPort}" within ${timeout} ms`);
  }
}

/** The TCP connection to the ident server could not be made; `cause` holds the errno error. */
export class IdentConnectError extends IdentClientError {
  readonly code = 'ERR_IDENT_CONNECT';
  constructor(
    readonly hostname: string,
    readonly port: number,
    options: { cause: unknown },
  ) {
    const reason = errnoMessage(options.cause);
    super(`cannot connect to ident server ${hostPort(hostname, port)}${reason ? `: ${reason}` : ''}`, options);
  }
}

/**
 * The connection ended before the query was answered: the server closed or
 * reset it, or the caller closed the client. `cause` holds a socket error when
 * there was one.
 */
export class IdentClosedError extends IdentClientError {
  readonly code = 'ERR_IDENT_CLOSED';
}

/**
 * The server sent something that is not an RFC 1413 reply (or a line longer
 * than the cap, or a reply nobody asked for). The connection is dropped and
 * every query in flight on it fails with this error, since the order of the
 * replies that follow can no longer be trusted.
 */
export class IdentMalformedReplyError extends IdentClientError {
  readonly code = 'ERR_IDENT_MALFORMED_REPLY';
  constructor(
    message: string,
    /** The offending line (decoded as UTF-8), when there was a whole line. */
    readonly line: string | undefined,
    options?: { cause: unknown },
  ) {
    super(message, options);
  }
}

/** A well-formed reply whose ports are not those of the query it answers (in order). */
export class IdentPortMismatchError extends IdentMalformedReplyError {
  constructor(
    readonly expected: IdentQuery,
    readonly received: IdentQuery,
    line: string,
  ) {
    super(
      `ident reply is for "${received.serverPort}, ${received.clientPort}" but the query was "${expected.serverPort}, ${expected.clientPort}"`,
      line,
    );
  }
}
