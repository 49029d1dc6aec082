/**
 * RFC 1413 request lines, `<port-on-server> , <port-on-client>`: a deliberately narrow grammar read
 * from octets (test/fixtures/rfc1413.json); anything else is INVALID-PORT.
 */

/** The two ports of a query, named as RFC 1413 names them. */
export interface IdentQuery {
  /** Port on the ident server's host (the host answering the query). */
  readonly serverPort: number;
  /** Port on the querying host. */
  readonly clientPort: number;
}

const SPACE = 0x20;
const TAB = 0x09;
const COMMA = 0x2c;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const MAX_DIGITS = 5;

/** Reads one port starting at `i`; returns [port, next index] or undefined. */
function readPort(octets: ArrayLike<number>, i: number, end: number): [number, number] | undefined {
  while (i < end && (octets[i] === SPACE || octets[i] === TAB)) i++;
  let value = 0;
  let digits = 0;
  while (i < end) {
    const c = octets[i]!;
    if (c < DIGIT_0 || c > DIGIT_9) break;
    if (++digits > MAX_DIGITS) return undefined;
    value = value * 10 + (c - DIGIT_0);
    i++;
  }
  if (digits === 0 || value < 1 || value > 65535) return undefined;
  while (i < end && (octets[i] === SPACE || octets[i] === TAB)) i++;
  return [value, i];
}

/**
 * Parses a request line given as octets (without its line end).
 * Returns undefined for anything that must be answered with INVALID-PORT.
 */
export function parseRequestOctets(octets: ArrayLike<number>, start = 0, end = octets.length): IdentQuery | undefined {
  const first = readPort(octets, start, end);
  if (!first || octets[first[1]] !== COMMA) return undefined;
  const second = readPort(octets, first[1] + 1, end);
  if (!second || second[1] !== end) return undefined;
  return { serverPort: first[0], clientPort: second[0] };
}

/**
 * Parses a request line given as a string (without its line end). Characters
 * outside ASCII never form digits, so '１, ２' is INVALID-PORT.
 */
export function parseRequest(line: string): IdentQuery | undefined {
  const codes = new Array<number>(line.length);
  for (let i = 0; i < line.length; i++) codes[i] = line.charCodeAt(i);
  return parseRequestOctets(codes);
}

/** Formats a query as a request line with CRLF, as clients send it. */
export function formatRequest(query: IdentQuery): string {
  return `${query.serverPort}, ${query.clientPort}\r\n`;
}

/** True when `port` is an integer in 1..65535. */
export function isPort(port: unknown): port is number {
  return Number.isInteger(port) && (port as number) >= 1 && (port as number) <= 65535;
}
