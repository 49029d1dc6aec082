/**
 * Queries forwarded by a NAT router (`--accept-forwarded-from CIDR`, as oidentd -P): finds the one owned
 * connection with the two asked ports whatever its remote address, the router's own connections excepted.
 * What is trusted and what is not: docs/nat.md.
 *
 * @example
 * const forwarded = createForwardedSource({ from: parseCidrList(['10.77.0.1']) });
 * createQueryPipeline({ ..., sources: [forwarded, nat] });
 */
import { addressBytes, mappedBytes, type OwnerQuery } from '../owner/address.js';
import {
  sockDiagAddonPath,
  OwnerLookupError,
  OwnerLookupKernelError,
  OwnerLookupUnsupportedError,
  SockDiagAddonLookup,
  type Owner,
} from '../owner/index.js';
import type { ConnectionFacts, FactSource } from '../pipeline.js';
import { inAnyBlock, type AddressBlock } from './address-block.js';

export { inAnyBlock, parseAddressBlock, type AddressBlock } from './address-block.js';

export interface ForwardedSourceOptions {
  /** The routers whose queries are taken as forwarded. */
  from: readonly AddressBlock[];
  /** The sock_diag addon; by default the built one. */
  addonPath?: string;
  onError?: (error: OwnerLookupError) => void;
}

export interface ForwardedSource extends FactSource {
  /** Loads the addon; throws OwnerLookupError (ERR_OWNER_LOOKUP_UNSUPPORTED) when it cannot be used. */
  start(): Promise<void>;
  close(): Promise<void>;
}

/**
 * @example
 * const forwarded = createForwardedSource({ from: [parseAddressBlock('10.77.0.1') as AddressBlock] });
 * await forwarded.start();
 */
export function createForwardedSource(options: ForwardedSourceOptions): ForwardedSource {
  const diag = new SockDiagAddonLookup({ addonPath: options.addonPath ?? sockDiagAddonPath() });
  const onError = options.onError ?? (() => {});
  const blocks = options.from;

  /** The owner of the connection with the query's two ports (any addresses), or null; a promise while NSS names it. */
  const find = (query: OwnerQuery): Owner | null | Promise<Owner | null> => {
    const router = addressBytes(query.remoteAddress);
    if (router === null) return null;
    const v4 = router.length === 4 ? router : null;
    const v6 = router.length === 4 ? mappedBytes(router) : router;
    // The inner host's connection may be of either family, whatever the router's query came over.
    const found = [
      diag.findByPorts(4, query.localPort, query.remotePort, v4),
      diag.findByPorts(6, query.localPort, query.remotePort, v6),
    ];
    const decide = ([a, b]: (Owner | null)[]): Owner | null => {
      if (a && b) return a.uid === b.uid ? a : null; // two owners: the ports do not say which
      return a ?? b ?? null;
    };
    if (found.some((owner) => owner instanceof Promise)) return Promise.all(found).then(decide);
    return decide(found as (Owner | null)[]);
  };

  const accepted = (query: OwnerQuery, facts: ConnectionFacts): boolean =>
    facts.owner === null && inAnyBlock(query.remoteAddress, blocks);

  const guarded = (query: OwnerQuery): Owner | null | Promise<Owner | null> => {
    try {
      const owner = find(query);
      return owner instanceof Promise ? owner.catch((error: unknown) => failed(error)) : owner;
    } catch (error) {
      return failed(error);
    }
  };
  const failed = (error: unknown): null => {
    onError(error instanceof OwnerLookupError ? error : new OwnerLookupKernelError(String(error), { cause: error }));
    return null;
  };

  return {
    name: 'forwarded',
    async start() {
      try {
        diag.findByPorts(4, 1, 1, null);
      } catch (error) {
        throw new OwnerLookupUnsupportedError(
          `--accept-forwarded-from needs the sock_diag addon: ${(error as Error).message}; build it with "npm run build"`,
          { cause: error },
        );
      }
    },
    close: () => diag.close(),
    gatherNow(query, facts) {
      if (!accepted(query, facts)) return NO_FACTS;
      const owner = guarded(query);
      return owner instanceof Promise ? undefined : { owner };
    },
    async gather(query, facts) {
      if (!accepted(query, facts)) return NO_FACTS;
      return { owner: await guarded(query) };
    },
  };
}

const NO_FACTS: Partial<ConnectionFacts> = {};
