/**
 * The policy document (docs/policy.md): its types, the zod schema that parses untrusted JSON into a
 * Policy naming every finding by path, and the built-in default. Everything is checked here, at parse time.
 */
import { z } from 'zod';
import { issuesOf } from '../../protocol/issues.js';
import { ActionSchema, checkOutcome, keyNeedOf, type PolicyAction } from './actions/index.js';
import { PolicyError } from './errors.js';
import { cidr, namePattern, oneOrMany, range, rfcToken, type OneOrMany } from './zod.js';
import type { ConditionDefinition, MatchOf } from './conditions/condition.js';
import { CONDITIONS } from './conditions/index.js';

export type { PolicyAction } from './actions/index.js';
export type { OneOrMany } from './zod.js';

export const POLICY_VERSION = 1;

export const MIN_KEY_CHARS = 16;

/** A port or uid, or an inclusive range written "lo-hi". */
export type RangeSpec = number | string;

/** Conditions of a rule; all given ones must hold, an empty match always holds. */
export type PolicyMatch = BuiltinMatch & MatchOf<typeof CONDITIONS>;

/** The conditions match.ts compiles and the rule index knows. */
export interface BuiltinMatch {
  /** Gateway name: exact or glob (`*`, `?`). */
  gateway?: OneOrMany<string>;
  /** CIDRs the ident server's own address (connection.localAddress) must be in. */
  serverAddress?: OneOrMany<string>;
  /** CIDRs the querier's address (connection.remoteAddress) must be in. */
  clientAddress?: OneOrMany<string>;
  serverPort?: OneOrMany<RangeSpec>;
  clientPort?: OneOrMany<RangeSpec>;
  /** Owner's user name: exact or glob. Never holds when the owner or its name is unknown. */
  ownerName?: OneOrMany<string>;
  /** Owner's uid or uid range. Never holds when the owner is unknown. */
  ownerUid?: OneOrMany<RangeSpec>;
  /** true: the gateway found the connection's owner; false: it did not. */
  ownerKnown?: boolean;
}

export interface PolicyOutcome {
  description?: string;
  action: PolicyAction;
  /** Overrides the opsys of USERID answers (default UNIX for an owner's name, OTHER otherwise). */
  opsys?: string;
  /** Charset of USERID answers; omitted means US-ASCII (a non-ASCII owner name gets UTF-8). */
  charset?: string;
}

export interface PolicyRule extends PolicyOutcome {
  /** Unique; reported as the deciding rule. "default" is reserved. */
  name: string;
  match?: PolicyMatch;
}

export interface Policy {
  version: 1;
  description?: string;
  /** Secret for pseudonym rules (at least 16 characters); required when any rule uses one. */
  key?: string;
  rules: PolicyRule[];
  default: PolicyOutcome;
}

const port = range(1, 65535, 'port');
const uid = range(0, 0xffffffff, 'uid');

export const MatchSchema = z.strictObject({
  gateway: oneOrMany(namePattern, 'gateway name').optional(),
  serverAddress: oneOrMany(cidr, 'CIDR').optional(),
  clientAddress: oneOrMany(cidr, 'CIDR').optional(),
  serverPort: oneOrMany(port, 'port').optional(),
  clientPort: oneOrMany(port, 'port').optional(),
  ownerName: oneOrMany(namePattern, 'user name').optional(),
  ownerUid: oneOrMany(uid, 'uid').optional(),
  ownerKnown: z.boolean().optional(),
  ...Object.fromEntries(
    CONDITIONS.map((condition: ConditionDefinition) => [condition.name, condition.schema.optional()]),
  ),
}) as unknown as z.ZodType<PolicyMatch>;

const outcomeFields = {
  description: z.string().max(1000).optional(),
  action: ActionSchema,
  opsys: rfcToken.optional(),
  charset: rfcToken.optional(),
};

export const RuleSchema = z
  .strictObject({
    name: z
      .string()
      .min(1, 'must not be empty')
      .max(128, 'must be at most 128 characters')
      .refine((name) => /^[\x20-\x7e]+$/.test(name), 'must be printable ASCII')
      .refine((name) => name !== 'default', '"default" is reserved for the policy default'),
    match: MatchSchema.optional(),
    ...outcomeFields,
  })
  .superRefine(checkOutcome) as unknown as z.ZodType<PolicyRule>;

export const DefaultSchema = z
  .strictObject(outcomeFields)
  .superRefine(checkOutcome) as unknown as z.ZodType<PolicyOutcome>;

/** The policy document, version 1. See docs/policy.md. */
export const PolicySchema = z
  .strictObject({
    version: z.literal(POLICY_VERSION, `must be ${POLICY_VERSION} (the only policy format version)`),
    description: z.string().max(1000).optional(),
    key: z.string().min(MIN_KEY_CHARS, `must be at least ${MIN_KEY_CHARS} characters`).max(1024).optional(),
    rules: z.array(RuleSchema).max(100_000),
    default: DefaultSchema,
  })
  .superRefine((policy, ctx) => {
    const seen = new Map<string, number>();
    // The first outcome whose action needs the policy key, e.g. "rules[3]", with what it is.
    let keyedAt: { where: string; what: string } | undefined;
    const needsKey = (action: unknown, where: string) => {
      const what = keyNeedOf(action);
      if (keyedAt === undefined && what !== undefined) keyedAt = { where, what };
    };
    policy.rules.forEach((rule, index) => {
      if (typeof rule?.name === 'string') {
        const first = seen.get(rule.name);
        if (first !== undefined)
          ctx.addIssue({
            code: 'custom',
            message: `duplicate rule name "${rule.name}" (also rules[${first}])`,
            path: ['rules', index, 'name'],
          });
        else seen.set(rule.name, index);
      }
      needsKey(rule?.action, `rules[${index}]`);
    });
    needsKey(policy.default?.action, 'default');
    if (keyedAt !== undefined && policy.key === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `required: ${keyedAt.where} uses ${keyedAt.what}, which is keyed by this secret`,
        path: ['key'],
      });
    }
  }) as unknown as z.ZodType<Policy>;

/**
 * Parses a policy document (a parsed JSON value, or JSON text).
 * Throws PolicyError naming every bad field's path (at most 10).
 *
 * @example
 * parsePolicy({ version: 1, rules: [], default: { action: { error: 'HIDDEN-USER' } } })
 * parsePolicy('{"version":2}') // throws PolicyError: version: must be 1 (...); rules: ...
 */
export function parsePolicy(json: unknown): Policy {
  let value = json;
  if (typeof json === 'string') {
    try {
      value = JSON.parse(json);
    } catch (error) {
      throw new PolicyError([{ path: '(root)', message: `not JSON: ${(error as Error).message}` }]);
    }
  }
  const result = PolicySchema.safeParse(value);
  if (result.success) return result.data;
  throw new PolicyError(issuesOf(result.error, 10));
}

/** The built-in policy: reveal a found owner's user name (UNIX), its uid when it has none (OTHER), else NO-USER. */
export const DEFAULT_POLICY: Policy = Object.freeze({
  version: 1,
  description: 'built-in default: reveal the owner when the gateway knows it',
  rules: [],
  default: { action: { reveal: 'name', ifNoName: 'uid', ifUnknown: 'NO-USER' } },
}) as Policy;

/** A copy of a policy safe to show (the pseudonym key replaced). */
export function redactPolicy(policy: Policy): Policy {
  return policy.key === undefined ? policy : { ...policy, key: '[redacted]' };
}
