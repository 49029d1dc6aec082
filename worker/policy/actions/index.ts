/**
 * The list of policy actions. A new action is one file here (an ActionDefinition) and one entry
 * in ACTIONS; its schema, parse-time checks and compile step all come from that file (docs/policy.md).
 */
import { replyRuleViolation } from '../../../protocol/reply.js';
import { isToken } from '../../../protocol/tokens.js';
import { oneKeyOf, type Context } from '../zod.js';
import type { PolicyOutcome } from '../schema.js';
import type { ActionDefinition, ActionOf, Answerer } from './action.js';
import { claim } from './claim.js';
import { assigned } from './assigned.js';
import { error } from './error.js';
import { forward } from './forward.js';
import { label } from './label.js';
import { pseudonym } from './pseudonym.js';
import { random } from './random.js';
import { reveal } from './reveal.js';
import { userFile } from './user-file.js';
import { userId } from './user-id.js';

/** In the order the error for a missing action lists them. */
export const ACTIONS = [reveal, userId, random, pseudonym, label, error, claim, forward, userFile, assigned] as const;

/** An action as written in a rule: exactly one of the ACTIONS' keys. */
export type PolicyAction = ActionOf<(typeof ACTIONS)[number]>;

export type { Answerer } from './action.js';

/** The definition whose key the (possibly unparsed) action carries. */
export function definitionOf(action: unknown): ActionDefinition<object> | undefined {
  if (action === null || typeof action !== 'object') return undefined;
  return (ACTIONS as readonly ActionDefinition<object>[]).find((definition) => definition.key in action);
}

export const ActionSchema = oneKeyOf<PolicyAction>(
  'an action',
  Object.fromEntries(ACTIONS.map((definition) => [definition.key, definition.schema])),
);

/** Checks what only the whole outcome can tell: opsys/charset fit the action, fixed ids are writable. */
export function checkOutcome(outcome: Partial<PolicyOutcome>, ctx: Context): void {
  const definition = definitionOf(outcome.action);
  if (!definition) return;
  if (definition.answersError) {
    for (const field of ['opsys', 'charset'] as const) {
      if (outcome[field] !== undefined)
        ctx.addIssue({ code: 'custom', message: 'an error answer has no opsys or charset; remove it', path: [field] });
    }
    return;
  }
  // A bad opsys or charset is reported on its own field; checking ids against it would only repeat that.
  if (outcome.opsys !== undefined && (typeof outcome.opsys !== 'string' || !isToken(outcome.opsys))) return;
  if (outcome.charset !== undefined && (typeof outcome.charset !== 'string' || !isToken(outcome.charset))) return;
  const opsys = outcome.opsys ?? 'OTHER';
  const checkIds = (found: ActionDefinition<object>, action: unknown, prefix: PropertyKey[]) => {
    for (const { userId, path } of found.fixedUserIds?.(action as Record<string, unknown>) ?? []) {
      if (typeof userId !== 'string' || userId.length === 0) continue; // reported by the action schema
      const violation = replyRuleViolation({ type: 'USERID', opsys, charset: outcome.charset, userId });
      if (violation) ctx.addIssue({ code: 'custom', message: violation, path: ['action', ...prefix, ...path] });
    }
  };
  checkIds(definition, outcome.action, []);
  for (const { action, path } of definition.nested?.(outcome.action as unknown as Record<string, unknown>) ?? []) {
    const inner = definitionOf(action);
    if (!inner) continue; // reported by the action schema
    if (inner.delegates) {
      const message = `a fallback cannot itself be "${inner.key}" (the gateway runs one delegate per query)`;
      ctx.addIssue({ code: 'custom', message, path: ['action', ...path] });
    } else checkIds(inner, action, path);
  }
}

/**
 * What a (possibly unparsed) action needs the policy key for, looking into nested fallbacks too;
 * undefined when nothing.
 */
export function keyNeedOf(action: unknown): string | undefined {
  const definition = definitionOf(action);
  if (!definition) return undefined;
  if (definition.needsKey !== undefined) return definition.needsKey;
  for (const nested of definition.nested?.(action as Record<string, unknown>) ?? []) {
    const need = keyNeedOf(nested.action);
    if (need !== undefined) return need;
  }
  return undefined;
}

/**
 * Compiles one outcome (a rule's or the default's action with its opsys and charset). `mac` is the
 * policy key's HMAC-SHA256, required by actions with needsKey.
 *
 * @example
 * compileAction({ action: { error: 'HIDDEN-USER' } }, undefined).constant // { type: 'ERROR', error: 'HIDDEN-USER' }
 */
export function compileAction(
  outcome: PolicyOutcome,
  mac: ((message: Uint8Array) => Uint8Array) | undefined,
): Answerer {
  const definition = definitionOf(outcome.action);
  if (!definition) throw new TypeError('unparsed policy: an outcome without a known action');
  return definition.compile(outcome.action, {
    opsys: outcome.opsys,
    charset: outcome.charset,
    mac,
    compileNested: (action) => compileAction({ ...outcome, action: action as PolicyAction }, mac),
  });
}
