/**
 * `{ "assigned": { "scope": "owner" | "claim", "otherwise": ACTION } }`: the ident the admin assigned
 * (docs/audit.md) to the connection's owner on this gateway, or to the claim's user; else `otherwise`.
 * A hash lookup in the worker's cache; opsys OTHER unless the rule says (docs/internals.md).
 */
import { z } from 'zod';
import { ActionSchema, type PolicyAction } from './index.js';
import { dynamicUserId, type ActionDefinition } from './action.js';

export interface AssignedAction {
  assigned: {
    /** Whose assignment: the owner's uid (default) or the claim's user. */
    scope?: 'owner' | 'claim';
    /** What answers when nothing is assigned (any action but a delegating one). */
    otherwise: PolicyAction;
  };
}

export const assigned: ActionDefinition<AssignedAction> = {
  key: 'assigned',
  schema: z.strictObject({
    assigned: z.strictObject({
      scope: z.enum(['owner', 'claim'], 'must be "owner" or "claim"').optional(),
      // Lazy: ActionSchema lists this action too.
      otherwise: z
        .lazy(() => ActionSchema)
        .refine((inner) => !('assigned' in (inner as object)), 'must be another action than "assigned"'),
    }),
  }) as unknown as z.ZodType<AssignedAction>,
  nested: (action) => {
    const inner = (action.assigned as { otherwise?: unknown } | undefined)?.otherwise;
    return inner === undefined ? [] : [{ action: inner, path: ['assigned', 'otherwise'] }];
  },
  compile(action, { opsys, charset, compileNested }) {
    const otherwise = compileNested(action.assigned.otherwise);
    const byClaim = action.assigned.scope === 'claim';
    const identOpsys = opsys ?? 'OTHER';
    return {
      constant: null,
      answer(request, random, assignments) {
        let ident: string | undefined;
        if (assignments !== undefined) {
          if (byClaim)
            ident = request.claim ? assignments.identFor(request.gateway, null, request.claim.user) : undefined;
          else ident = request.owner ? assignments.identFor(request.gateway, request.owner.uid, null) : undefined;
        }
        return ident === undefined
          ? otherwise.answer(request, random, assignments)
          : dynamicUserId(identOpsys, charset, ident);
      },
    };
  },
};
