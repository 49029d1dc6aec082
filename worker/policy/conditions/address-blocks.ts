/** CIDR lists compiled for the address conditions of conditions/ (as match.ts does for its built-ins). */
import { IPV6, NOT_AN_ADDRESS, parseAddress, parseCidr } from '../address.js';
import type { OneOrMany } from '../zod.js';

/** IPv4 blocks as (network, mask) pairs; IPv6 ones as four (network, mask) word pairs each. */
export interface AddressBlocks {
  readonly v4: Int32Array;
  readonly v6: Int32Array;
}

export function list<T>(value: OneOrMany<T>): T[] {
  return Array.isArray(value) ? value : [value];
}

export function compileBlocks(cidrs: readonly string[]): AddressBlocks {
  const v4: number[] = [];
  const v6: number[] = [];
  for (const text of cidrs) {
    const block = parseCidr(text);
    if (typeof block === 'string') throw new TypeError(`unparsed policy: ${block}`);
    if ('v4' in block) v4.push(...block.v4);
    else v6.push(...block.v6);
  }
  return { v4: Int32Array.from(v4), v6: Int32Array.from(v6) };
}

const words = new Int32Array(4);

/** Whether `address` (text; an IPv4-mapped IPv6 address counts as IPv4) lies in one of the blocks. */
export function inBlocks(blocks: AddressBlocks, address: string): boolean {
  const parsed = parseAddress(address, words);
  if (parsed === NOT_AN_ADDRESS) return false;
  if (parsed !== IPV6) {
    const v4 = blocks.v4;
    for (let i = 0; i < v4.length; i += 2) if ((parsed & v4[i + 1]!) === v4[i]) return true;
    return false;
  }
  const v6 = blocks.v6;
  for (let i = 0; i < v6.length; i += 8) {
    if (
      (words[0]! & v6[i + 1]!) === v6[i] &&
      (words[1]! & v6[i + 3]!) === v6[i + 2] &&
      (words[2]! & v6[i + 5]!) === v6[i + 4] &&
      (words[3]! & v6[i + 7]!) === v6[i + 6]
    )
      return true;
  }
  return false;
}
