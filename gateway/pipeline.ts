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
import type { Resolver } from './resolver/types.js';
import type { IdentHandler } from './server/connection.js';
import type { IdentTransaction } from './server/transaction.js';
import { createDelegateRunner, type DelegateRunner } from './delegate/index.js';

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
  /** Runs delegated answers (forward, user file); default: one with the defaults, made on first use. */
  delegates?: DelegateRunner;
  /** How long a query may take from arrival to reply; a delegate gets what is left. Default 1000. */
  deadlineMs?: number;
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
  delegates,
  deadlineMs = 1_000,
}: PipelineOptions): IdentHandler {
  // Per-query log lines are built only when someone reads them.
  const debug = log.isLevelEnabled('debug');
  let sequence = 0;

  const reply = (
    tx: IdentTransaction,
    request: LookupRequest,
    { answer, rule }: LookupAnswer,
    delegated?: string,
  ): void => {
    tx.reply(answer);
    metrics?.countAnswer(answerLabel(answer));
    if (debug)
      log.debug(
        {
          id: request.id,
          rule,
          answer,
          query: request.query,
          remoteAddress: tx.remoteAddress,
          owner: request.owner,
          ...(delegated !== undefined && { delegated }),
        },
        'query',
      );
  };

  // A delegated answer is carried out here, on this host, before anything is written (docs/wire.md).
  const answerWith = (
    tx: IdentTransaction,
    request: LookupRequest,
    lookup: LookupAnswer,
    started: number,
  ): void | Promise<void> => {
    const delegate = lookup.delegate;
    if (delegate === undefined) return reply(tx, request, lookup);
    delegates ??= createDelegateRunner({ log });
    return delegates.run(delegate, request, lookup.answer, started + deadlineMs).then(({ answer, outcome }) => {
      metrics?.delegated.inc({ kind: delegate.kind, result: outcome.startsWith('fallback') ? 'fallback' : 'answered' });
      reply(tx, request, { ...lookup, answer }, outcome);
    });
  };

  const decide = (tx: IdentTransaction, facts: ConnectionFacts, started: number): void | Promise<void> => {
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
    if (now !== undefined) return answerWith(tx, request, now, started);
    return resolver.resolve(request).then((answer) => answerWith(tx, request, answer, started));
  };

  const gatherFrom = (
    index: number,
    tx: IdentTransaction,
    query: OwnerQuery,
    facts: ConnectionFacts,
    started: number,
  ): void | Promise<void> => {
    for (let i = index; i < sources.length; i++) {
      const source = sources[i]!;
      const now = source.gatherNow?.(query, facts);
      if (now !== undefined) {
        Object.assign(facts, now);
        continue;
      }
      return source
        .gather(query, facts)
        .then((found) => gatherFrom(i + 1, tx, query, Object.assign(facts, found), started));
    }
    return decide(tx, facts, started);
  };

  const withOwner = (
    tx: IdentTransaction,
    query: OwnerQuery,
    owner: Owner | null,
    started: number,
  ): void | Promise<void> => {
    if (metrics) metrics.observeOwnerLookup(owner !== null, (performance.now() - started) / 1000);
    return gatherFrom(0, tx, query, { owner }, started);
  };

  return (tx) => {
    // The arrival time: owner-lookup metrics and what a delegated answer has left of the deadline.
    const started = performance.now();
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
