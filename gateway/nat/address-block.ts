/**
 * Address blocks as flags give them (`10.0.0.1`, `fd00::/64`): parsed once into network bytes and a prefix
 * length, matched against the addresses node:net reports (an IPv4-mapped IPv6 address is its IPv4).
 *
 * @example
 * inAnyBlock('10.0.0.7', [parseAddressBlock('10.0.0.0/24') as AddressBlock]) // true
 */
import { addressBytes } from '../owner/address.js';

/** An address block: its first `bits` bits are those of `network`. */
export interface AddressBlock {
  readonly text: string;
  readonly network: Uint8Array;
  readonly bits: number;
}

/**
 * "ADDRESS[/BITS]" as a block, or the reason it is not one.
 *
 * @example
 * parseAddressBlock('10.77.0.0/24') // { text: '10.77.0.0/24', network: Uint8Array [10, 77, 0, 0], bits: 24 }
 */
export function parseAddressBlock(text: string): AddressBlock | string {
  const slash = text.indexOf('/');
  const address = slash === -1 ? text : text.slice(0, slash);
  const network = addressBytes(address);
  if (network === null || address.includes('%')) return `${JSON.stringify(address)} is not an IP address`;
  const max = network.length * 8;
  const bitsText = slash === -1 ? String(max) : text.slice(slash + 1);
  const bits = Number(bitsText);
  if (!/^\d{1,3}$/.test(bitsText) || bits > max) return `prefix length must be 0..${max}`;
  if (!hostBitsZero(network, bits)) return 'host bits must be zero';
  return { text, network, bits };
}

function hostBitsZero(address: Uint8Array, bits: number): boolean {
  for (let i = 0; i < address.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    if ((address[i]! & (0xff >> keep)) !== 0) return false;
  }
  return true;
}

function inBlock(address: Uint8Array, block: AddressBlock, bits = block.bits): boolean {
  if (address.length !== block.network.length) return false;
  for (let i = 0; i < address.length; i++) {
    const take = Math.max(0, Math.min(8, bits - i * 8));
    const mask = (0xff00 >> take) & 0xff;
    if ((address[i]! & mask) !== (block.network[i]! & mask)) return false;
  }
  return true;
}

/** Whether `address` (text, as node:net reports it) lies in one of the blocks. */
export function inAnyBlock(address: string, blocks: readonly AddressBlock[]): boolean {
  const bytes = addressBytes(address);
  return bytes !== null && blocks.some((block) => inBlock(bytes, block));
}
