/**
 * IP addresses and CIDR blocks as integers, so a rule tests an address with a mask and a compare;
 * IPv4-mapped IPv6 is the IPv4 it carries; parsing is strict (docs/policy.md "CIDRs").
 */

/** parseAddress result for an IPv6 address (its words are in the out array). */
export const IPV6 = -2;
/** parseAddress result for text that is not an address. */
export const NOT_AN_ADDRESS = -1;

/** Parses a dotted quad; returns the address as an unsigned 32-bit number, or -1. */
export function parseIPv4(text: string, start = 0, end = text.length): number {
  let value = 0;
  let parts = 0;
  let i = start;
  while (parts < 4) {
    let octet = 0;
    let digits = 0;
    const first = i;
    while (i < end) {
      const c = text.charCodeAt(i);
      if (c < 0x30 || c > 0x39) break;
      octet = octet * 10 + (c - 0x30);
      digits++;
      i++;
    }
    if (digits === 0 || digits > 3 || octet > 255) return -1;
    if (digits > 1 && text.charCodeAt(first) === 0x30) return -1; // leading zero: octal in some parsers
    value = value * 256 + octet;
    parts++;
    if (parts < 4) {
      if (i >= end || text.charCodeAt(i) !== 0x2e) return -1;
      i++;
    }
  }
  return i === end ? value : -1;
}

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

/**
 * Parses IPv6 text (optionally with a `%zone`) into four 32-bit words.
 * Returns false when the text is not IPv6.
 */
export function parseIPv6(text: string, out: Int32Array): boolean {
  const zone = text.indexOf('%');
  const body = zone === -1 ? text : text.slice(0, zone);
  if (body.length < 2 || body.length > 45) return false;
  const halves = body.split('::');
  if (halves.length > 2) return false;
  const groups: number[] = [];
  const readHalf = (half: string, allowTail: boolean): number[] | undefined => {
    if (half === '') return [];
    const parts = half.split(':');
    const values: number[] = [];
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (allowTail && i === parts.length - 1 && part.includes('.')) {
        const v4 = parseIPv4(part);
        if (v4 < 0) return undefined;
        values.push(Math.floor(v4 / 0x10000), v4 & 0xffff);
      } else if (HEX_GROUP.test(part)) {
        values.push(parseInt(part, 16));
      } else {
        return undefined;
      }
    }
    return values;
  };
  if (halves.length === 2) {
    const head = readHalf(halves[0]!, false);
    const tail = readHalf(halves[1]!, true);
    if (!head || !tail || head.length + tail.length > 7) return false;
    groups.push(...head);
    for (let i = head.length + tail.length; i < 8; i++) groups.push(0);
    groups.push(...tail);
  } else {
    const all = readHalf(body, true);
    if (!all || all.length !== 8) return false;
    groups.push(...all);
  }
  for (let i = 0; i < 4; i++) out[i] = (groups[2 * i]! << 16) | groups[2 * i + 1]!;
  return true;
}

/** True when four IPv6 words are an IPv4-mapped address (::ffff:0:0/96). */
function isMapped(words: Int32Array): boolean {
  return words[0] === 0 && words[1] === 0 && words[2] === 0xffff;
}

/**
 * Parses a request's address. Returns the IPv4 address (unsigned, also for an
 * IPv4-mapped IPv6 address), IPV6 with the words in `out`, or NOT_AN_ADDRESS.
 */
export function parseAddress(text: string, out: Int32Array): number {
  if (text.indexOf(':') === -1) {
    const v4 = parseIPv4(text);
    return v4 < 0 ? NOT_AN_ADDRESS : v4;
  }
  if (!parseIPv6(text, out)) return NOT_AN_ADDRESS;
  return isMapped(out) ? out[3]! >>> 0 : IPV6;
}

/** A CIDR block: IPv4 as (network, mask) or IPv6 as four (network, mask) word pairs, all as signed int32. */
export type Cidr = { readonly v4: readonly [number, number] } | { readonly v6: readonly number[] };

function maskWord(prefix: number, wordIndex: number): number {
  const bits = Math.max(0, Math.min(32, prefix - 32 * wordIndex));
  return bits === 0 ? 0 : (~0 << (32 - bits)) | 0;
}

function formatV4(value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.');
}

function formatV6(words: ArrayLike<number>): string {
  const groups: string[] = [];
  for (let i = 0; i < 4; i++)
    groups.push(((words[i]! >>> 16) & 0xffff).toString(16), (words[i]! & 0xffff).toString(16));
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}

/**
 * Parses `address/prefix` (or a bare address, meaning a single host).
 * Returns the block, or a message starting "not a CIDR: <text>".
 *
 * @example
 * parseCidr('192.0.2.0/24')  // { v4: [0xc0000200 | 0, 0xffffff00 | 0] }
 * parseCidr('192.0.2.1/24')  // 'not a CIDR: 192.0.2.1/24 (host bits set; did you mean 192.0.2.0/24?)'
 */
export function parseCidr(text: string): Cidr | string {
  const bad = (why: string) => `not a CIDR: ${text} (${why})`;
  const slash = text.indexOf('/');
  const addressText = slash === -1 ? text : text.slice(0, slash);
  const prefixText = slash === -1 ? undefined : text.slice(slash + 1);
  if (prefixText !== undefined && !/^(0|[1-9][0-9]{0,2})$/.test(prefixText))
    return bad('prefix length must be a decimal number');
  if (addressText.includes('%')) return bad('zone ids are not allowed');
  if (!addressText.includes(':')) {
    const v4 = parseIPv4(addressText);
    if (v4 < 0) return bad('not an IPv4 or IPv6 address');
    const prefix = prefixText === undefined ? 32 : Number(prefixText);
    if (prefix > 32) return bad('IPv4 prefix length must be 0..32');
    return v4Block(v4, prefix, (network) => bad(`host bits set; did you mean ${formatV4(network)}/${prefix}?`));
  }
  const words = new Int32Array(4);
  if (!parseIPv6(addressText, words)) return bad('not an IPv4 or IPv6 address');
  const prefix = prefixText === undefined ? 128 : Number(prefixText);
  if (prefix > 128) return bad('IPv6 prefix length must be 0..128');
  if (isMapped(words) && prefix >= 96) {
    return v4Block(words[3]! >>> 0, prefix - 96, (network) =>
      bad(`host bits set; did you mean ::ffff:${formatV4(network)}/${prefix}?`),
    );
  }
  const block: number[] = [];
  let hostBits = false;
  for (let i = 0; i < 4; i++) {
    const mask = maskWord(prefix, i);
    if ((words[i]! & mask) !== words[i]) hostBits = true;
    block.push(words[i]! & mask, mask);
  }
  if (hostBits) return bad(`host bits set; did you mean ${formatV6(block.filter((_, i) => i % 2 === 0))}/${prefix}?`);
  return { v6: block };
}

function v4Block(address: number, prefix: number, hostBitsMessage: (network: number) => string): Cidr | string {
  const mask = maskWord(prefix, 0);
  const network = address & mask;
  if (network !== (address | 0)) return hostBitsMessage(network >>> 0);
  return { v4: [network, mask] };
}
