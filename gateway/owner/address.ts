/**
 * An owner query's four strings as the connection's two ends in bytes, in the one family the kernel files it under
 * (an IPv4-mapped IPv6 address becomes IPv4), and those ends as /proc/net/tcp{,6} prints them.
 *
 * @example
 * connectionEnds({ localAddress: '::ffff:127.0.0.1', localPort: 6667, remoteAddress: '127.0.0.1', remotePort: 40000 })
 * // -> { family: 4, local: Uint8Array [127,0,0,1], localPort: 6667, remote: Uint8Array [127,0,0,1], remotePort: 40000 }
 */
import { isIPv4, isIPv6 } from 'node:net';

/** What a caller asks: whose socket is localAddress:localPort <-> remoteAddress:remotePort? */
export interface OwnerQuery {
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
}

/** Both ends of one TCP connection, addresses as network-order bytes (4 or 16 of them; shared between lookups, never written). */
export interface ConnectionEnds {
  family: 4 | 6;
  local: Uint8Array;
  localPort: number;
  remote: Uint8Array;
  remotePort: number;
}

/**
 * The connection's ends in the kernel's family, or null when no TCP
 * connection can have them (a malformed address or port, or one IPv4 end and
 * one true IPv6 end).
 *
 * @example
 * connectionEnds({ localAddress: '::1', localPort: 22, remoteAddress: '::1', remotePort: 50000 })?.family // 6
 */
export function connectionEnds(query: OwnerQuery): ConnectionEnds | null {
  const local = cachedAddressBytes(query.localAddress);
  const remote = cachedAddressBytes(query.remoteAddress);
  if (local === null || remote === null || local.length !== remote.length) return null;
  if (!isPortNumber(query.localPort) || !isPortNumber(query.remotePort)) return null;
  return {
    family: local.length === 4 ? 4 : 6,
    local,
    localPort: query.localPort,
    remote,
    remotePort: query.remotePort,
  };
}

/** Bytes of recently seen addresses: a gateway sees its own few local ones and its queriers' again and again. */
const recentBytes = new Map<string, Uint8Array | null>();
const RECENT_ADDRESSES = 4096;

/** addressBytes, remembered; the arrays are shared, so callers must not write to them. */
function cachedAddressBytes(address: string): Uint8Array | null {
  let bytes = recentBytes.get(address);
  if (bytes === undefined) {
    bytes = addressBytes(address);
    if (recentBytes.size >= RECENT_ADDRESSES) recentBytes.clear();
    recentBytes.set(address, bytes);
  }
  return bytes;
}

/**
 * An address as bytes: 4 for IPv4 and IPv4-mapped IPv6, 16 for other IPv6;
 * null when it is not an IP address. A zone (fe80::1%eth0) is dropped.
 *
 * @example
 * addressBytes('::ffff:10.0.0.1') // Uint8Array [10, 0, 0, 1]
 */
export function addressBytes(address: string): Uint8Array | null {
  // Every query costs two of these: the usual forms go without regular expressions.
  const quad = dottedQuad(address, 0) ?? (address.startsWith('::ffff:') ? dottedQuad(address, 7) : null);
  if (quad !== null) return quad;
  if (isIPv4(address)) return Uint8Array.from(address.split('.'), Number);
  const percent = address.indexOf('%');
  const bare = percent === -1 ? address : address.slice(0, percent);
  if (!isIPv6(bare)) return null;
  const bytes = ipv6Bytes(bare);
  const mapped = bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  return mapped ? bytes.slice(12) : bytes;
}

/**
 * Bytes back to the text form inet_pton reads.
 *
 * @example
 * formatAddress(Uint8Array.of(127, 0, 0, 1)) // '127.0.0.1'
 */
export function formatAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  return groups.join(':');
}

/**
 * The IPv4-mapped IPv6 form of 4 IPv4 bytes: how /proc/net/tcp6 lists a
 * dual-stack socket's IPv4 ends.
 *
 * @example
 * mappedBytes(Uint8Array.of(127, 0, 0, 1)) // ::ffff:127.0.0.1 as 16 bytes
 */
export function mappedBytes(ipv4: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(16);
  bytes[10] = 0xff;
  bytes[11] = 0xff;
  bytes.set(ipv4, 12);
  return bytes;
}

/**
 * An address as /proc/net/tcp{,6} prints it: each 32-bit word of the
 * network-order address printed as a host-order number (%08X), so on a
 * little-endian machine 127.0.0.1 reads 0100007F.
 *
 * @example
 * procAddressHex(Uint8Array.of(127, 0, 0, 1), true) // '0100007F'
 */
export function procAddressHex(bytes: Uint8Array, littleEndian: boolean): string {
  let hex = '';
  for (let word = 0; word < bytes.length; word += 4) {
    for (let i = 0; i < 4; i++) {
      const b = bytes[word + (littleEndian ? 3 - i : i)] ?? 0;
      hex += b.toString(16).toUpperCase().padStart(2, '0');
    }
  }
  return hex;
}

/** The canonical dotted quad at text[from..] as 4 bytes (no leading zeros, as isIPv4 wants), or null. */
function dottedQuad(text: string, from: number): Uint8Array | null {
  const bytes = new Uint8Array(4);
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = from; i <= text.length; i++) {
    const code = i < text.length ? text.charCodeAt(i) : 46; // a '.' after the last group
    if (code === 46) {
      if (digits === 0 || part > 3) return null;
      bytes[part++] = value;
      value = 0;
      digits = 0;
    } else if (code >= 48 && code <= 57) {
      if (digits > 0 && value === 0) return null; // leading zero
      value = value * 10 + (code - 48);
      if (++digits > 3 || value > 255) return null;
    } else {
      return null;
    }
  }
  return part === 4 ? bytes : null;
}

function isPortNumber(port: number): boolean {
  return Number.isInteger(port) && port >= 0 && port <= 65535;
}

/** Expands a valid IPv6 text address (checked by isIPv6) to 16 bytes. */
function ipv6Bytes(address: string): Uint8Array {
  let text = address;
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    // Embedded dotted quad (::ffff:1.2.3.4): rewrite it as two hex groups.
    const [a = 0, b = 0, c = 0, d = 0] = text
      .slice(lastColon + 1)
      .split('.')
      .map(Number);
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => Number.parseInt(g, 16)));
  const [head = '', rest] = text.split('::');
  const front = parse(head);
  const back = rest === undefined ? [] : parse(rest);
  const groups = [...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back];
  const bytes = new Uint8Array(16);
  groups.forEach((group, i) => {
    bytes[i * 2] = group >> 8;
    bytes[i * 2 + 1] = group & 0xff;
  });
  return bytes;
}
