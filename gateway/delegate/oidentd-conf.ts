/**
 * oidentd user files as oidentd 2.5 parses them (global or to/from/fport/lport entries, one capability each, the last
 * matching entry answering); host and service names are refused rather than resolved. docs/apps.md has the table.
 *
 * @example
 * const file = parseUserFile('global { reply "alice" }\n');
 * matchUserFile(file, { localPort: 40000, remotePort: 6667, localAddress: '192.0.2.1', remoteAddress: '198.51.100.7' })
 * // { capability: { kind: 'reply', replies: ['alice'] }, line: 1, ... }
 *
 */
import { isIP } from 'node:net';
import { IdentgateError } from '../../protocol/errors.js';

/** oidentd keeps at most this many replies of one `reply` (MAX_RANDOM_REPLIES). */
export const MAX_REPLIES = 20;

export type UserFileCapability =
  | { readonly kind: 'reply'; readonly replies: readonly string[] }
  | { readonly kind: 'hide' | 'random' | 'numeric' | 'random_numeric' }
  | { readonly kind: 'forward'; readonly host: string; readonly port: number };

export interface UserFileEntry {
  /** Inclusive port ranges; absent: any port. lport is the port on this host, fport the remote one. */
  readonly localPorts?: readonly [number, number];
  readonly remotePorts?: readonly [number, number];
  /** Canonical address literals (`from` is this host's end, `to` the remote one). */
  readonly localAddress?: string;
  readonly remoteAddress?: string;
  readonly capability: UserFileCapability;
  /** Line of the entry's first word, for messages. */
  readonly line: number;
}

export interface UserFile {
  readonly entries: readonly UserFileEntry[];
}

/** The queried connection, as the user file matches it. */
export interface UserFileQuery {
  readonly localPort: number;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly remoteAddress: string;
}

/** A user file oidentd would refuse; the message names the line. */
export class UserFileSyntaxError extends IdentgateError {
  readonly code = 'ERR_USER_FILE_SYNTAX';
  override readonly userError = true;
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`line ${line}: ${message}`);
  }
}

type Token =
  | { readonly type: '{' | '}'; readonly line: number }
  | { readonly type: 'keyword'; readonly value: Keyword; readonly line: number }
  | { readonly type: 'string'; readonly value: string; readonly line: number };

const KEYWORDS = [
  'to',
  'from',
  'user',
  'default',
  'global',
  'fport',
  'lport',
  'allow',
  'deny',
  'force',
  'hide',
  'reply',
  'random',
  'numeric',
  'random_numeric',
  'spoof',
  'spoof_all',
  'spoof_privport',
  'forward',
] as const;
type Keyword = (typeof KEYWORDS)[number];
const KEYWORD_SET: ReadonlySet<string> = new Set(KEYWORDS);

const ESCAPES: Readonly<Record<string, string>> = {
  n: '\n',
  t: '\t',
  r: '\r',
  f: '\f',
  b: '\b',
  v: '\v',
  a: '\x07',
};

/** Splits a file into tokens as oidentd's flex scanner does. */
function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let line = 1;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i]!;
    if (c === '\n') {
      line++;
      i++;
    } else if (c === ' ' || c === '\t' || c === '\r') {
      i++;
    } else if (c === '{' || c === '}') {
      tokens.push({ type: c, line });
      i++;
    } else if (c === '#') {
      while (i < n && text[i] !== '\n') i++;
    } else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      const stop = end === -1 ? n : end + 2;
      for (let j = i; j < stop; j++) if (text[j] === '\n') line++;
      i = stop;
    } else if (c === '"') {
      const start = line;
      let value = '';
      i++;
      for (;;) {
        if (i >= n) throw new UserFileSyntaxError(start, 'unterminated string');
        const d = text[i]!;
        if (d === '"') {
          i++;
          break;
        }
        if (d === '\n') throw new UserFileSyntaxError(line, 'unterminated string (a line ends inside it)');
        if (d !== '\\') {
          value += d;
          i++;
          continue;
        }
        const e = text[i + 1];
        if (e === undefined) throw new UserFileSyntaxError(line, 'unterminated string');
        const octal = /^[0-7]{1,3}/.exec(text.slice(i + 1, i + 4));
        const hex = /^[xX]([0-9A-Fa-f]{1,2})/.exec(text.slice(i + 1, i + 4));
        if (octal) {
          const code = parseInt(octal[0], 8);
          if (code > 0xff) throw new UserFileSyntaxError(line, `bad escape sequence \\${octal[0]}`);
          value += String.fromCharCode(code);
          i += 1 + octal[0].length;
        } else if (hex) {
          value += String.fromCharCode(parseInt(hex[1]!, 16));
          i += 1 + hex[0].length;
        } else if (e === '8' || e === '9') {
          throw new UserFileSyntaxError(line, `bad escape sequence \\${e}`);
        } else {
          if (e === '\n') line++;
          value += ESCAPES[e] ?? e;
          i += 2;
        }
      }
      tokens.push({ type: 'string', value, line: start });
    } else {
      // A bare word: up to white space or a brace; it may not start with '/' followed by '*' (a comment).
      let j = i + 1;
      while (j < n && !' \t\r\n{}'.includes(text[j]!)) j++;
      if (c === '/' && j === i + 1) throw new UserFileSyntaxError(line, 'unexpected "/"');
      const word = text.slice(i, j);
      const lower = word.toLowerCase();
      tokens.push(
        KEYWORD_SET.has(lower)
          ? { type: 'keyword', value: lower as Keyword, line }
          : { type: 'string', value: word, line },
      );
      i = j;
    }
  }
  return tokens;
}

function canonicalIpv6(text: string): string | undefined {
  let head = text;
  let tail: number[] = [];
  const v4 = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    if (isIP(v4[2]!) !== 4) return undefined;
    const parts = v4[2]!.split('.').map(Number);
    tail = [(parts[0]! << 8) | parts[1]!, (parts[2]! << 8) | parts[3]!];
    head = v4[1]!.endsWith('::') ? v4[1]! : v4[1]!.slice(0, -1);
  }
  const halves = head.split('::');
  if (halves.length > 2) return undefined;
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((group) => parseInt(group, 16)));
  const left = parse(halves[0]!);
  const right = halves.length === 2 ? parse(halves[1]!) : [];
  const missing = 8 - left.length - right.length - tail.length;
  if (missing < 0 || (halves.length === 1 && missing !== 0)) return undefined;
  const groups = [...left, ...new Array<number>(halves.length === 2 ? missing : 0).fill(0), ...right, ...tail];
  if (groups.length !== 8 || groups.some((group) => !(group >= 0 && group <= 0xffff))) return undefined;
  // An IPv4-mapped address is the IPv4 address it carries, as the kernel reports dual-stack peers.
  if (groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff)
    return `${groups[6]! >> 8}.${groups[6]! & 255}.${groups[7]! >> 8}.${groups[7]! & 255}`;
  return groups.map((group) => group.toString(16)).join(':');
}

/**
 * The canonical text of an IP address literal (IPv4-mapped IPv6 as IPv4, IPv6 fully expanded,
 * without a zone id), or undefined when `text` is not one.
 *
 * @example
 * canonicalAddress('::FFFF:192.0.2.1') // '192.0.2.1'
 */
export function canonicalAddress(text: string): string | undefined {
  const bare = text.replace(/^\[(.*)\]$/, '$1').replace(/%.*$/, '');
  const family = isIP(bare);
  if (family === 4) return bare;
  if (family === 6) return canonicalIpv6(bare.toLowerCase());
  return undefined;
}

function port(text: string, line: number, what: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535)
    throw new UserFileSyntaxError(
      line,
      `bad ${what} ${JSON.stringify(text)} (a number 0..65535; service names are not looked up)`,
    );
  return Number(text);
}

/** oidentd's extract_port_range: `N`, `A:B`, `:B` (from 1), `A:` (to 65535). */
function portRange(text: string, line: number): [number, number] {
  const colon = text.indexOf(':');
  if (colon === -1) {
    const single = port(text, line, 'port');
    return [single, single];
  }
  const low = text.slice(0, colon);
  const high = text.slice(colon + 1);
  return [low === '' ? 1 : port(low, line, 'port'), high === '' ? 65535 : port(high, line, 'port')];
}

function address(text: string, line: number): string {
  const canonical = canonicalAddress(text);
  if (canonical === undefined)
    throw new UserFileSyntaxError(
      line,
      `bad address ${JSON.stringify(text)} (an IP address; host names are not resolved)`,
    );
  return canonical;
}

/**
 * Parses a user file. Throws UserFileSyntaxError (with the line) for anything oidentd would refuse in
 * a user file, and for the few things identgate does not do (see the module comment).
 *
 * @example
 * parseUserFile('lport 40000 { reply "bob" } # stanza created by Quassel\n').entries[0].localPorts // [40000, 40000]
 */
export function parseUserFile(text: string): UserFile {
  const tokens = tokenize(text);
  const entries: UserFileEntry[] = [];
  let i = 0;
  const next = (): Token | undefined => tokens[i++];
  const lastLine = () => tokens[tokens.length - 1]?.line ?? 1;
  const expectString = (after: string, line: number): string => {
    const token = next();
    if (token?.type !== 'string') throw new UserFileSyntaxError(token?.line ?? line, `${after} needs a value`);
    return token.value;
  };

  while (i < tokens.length) {
    const first = tokens[i]!;
    const entryLine = first.line;
    let localPorts: [number, number] | undefined;
    let remotePorts: [number, number] | undefined;
    let localAddress: string | undefined;
    let remoteAddress: string | undefined;
    if (first.type === 'keyword' && first.value === 'global') {
      i++;
    } else {
      let specifications = 0;
      for (;;) {
        const token = tokens[i];
        if (token?.type !== 'keyword' || !['to', 'from', 'fport', 'lport'].includes(token.value)) break;
        i++;
        const value = expectString(token.value, token.line);
        const once = (present: unknown) => {
          if (present !== undefined)
            throw new UserFileSyntaxError(token.line, `'${token.value}' can only be given once per entry`);
        };
        if (token.value === 'to') {
          once(remoteAddress);
          remoteAddress = address(value, token.line);
        } else if (token.value === 'from') {
          once(localAddress);
          localAddress = address(value, token.line);
        } else if (token.value === 'fport') {
          once(remotePorts);
          remotePorts = portRange(value, token.line);
        } else {
          once(localPorts);
          localPorts = portRange(value, token.line);
        }
        specifications++;
      }
      if (specifications === 0) {
        const what =
          first.type === 'keyword'
            ? `'${first.value}'`
            : first.type === 'string'
              ? JSON.stringify(first.value)
              : `'${first.type}'`;
        const hint =
          first.type === 'keyword' && (first.value === 'user' || first.value === 'default')
            ? ` ('${first.value}' blocks belong in the system-wide /etc/oidentd.conf, not in a user file)`
            : '';
        throw new UserFileSyntaxError(first.line, `expected global, to, from, fport or lport, got ${what}${hint}`);
      }
    }
    const open = next();
    if (open?.type !== '{') throw new UserFileSyntaxError(open?.line ?? lastLine(), "expected '{'");
    const capabilityToken = next();
    let capability: UserFileCapability;
    if (capabilityToken?.type !== 'keyword')
      throw new UserFileSyntaxError(
        capabilityToken?.line ?? lastLine(),
        'expected reply, hide, random, numeric, random_numeric or forward',
      );
    const keyword = capabilityToken.value;
    if (keyword === 'reply') {
      const replies: string[] = [];
      while (tokens[i]?.type === 'string') {
        const value = (tokens[i++] as { value: string }).value;
        if (replies.length < MAX_REPLIES) replies.push(value);
      }
      if (replies.length === 0) throw new UserFileSyntaxError(capabilityToken.line, 'reply needs at least one user id');
      capability = { kind: 'reply', replies };
    } else if (keyword === 'hide' || keyword === 'random' || keyword === 'numeric' || keyword === 'random_numeric') {
      capability = { kind: keyword };
    } else if (keyword === 'forward') {
      const host = expectString('forward', capabilityToken.line);
      const portText = expectString('forward', capabilityToken.line);
      capability = {
        kind: 'forward',
        host: address(host, capabilityToken.line),
        port: port(portText, capabilityToken.line, 'forward port'),
      };
    } else if (keyword === 'spoof' || keyword === 'spoof_all' || keyword === 'spoof_privport') {
      throw new UserFileSyntaxError(capabilityToken.line, `'${keyword}' is granted by the system, not by a user file`);
    } else {
      throw new UserFileSyntaxError(
        capabilityToken.line,
        `expected reply, hide, random, numeric, random_numeric or forward, got '${keyword}'`,
      );
    }
    const close = next();
    if (close?.type !== '}')
      throw new UserFileSyntaxError(close?.line ?? lastLine(), "expected '}' (one capability per entry)");
    entries.push({
      ...(localPorts && { localPorts }),
      ...(remotePorts && { remotePorts }),
      ...(localAddress !== undefined && { localAddress }),
      ...(remoteAddress !== undefined && { remoteAddress }),
      capability,
      line: entryLine,
    });
  }
  return { entries };
}

/**
 * The entry that answers a query: the last one in the file whose conditions all hold (oidentd's
 * order), or undefined. Addresses must be canonical (canonicalAddress).
 */
export function matchUserFile(file: UserFile, query: UserFileQuery): UserFileEntry | undefined {
  for (let i = file.entries.length - 1; i >= 0; i--) {
    const entry = file.entries[i]!;
    if (entry.localPorts && (query.localPort < entry.localPorts[0] || query.localPort > entry.localPorts[1])) continue;
    if (entry.remotePorts && (query.remotePort < entry.remotePorts[0] || query.remotePort > entry.remotePorts[1]))
      continue;
    if (entry.localAddress !== undefined && entry.localAddress !== query.localAddress) continue;
    if (entry.remoteAddress !== undefined && entry.remoteAddress !== query.remoteAddress) continue;
    return entry;
  }
  return undefined;
}
