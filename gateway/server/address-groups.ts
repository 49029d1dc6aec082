/**
 * Per-address accounting for IdentServer: connections grouped per IPv4 address (an IPv4-mapped IPv6 address counts
 * as its IPv4 address) or per IPv6 prefix (/64 by default: a host is usually given a whole /64), in accept order.
 *
 * @example
 * const groups = new AddressGroups<Conn>(64);
 * const key = groups.keyOf('2001:db8:1:2::7');   // '2001:db8:1:2::/64'
 * groups.add(key, connection);
 * for (const c of groups.members(key)) { ... }  // longest held first
 * groups.remove(key, connection);
 */
import { isIPv4 } from 'node:net';

/** The IPv6 text as eight 16-bit numbers, or undefined when it is not IPv6 text. */
function ipv6Groups(address: string): number[] | undefined {
  const text = address.replace(/%.*$/, '');
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const parse = (part: string): number[] | undefined => {
    if (part === '') return [];
    const groups: number[] = [];
    const pieces = part.split(':');
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i]!;
      if (i === pieces.length - 1 && isIPv4(piece)) {
        const [a, b, c, d] = piece.split('.').map(Number) as [number, number, number, number];
        groups.push((a << 8) | b, (c << 8) | d);
      } else if (/^[0-9a-f]{1,4}$/i.test(piece)) groups.push(parseInt(piece, 16));
      else return undefined;
    }
    return groups;
  };
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  if (!head || !tail) return undefined;
  if (halves.length === 1) return head.length === 8 ? head : undefined;
  const missing = 8 - head.length - tail.length;
  return missing >= 1 ? [...head, ...new Array<number>(missing).fill(0), ...tail] : undefined;
}

/**
 * The group an address counts in: the IPv4 address itself, or the IPv6
 * address cut to `prefix6` bits, written as `PREFIX::/LEN` (the full address
 * for 128).
 */
export function addressGroupKey(address: string, prefix6: number): string {
  if (isIPv4(address)) return address;
  const groups = ipv6Groups(address);
  if (!groups) return address;
  // ::ffff:a.b.c.d is an IPv4 client on a dual-stack listener.
  if (groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff)
    return [groups[6]! >> 8, groups[6]! & 0xff, groups[7]! >> 8, groups[7]! & 0xff].join('.');
  const masked = groups.map((group, i) => {
    const bits = Math.min(16, Math.max(0, prefix6 - i * 16));
    return bits === 0 ? 0 : group & ((0xffff << (16 - bits)) & 0xffff);
  });
  const kept = masked.slice(0, Math.ceil(prefix6 / 16)).map((group) => group.toString(16));
  return `${kept.join(':')}${kept.length < 8 ? '::' : ''}/${prefix6}`;
}

export class AddressGroups<T> {
  readonly #prefix6: number;
  readonly #groups = new Map<string, Set<T>>();

  constructor(prefix6: number) {
    this.#prefix6 = prefix6;
  }

  keyOf(address: string): string {
    return addressGroupKey(address, this.#prefix6);
  }

  size(key: string): number {
    return this.#groups.get(key)?.size ?? 0;
  }

  add(key: string, member: T): void {
    let group = this.#groups.get(key);
    if (!group) this.#groups.set(key, (group = new Set()));
    group.add(member);
  }

  /** Removes `member`; one that is not there is ignored. */
  remove(key: string, member: T): void {
    const group = this.#groups.get(key);
    if (!group?.delete(member)) return;
    if (group.size === 0) this.#groups.delete(key);
  }

  /** The group's members, longest held first. */
  members(key: string): Iterable<T> {
    return this.#groups.get(key) ?? [];
  }
}
