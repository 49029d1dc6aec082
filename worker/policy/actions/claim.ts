/**
 * `{ "claim": { "ident"?, "user"? }, "ifUnclaimed"?, "ifRefused"? }`: for a connection an app claimed
 * (docs/claims.md), the ident or the app's user the rule accepts, else ifRefused; unclaimed: ifUnclaimed.
 */
import { z } from 'zod';
import { compileConstraints, identViolation } from '../../../protocol/constraints.js';
import type { ErrorToken } from '../../../protocol/tokens.js';
import { errorToken } from '../zod.js';
import { constraintsOf, workerAcceptSchema, type AcceptSpec } from './accept.js';
import { dynamicUserId, errorAnswer, type ActionDefinition } from './action.js';

export interface ClaimAction {
  claim: { ident?: Omit<AcceptSpec, 'localNames'>; user?: Omit<AcceptSpec, 'localNames'> | false };
  ifUnclaimed?: ErrorToken;
  ifRefused?: ErrorToken;
}

export const claim: ActionDefinition<ClaimAction> = {
  key: 'claim',
  schema: z.strictObject({
    claim: z.strictObject({
      ident: workerAcceptSchema.optional(),
      user: z.union([workerAcceptSchema, z.literal(false)], 'must be an accept object or false').optional(),
    }),
    ifUnclaimed: errorToken.optional(),
    ifRefused: errorToken.optional(),
  }) as z.ZodType<ClaimAction>,
  compile(action, { opsys = 'OTHER', charset }) {
    const ifUnclaimed = errorAnswer(action.ifUnclaimed ?? 'NO-USER');
    const ifRefused = errorAnswer(action.ifRefused ?? 'HIDDEN-USER');
    const ident = action.claim.ident === undefined ? null : compileConstraints(constraintsOf(action.claim.ident));
    const user = action.claim.user === false ? null : compileConstraints(constraintsOf(action.claim.user));
    return {
      constant: null,
      answer: (request) => {
        const claimed = request.claim;
        if (claimed === undefined || claimed === null) return ifUnclaimed;
        if (ident !== null && claimed.ident !== undefined && identViolation(ident, claimed.ident) === undefined)
          return dynamicUserId(opsys, charset, claimed.ident);
        if (user !== null && identViolation(user, claimed.user) === undefined)
          return dynamicUserId(opsys, charset, claimed.user);
        return ifRefused;
      },
    };
  },
};
