/**
 * The lookup routes for a caller in the same process (gateway/resolver/embedded.ts): no Request,
 * no JSON text, no signature; the requests are the gateway's own typed values, trusted as such.
 */
import type { LookupAnswer, LookupRequest } from '../protocol/wire.js';
import { checkBatchSize, type Service } from './service.js';

export interface InProcessLookups {
  /**
   * Answers 1 to MAX_BATCH requests in order, from one policy snapshot, as POST ROUTES.batch
   * does, without running them through LookupRequestSchema again (that is the network's parser).
   * Rejects with RequestRejected (400 invalid_request for none or too many, 503 without a policy).
   *
   * @example
   * const [answer] = await app.inProcess!.lookup([lookupRequest]);
   */
  lookup(requests: readonly LookupRequest[]): Promise<LookupAnswer[]>;
  /**
   * The same answers synchronously when the store holds its policy without waiting
   * (PolicyStore.peek), else undefined: the caller then uses lookup(). Throws what lookup() rejects with.
   *
   * @example
   * const answers = app.inProcess!.lookupNow([lookupRequest]) ?? (await app.inProcess!.lookup([lookupRequest]));
   */
  lookupNow?(requests: readonly LookupRequest[]): LookupAnswer[] | undefined;
}

export function createInProcessLookups(service: Service): InProcessLookups {
  return {
    lookup: async (requests) => {
      const snapshot = await service.current();
      await service.assignmentsReady(snapshot);
      return service.answerAll(snapshot, checkBatchSize(requests));
    },
    lookupNow: (requests) => {
      const snapshot = service.store.peek?.();
      return snapshot === undefined ? undefined : service.answerAll(snapshot, checkBatchSize(requests));
    },
  };
}
