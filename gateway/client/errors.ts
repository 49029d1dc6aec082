/**
 * The ways an ident query made by IdentClient can fail, one class per failure,
 * each with a stable `code` that callers branch on (never on message text),
 * after undici's lib/core/errors.js. All of them extend IdentClientError. An
 * answer of `ERROR : NO-USER` is not a failure: it resolves as a response with
 * `isSuccess: false`. A reply whose ports differ from the query is an
 * IdentPortMismatchError, a subclass of IdentMalformedReplyError that shares its
 * code, so `code === 'ERR_IDENT_MALFORMED_REPLY'` covers every reply that cannot
 * be trusted and `instanceof IdentPortMismatchError` tells the two apart.
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
    const reason = describeCause(options.cause);
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

/** `[::1]:113` for IPv6 literals, `host:113` otherwise. */
export function hostPort(hostname: string, port: number): string {
  return hostname.includes(':') ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

function describeCause(cause: unknown): string {
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    return code && !cause.message.includes(code) ? `${code} ${cause.message}` : cause.message;
  }
  return cause === undefined ? '' : String(cause);
}
