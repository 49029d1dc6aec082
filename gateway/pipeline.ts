/**
 * One query's path through the gateway: gather the facts about the queried
 * connection (its owner; each further source is one FactSource), ask the policy, write the reply.
 * Answered before the handler returns whenever every step has its answer at hand.
 */
import type { IdentAnswer, LookupAnswer, LookupRequest } from '../protocol/index.js';
import { WIRE_VERSION } from '../protocol/index.js';
import type { Logger } from './daemon/log.js';
import type { GatewayMetrics } from './daemon/metrics.js';
import type { Owner, OwnerLookup, OwnerQuery } from './owner/index.js';
import type { Resolver } from './resolver/resolver.js';
import type { IdentHandler } from './server/connection.js';
import type { IdentTransaction } from './server/transaction.js';

/** The facts a request carries beyond the query and its ident connection. */
export type ConnectionFacts = Pick<LookupRequest, 'owner'> &
  Partial<Omit<LookupRequest, 'v' | 'id' | 'gateway' | 'query' | 'connection' | 'owner'>>;

/**
 * A source of facts about the queried connection, asked after the owner lookup in the order given.
 * `gatherNow` answers at once when it can (undefined: ask `gather`); neither may throw or outlast the deadline.
 */
export interface FactSource {
  readonly name: string;
  gatherNow?(query: OwnerQuery, facts: ConnectionFacts): Partial<ConnectionFacts> | undefined;
  gather(query: OwnerQuery, facts: ConnectionFacts): Promise<Partial<ConnectionFacts>>;
}

export interface PipelineOptions {
  gatewayName: string;
  owners: OwnerLookup;
  resolver: Resolver;
  sources?: readonly FactSource[];
  metrics?: GatewayMetrics;
  log: Logger;
  /** Unique per gateway start; request ids are `${bootId}-${sequence}`. */
  bootId: string;
}

export function answerLabel(answer: IdentAnswer): string {
  return answer.type === 'USERID' ? 'USERID' : answer.error;
}

/**
 * @example
 * await server.start(createQueryPipeline({ gatewayName: 'web1', owners, resolver, log, bootId: 'a1b2c3d4' }));
 */
export function createQueryPipeline({
  gatewayName,
  owners,
  resolver,
  sources = [],
  metrics,
  log,
  bootId,
}: PipelineOptions): IdentHandler {
  // Per-query log lines are built only when someone reads them.
  const debug = log.isLevelEnabled('debug');
  let sequence = 0;

  const reply = (tx: IdentTransaction, request: LookupRequest, { answer, rule }: LookupAnswer): void => {
    tx.reply(answer);
    metrics?.countAnswer(answerLabel(answer));
    if (debug)
      log.debug(
        { id: request.id, rule, answer, query: request.query, remoteAddress: tx.remoteAddress, owner: request.owner },
        'query',
      );
  };

  const decide = (tx: IdentTransaction, facts: ConnectionFacts): void | Promise<void> => {
    const request: LookupRequest = {
      v: WIRE_VERSION,
      id: `${bootId}-${++sequence}`,
      gateway: gatewayName,
      query: tx.req,
      connection: {
        localAddress: tx.localAddress,
        localPort: tx.localPort,
        remoteAddress: tx.remoteAddress,
        remotePort: tx.remotePort,
      },
      ...facts,
    };
    const now = resolver.resolveNow?.(request);
    if (now !== undefined) return reply(tx, request, now);
    return resolver.resolve(request).then((answer) => reply(tx, request, answer));
  };

  const gatherFrom = (
    index: number,
    tx: IdentTransaction,
    query: OwnerQuery,
    facts: ConnectionFacts,
  ): void | Promise<void> => {
    for (let i = index; i < sources.length; i++) {
      const source = sources[i]!;
      const now = source.gatherNow?.(query, facts);
      if (now !== undefined) {
        Object.assign(facts, now);
        continue;
      }
      return source.gather(query, facts).then((found) => gatherFrom(i + 1, tx, query, Object.assign(facts, found)));
    }
    return decide(tx, facts);
  };

  const withOwner = (
    tx: IdentTransaction,
    query: OwnerQuery,
    owner: Owner | null,
    started: number,
  ): void | Promise<void> => {
    if (metrics) metrics.observeOwnerLookup(owner !== null, (performance.now() - started) / 1000);
    return gatherFrom(0, tx, query, { owner });
  };

  return (tx) => {
    const started = metrics ? performance.now() : 0;
    const query: OwnerQuery = {
      localAddress: tx.localAddress,
      localPort: tx.req.serverPort,
      remoteAddress: tx.remoteAddress,
      remotePort: tx.req.clientPort,
    };
    const owner = owners.lookupNow(query);
    if (owner !== undefined) return withOwner(tx, query, owner, started);
    return owners.lookup(query).then((found) => withOwner(tx, query, found, started));
  };
}
