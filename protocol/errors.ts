/**
 * The one base every identgate error extends, and the single list of their codes (undici's lib/core/errors.js).
 * Callers branch on `instanceof` or `code`, never on message text; `userError` says the message is for an operator.
 */

/** Every identgate error code, one per class, by the folder that raises it. A new error class adds its code here. */
export const ERROR_CODES = {
  /** Bad options or flags, in every module. */
  config: ['ERR_IDENTGATE_CONFIG', 'ERR_RESOLVER_CONFIG'],
  protocol: ['ERR_PROTOCOL_LINE_TOO_LONG', 'ERR_PROTOCOL_REPLY_RULE'],
  /** gateway/server/ (IdentServer) */
  server: [
    'ERR_IDENT_SERVER_RUNNING',
    'ERR_IDENT_BIND',
    'ERR_IDENT_HANDLER_FAILED',
    'ERR_IDENT_HANDLER_TIMEOUT',
    'ERR_IDENT_INVALID_REPLY',
    'ERR_IDENT_DUPLICATE_REPLY',
    'ERR_IDENT_LINE_TOO_LONG',
    'ERR_IDENT_SOCKET',
    'ERR_IDENT_TRANSPORT',
  ],
  /** gateway/client/ (IdentClient) */
  client: ['ERR_IDENT_TIMEOUT', 'ERR_IDENT_CONNECT', 'ERR_IDENT_CLOSED', 'ERR_IDENT_MALFORMED_REPLY'],
  owner: [
    'ERR_OWNER_LOOKUP_UNSUPPORTED',
    'ERR_OWNER_LOOKUP_TIMEOUT',
    'ERR_OWNER_LOOKUP_HELPER',
    'ERR_OWNER_LOOKUP_KERNEL',
  ],
  /** gateway/nat/ (conntrack lookups) */
  nat: ['ERR_NAT_LOOKUP_UNSUPPORTED', 'ERR_NAT_LOOKUP_KERNEL', 'ERR_NAT_LOOKUP_TIMEOUT'],
  resolver: ['ERR_RESOLVER_FAILURE'],
  daemon: ['ERR_IDENTGATE_WORKER', 'ERR_IDENTGATE_PRIVILEGES'],
  claims: ['ERR_IDENTGATE_CLAIMS_SOCKET', 'ERR_CLAIMS_API'],
  /** gateway/delegate/ (oidentd user files, forwarding) */
  delegate: ['ERR_USER_FILE_SYNTAX'],
  worker: [
    'ERR_IDENTGATE_LISTEN',
    'ERR_POLICY_INVALID',
    'ERR_POLICY_STORE',
    'ERR_POLICY_FILE_READ',
    'ERR_POLICY_FILE_INVALID',
  ],
  /** worker/stores/ (the audit database) */
  audit: ['ERR_AUDIT_DATABASE', 'ERR_AUDIT_CURSOR'],
} as const;

/** The codes of one folder's errors: `ErrorCodeOf<'server'>`. */
export type ErrorCodeOf<Area extends keyof typeof ERROR_CODES> = (typeof ERROR_CODES)[Area][number];
export type IdentgateErrorCode = ErrorCodeOf<keyof typeof ERROR_CODES>;

/** All codes in one list. */
export const IDENTGATE_ERROR_CODES: readonly IdentgateErrorCode[] = Object.values(ERROR_CODES).flat();

/**
 * The base of every identgate error. `userError` is true when the message alone tells an operator what to fix
 * (bad flags, a busy port, an unreadable file): the CLI prints it as one line. Otherwise it is a bug or a fault
 * of a peer, and the CLI keeps the stack.
 *
 * @example
 * class IdentBindError extends IdentgateError {
 *   readonly code = 'ERR_IDENT_BIND';
 *   override readonly userError = true;
 * }
 */
export abstract class IdentgateError extends Error {
  abstract readonly code: IdentgateErrorCode;
  readonly userError: boolean = false;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
  }
}

/**
 * An option or flag is unusable, in any module (CLI flags, IdentServer, IdentClient, resolvers, owner lookup).
 * The message is one line naming the option and what to do.
 *
 * @example
 * if (!(port >= 1)) throw new ConfigError(`--port ${port}: expected 1..65535`);
 */
export class ConfigError extends IdentgateError {
  readonly code: ErrorCodeOf<'config'> = 'ERR_IDENTGATE_CONFIG';
  override readonly userError = true;
}
