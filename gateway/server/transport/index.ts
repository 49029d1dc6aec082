/**
 * Which transport an IdentServer uses: `native` (the libuv addon), `node` (node:net) or `auto`, which takes
 * the native one when its addon is built and loads here, else node:net.
 *
 * @example
 * const transport = selectTransport('auto');   // transport.kind: 'native' | 'node'
 */
import { loadNativeTransport } from './native.js';
import { nodeTransport } from './node.js';
import type { Transport } from './types.js';

export type TransportChoice = 'auto' | 'native' | 'node';

export const TRANSPORT_CHOICES: readonly TransportChoice[] = ['auto', 'native', 'node'];

/** Why the native transport cannot be used here, or undefined when it can. */
export function nativeTransportProblem(): string | undefined {
  try {
    loadNativeTransport();
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

/** Throws IdentTransportError (ERR_IDENT_TRANSPORT) when 'native' is asked for and cannot load. */
export function selectTransport(choice: TransportChoice): Transport {
  if (choice === 'node') return nodeTransport;
  if (choice === 'native') return loadNativeTransport();
  try {
    return loadNativeTransport();
  } catch {
    return nodeTransport;
  }
}
