/**
 * Claims as a fact about the queried connection (a FactSource): the request carries the live claim its owner
 * made for the connection's exact four ends, else `claim: null`; a pending hold makes the query wait briefly.
 *
 * @example
 * createQueryPipeline({ ..., sources: [claimsSource(registry, { waitMs: 500 })] });
 */
import type { ConnectionFacts, FactSource } from '../pipeline.js';
import type { OwnerQuery } from '../owner/address.js';
import type { ClaimRegistry } from './registry.js';

export interface ClaimsSourceOptions {
  /** Longest a held query waits for its claim (--claim-wait). */
  waitMs: number;
}

const UNCLAIMED: Partial<ConnectionFacts> = Object.freeze({ claim: null });

export function claimsSource(registry: ClaimRegistry, { waitMs }: ClaimsSourceOptions): FactSource {
  return {
    name: 'claims',
    gatherNow(query: OwnerQuery, facts: ConnectionFacts) {
      const owner = facts.owner;
      // An unknown owner cannot have claimed anything: a claim is only ever the owner's own.
      if (owner === null) return UNCLAIMED;
      const found = registry.claimFor(query, owner.uid);
      if (found === undefined) return undefined;
      return found === null ? UNCLAIMED : found.facts;
    },
    async gather(query: OwnerQuery, facts: ConnectionFacts) {
      if (facts.owner === null) return UNCLAIMED;
      const found = await registry.waitFor(query, facts.owner.uid, waitMs);
      return found === null ? UNCLAIMED : found.facts;
    },
  };
}
