/**
 * The forward delegate: asks another identd (an app's own, or an inner host's) about the same connection within what
 * is left of the deadline, only at addresses the gateway allows (loopback, its own, --forward-allow).
 *
 * @example
 * const outcome = await forwardQuery({ host: '127.0.0.1', port: 9001, query: { serverPort: 40000, clientPort: 6667 } }, 800);
 * if (outcome.userId !== undefined) accept(outcome.userId);
 *
 */
import { BlockList, isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { IdentClient, IdentClientError } from '../client/client.js';
import type { IdentQuery } from '../../protocol/request.js';
import { canonicalAddress } from './oidentd-conf.js';

export interface ForwardTarget {
  readonly host: string;
  readonly port: number;
  readonly query: IdentQuery;
}

export type ForwardOutcome =
  | { readonly userId: string; readonly reason?: undefined }
  /** Why no user id came back: 'timeout', 'refused', 'closed', 'garbage', 'error NO-USER', 'not allowed', ... */
  | { readonly userId?: undefined; readonly reason: string };

/** The longest reply line accepted from a forwarded identd (RFC 1413 §4: 1000 characters suffice). */
const MAX_REPLY_OCTETS = 1000;

/**
 * Asks `target` within `timeoutMs`; never rejects.
 *
 * @example
 * await forwardQuery({ host: '::1', port: 1113, query: { serverPort: 6193, clientPort: 23 } }, 500) // { userId: 'alice' }
 */
export async function forwardQuery(target: ForwardTarget, timeoutMs: number): Promise<ForwardOutcome> {
  if (timeoutMs <= 0) return { reason: 'timeout (no time left before the deadline)' };
  const client = new IdentClient({
    hostname: target.host,
    port: target.port,
    timeout: Math.max(1, Math.floor(timeoutMs)),
    maxLineOctets: MAX_REPLY_OCTETS,
  });
  try {
    const response = await client.ident(target.query.serverPort, target.query.clientPort);
    if (!response.isSuccess) return { reason: `error ${response.errorType.slice(0, 64)}` };
    return { userId: response.userId };
  } catch (error) {
    if (error instanceof IdentClientError) {
      const reason = {
        ERR_IDENT_TIMEOUT: 'timeout',
        ERR_IDENT_CONNECT: 'refused',
        ERR_IDENT_CLOSED: 'closed',
        ERR_IDENT_MALFORMED_REPLY: 'garbage',
      }[error.code as string];
      return { reason: `${reason ?? error.code}: ${error.message}` };
    }
    return { reason: `failed: ${(error as Error).message}` };
  } finally {
    await client.close();
  }
}

/**
 * Where the gateway may forward to: loopback, this host's own addresses, and what `--forward-allow`
 * adds (CIDRs). Addresses are compared in canonical form (an IPv4-mapped IPv6 address is its IPv4).
 *
 * @example
 * const allowed = forwardAllowList(['10.0.3.0/24']);
 * allowed('127.0.0.1') // true
 */
export function forwardAllowList(extra: readonly string[] = [], ownAddresses = true): (host: string) => boolean {
  const list = new BlockList();
  list.addSubnet('127.0.0.0', 8, 'ipv4');
  list.addAddress('::1', 'ipv6');
  if (ownAddresses) {
    for (const entries of Object.values(networkInterfaces())) {
      for (const entry of entries ?? []) {
        const address = canonicalAddress(entry.address);
        if (address !== undefined) list.addAddress(address, isIP(address) === 4 ? 'ipv4' : 'ipv6');
      }
    }
  }
  for (const cidr of extra) {
    const [network, bits] = parseForwardCidr(cidr);
    list.addSubnet(network, bits, isIP(network) === 4 ? 'ipv4' : 'ipv6');
  }
  return (host) => {
    const address = canonicalAddress(host);
    return address !== undefined && list.check(address, isIP(address) === 4 ? 'ipv4' : 'ipv6');
  };
}

/** Parses a --forward-allow CIDR (`10.0.3.0/24`, `fd00::/8`, or a single address); throws a one-line Error. */
export function parseForwardCidr(text: string): [string, number] {
  const slash = text.indexOf('/');
  const network = canonicalAddress(slash === -1 ? text : text.slice(0, slash));
  const max = network !== undefined && isIP(network) === 4 ? 32 : 128;
  const bits = slash === -1 ? max : Number(text.slice(slash + 1));
  if (
    network === undefined ||
    !Number.isInteger(bits) ||
    bits < 0 ||
    bits > max ||
    /[^0-9]/.test(text.slice(slash + 1) || '0')
  )
    throw new Error(`not an address or CIDR: ${JSON.stringify(text)} (e.g. 10.0.3.0/24 or fd00::/8)`);
  return [network, bits];
}
