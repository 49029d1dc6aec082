/**
 * The closed vocabulary of RFC 1413 replies: the standard error tokens, X-tokens (§6) and the token
 * grammar of opsys and charset, as pure predicates shared by gateway, worker and client.
 */

/** RFC 1413 §6: the error tokens every client understands. */
export const STANDARD_ERRORS = ['INVALID-PORT', 'NO-USER', 'HIDDEN-USER', 'UNKNOWN-ERROR'] as const;

export type StandardError = (typeof STANDARD_ERRORS)[number];

/** A standard error or an X-token ("X" then 1..63 printable ASCII, no ':' or white space). */
export type ErrorToken = StandardError | `X${string}`;

/** Longest opsys, charset or error token we write or accept (RFC 1413 §6 says "up to 64"). */
export const TOKEN_MAX_CHARS = 64;

/** RFC 1413 §6: the user id is at most 512 octets. */
export const USER_ID_MAX_OCTETS = 512;

const X_TOKEN = /^X[\x21-\x39\x3b-\x7e]{1,63}$/;
// Printable ASCII without ':' (0x3a) and ',' (0x2c); white space is outside 0x21..0x7e.
const TOKEN = /^[\x21-\x2b\x2d-\x39\x3b-\x7e]{1,64}$/;

export function isStandardError(value: string): value is StandardError {
  return (STANDARD_ERRORS as readonly string[]).includes(value);
}

/** True for a token the server may write after `ERROR :`. */
export function isErrorToken(value: string): value is ErrorToken {
  return isStandardError(value) || X_TOKEN.test(value);
}

/** True for an opsys or charset token: 1..64 printable ASCII, no ':' ',' or white space. */
export function isToken(value: string): boolean {
  return TOKEN.test(value);
}
