/**
 * RFC 1413 replies: built for servers with every rule checked before an octet is written
 * (ReplyRuleError otherwise), and parsed for clients (RFC 1413 §6; docs/internals.md).
 */
import { isErrorToken, isToken, USER_ID_MAX_OCTETS, type ErrorToken } from './tokens.js';
import { isPort, parseRequestOctets, type IdentQuery } from './request.js';
import { IdentgateError } from './errors.js';

/** What a server answers for one query. */
export type IdentAnswer = UserIdAnswer | ErrorAnswer;

export interface UserIdAnswer {
  readonly type: 'USERID';
  /** "UNIX", "OTHER", ... RFC 1413 §6: OTHER when the id is not a login name. */
  readonly opsys: string;
  /** Omitted means US-ASCII. A non-ASCII user id needs "UTF-8". */
  readonly charset?: string | undefined;
  readonly userId: string;
}

export interface ErrorAnswer {
  readonly type: 'ERROR';
  readonly error: ErrorToken;
}

/** Thrown when an answer breaks an RFC 1413 reply rule; it is never written. */
export class ReplyRuleError extends IdentgateError {
  readonly code = 'ERR_PROTOCOL_REPLY_RULE';
}

const encoder = new TextEncoder();
const UTF8_CHARSETS = new Set(['UTF-8', 'UTF8']);
const ASCII_CHARSETS = new Set(['US-ASCII', 'ASCII']);

function hasForbiddenChar(userId: string): boolean {
  return userId.includes('\0') || userId.includes('\r') || userId.includes('\n');
}

function isAscii(text: string): boolean {
  // eslint-disable-next-line no-control-regex
  return /^[\x00-\x7f]*$/.test(text);
}

/** Returns the rule an answer breaks, or undefined when it may be written. */
export function replyRuleViolation(answer: IdentAnswer): string | undefined {
  if (answer === null || typeof answer !== 'object') return 'answer is not an object';
  if (answer.type === 'ERROR') {
    if (typeof answer.error !== 'string' || !isErrorToken(answer.error)) {
      return 'error must be INVALID-PORT, NO-USER, HIDDEN-USER, UNKNOWN-ERROR or an X-token';
    }
    return undefined;
  }
  if (answer.type !== 'USERID') return 'type must be USERID or ERROR';
  if (typeof answer.opsys !== 'string' || !isToken(answer.opsys)) {
    return 'opsys must be 1..64 printable ASCII characters without ":", "," or white space';
  }
  const charset = answer.charset;
  if (charset !== undefined && (typeof charset !== 'string' || !isToken(charset))) {
    return 'charset must be 1..64 printable ASCII characters without ":", "," or white space';
  }
  const userId = answer.userId;
  const violation = userIdViolation(userId);
  if (violation) return violation;
  if (!isAscii(userId) && !(charset && UTF8_CHARSETS.has(charset.toUpperCase()))) {
    return 'a non-ASCII user id needs charset UTF-8';
  }
  return undefined;
}

/**
 * The rules a user id keeps whatever its charset (RFC 1413 §6), or undefined when it keeps them: 1..512 octets
 * in UTF-8, no NUL, CR or LF, no leading white space. A non-ASCII one is written with charset UTF-8.
 */
export function userIdViolation(userId: string): string | undefined {
  if (typeof userId !== 'string' || userId.length === 0) return 'user id must be a non-empty string';
  if (hasForbiddenChar(userId)) return 'user id must not contain NUL, CR or LF';
  // An ASCII id has one octet per character; only others need encoding to count.
  if (userId.length > USER_ID_MAX_OCTETS || (!isAscii(userId) && encoder.encode(userId).length > USER_ID_MAX_OCTETS)) {
    return `user id must be at most ${USER_ID_MAX_OCTETS} octets`;
  }
  // A user id that starts with white space would lose it to the reader (the
  // white space after the colon is a separator).
  if (userId[0] === ' ' || userId[0] === '\t') return 'user id must not start with white space';
  return undefined;
}

/** Throws ReplyRuleError unless the answer may be written. */
export function assertValidAnswer(answer: IdentAnswer): void {
  const violation = replyRuleViolation(answer);
  if (violation) throw new ReplyRuleError(violation);
}

/** Formats a reply line with CRLF. Throws ReplyRuleError on a bad answer. */
export function formatReply(query: IdentQuery, answer: IdentAnswer): string {
  assertValidAnswer(answer);
  if (!isPort(query.serverPort) || !isPort(query.clientPort)) throw new ReplyRuleError('ports must be 1..65535');
  return formatReplyUnchecked(query, answer);
}

/** Formats an answer already known to be valid (hot path after validation). */
export function formatReplyUnchecked(query: IdentQuery, answer: IdentAnswer): string {
  const ports = `${query.serverPort}, ${query.clientPort}`;
  if (answer.type === 'ERROR') return `${ports} : ERROR : ${answer.error}\r\n`;
  const opsys = answer.charset ? `${answer.opsys} , ${answer.charset}` : answer.opsys;
  return `${ports} : USERID : ${opsys} : ${answer.userId}\r\n`;
}

/** Formats a reply as UTF-8 octets, ready for a socket. */
export function encodeReply(query: IdentQuery, answer: IdentAnswer): Uint8Array {
  return encoder.encode(formatReply(query, answer));
}

/** A reply as a client reads it. */
export type ParsedReply = ParsedUserId | ParsedError;

export interface ParsedUserId extends IdentQuery {
  readonly type: 'USERID';
  readonly opsys: string;
  /** As sent, or "US-ASCII" when absent. */
  readonly charset: string;
  /** Decoded for US-ASCII and UTF-8; one character per octet (ISO-8859-1) for any other charset. */
  readonly userId: string;
  /** The user id exactly as it arrived. */
  readonly userIdOctets: Uint8Array;
}

export interface ParsedError extends IdentQuery {
  readonly type: 'ERROR';
  /** The token as sent (standard, X-token, or something a non-conforming server made up). */
  readonly error: string;
}

const COLON = 0x3a;
const utf8 = new TextDecoder('utf-8');

/** One character per octet (a true ISO-8859-1 reading, unlike TextDecoder's windows-1252). */
function octetsToString(octets: Uint8Array): string {
  let text = '';
  for (let i = 0; i < octets.length; i += 4096) text += String.fromCharCode(...octets.subarray(i, i + 4096));
  return text;
}

function trimWhite(text: string): string {
  return text.replace(/^[ \t]+|[ \t]+$/g, '');
}

function toOctets(line: Uint8Array | string): Uint8Array {
  if (typeof line !== 'string') return line;
  return encoder.encode(line);
}

/**
 * Parses one reply line (without its line end). Returns undefined when the
 * line is not an RFC 1413 reply. Keywords are case-insensitive; the user id
 * is everything after the colon that follows the opsys field.
 */
export function parseReply(line: Uint8Array | string): ParsedReply | undefined {
  const octets = toOctets(line);
  const first = octets.indexOf(COLON);
  if (first === -1) return undefined;
  const ports = parseRequestOctets(octets, 0, first);
  if (!ports) return undefined;
  const second = octets.indexOf(COLON, first + 1);
  if (second === -1) return undefined;
  const kind = trimWhite(octetsToString(octets.subarray(first + 1, second))).toUpperCase();
  if (kind === 'ERROR') {
    const error = trimWhite(octetsToString(octets.subarray(second + 1)));
    if (!/^[\x21-\x7e]+$/.test(error) || error.includes(':')) return undefined;
    return { ...ports, type: 'ERROR', error };
  }
  if (kind !== 'USERID') return undefined;
  const third = octets.indexOf(COLON, second + 1);
  if (third === -1) return undefined;
  const [opsysField, charsetField] = octetsToString(octets.subarray(second + 1, third)).split(',', 2);
  const opsys = trimWhite(opsysField ?? '');
  const charset = charsetField === undefined ? 'US-ASCII' : trimWhite(charsetField);
  if (!isToken(opsys) || !isToken(charset)) return undefined;
  let start = third + 1;
  while (start < octets.length && (octets[start] === 0x20 || octets[start] === 0x09)) start++;
  const userIdOctets = octets.slice(start);
  if (userIdOctets.length === 0) return undefined;
  const upper = charset.toUpperCase();
  const userId =
    UTF8_CHARSETS.has(upper) || ASCII_CHARSETS.has(upper) ? utf8.decode(userIdOctets) : octetsToString(userIdOctets);
  return { ...ports, type: 'USERID', opsys, charset, userId, userIdOctets };
}
