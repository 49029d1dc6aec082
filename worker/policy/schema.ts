/**
 * The policy document: its TypeScript types, the zod schema that turns
 * untrusted JSON into a Policy (every finding named by its path, e.g.
 * `rules[2].match.clientAddress: not a CIDR: 10.0.0.0/33 (...)`), and the
 * built-in default policy. Everything a decision can need is checked here, at
 * parse time: CIDRs, ranges, tokens, and every fixed user id against the RFC
 * 1413 reply rules, so evaluation never has to. The format is documented with
 * examples in docs/policy.md.
 *
 * @example
 * const policy = parsePolicy({
 *   version: 1,
 *   rules: [{ name: 'hide-system', match: { ownerUid: '0-999' }, action: { error: 'HIDDEN-USER' } }],
 *   default: { action: { reveal: 'name' } },
 * });
 */
import { z } from 'zod';
import { isErrorToken, isToken, type ErrorToken } from '../../protocol/tokens.js';
import { replyRuleViolation } from '../../protocol/reply.js';
import { parseCidr } from './address.js';
import { parseRange } from './patterns.js';
import { issuesOf } from '../../protocol/issues.js';
import { PolicyError } from './errors.js';

export const POLICY_VERSION = 1;

/** Longest user id a random rule may generate (RFC 1413 §6: 512 octets). */
export const MAX_RANDOM_CHARS = 512;
export const DEFAULT_RANDOM_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
export const DEFAULT_PSEUDONYM_LENGTH = 12;
export const DEFAULT_PSEUDONYM_PREFIX = 'u';
/** 256 bits of HMAC make 51 base32 characters. */
export const MAX_PSEUDONYM_LENGTH = 51;
export const MIN_PSEUDONYM_LENGTH = 6;
export const MIN_KEY_CHARS = 16;

/** One value or a non-empty list of them. */
export type OneOrMany<T> = T | T[];
/** A port or uid, or an inclusive range written "lo-hi". */
export type RangeSpec = number | string;

/** Conditions of a rule; all given ones must hold, an empty match always holds. */
export interface PolicyMatch {
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

export interface RevealNameAction {
  reveal: 'name';
  /** When the owner has no user name: answer the numeric uid (default) or this error. */
  ifNoName?: 'uid' | ErrorToken;
  /** When the owner is unknown (default NO-USER). */
  ifUnknown?: ErrorToken;
}
export interface RevealUidAction {
  reveal: 'uid';
  ifUnknown?: ErrorToken;
}
export interface FixedAction {
  userId: string;
}
export interface RandomAction {
  random: { from: string[] } | { chars: number; alphabet?: string };
}
export interface PseudonymAction {
  pseudonym: { length?: number; prefix?: string };
  ifUnknown?: ErrorToken;
}
export interface ErrorAction {
  error: ErrorToken;
}
export type PolicyAction =
  | RevealNameAction
  | RevealUidAction
  | FixedAction
  | RandomAction
  | PseudonymAction
  | ErrorAction;

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

type Context = z.core.$RefinementCtx;

/** Re-reports the issues of a nested parse under `prefix`. */
function forward(
  ctx: Context,
  result: { success: boolean; error?: z.ZodError | undefined },
  prefix: PropertyKey[],
): boolean {
  if (result.success || !result.error) return true;
  for (const issue of result.error.issues) {
    const unknownKeys = issue.code === 'unrecognized_keys' ? issue.keys : [];
    if (unknownKeys.length > 0) {
      for (const key of unknownKeys)
        ctx.addIssue({ code: 'custom', message: 'unknown field', path: [...prefix, ...issue.path, key] });
    } else {
      ctx.addIssue({ code: 'custom', message: issue.message, path: [...prefix, ...issue.path] });
    }
  }
  return false;
}

function custom<T>(check: (value: unknown, ctx: Context) => void): z.ZodType<T> {
  return z.unknown().superRefine(check) as unknown as z.ZodType<T>;
}

/** A single item or a non-empty list of items, with list paths like `clientAddress[1]`. */
function oneOrMany<T>(item: z.ZodType<T>, what: string): z.ZodType<OneOrMany<T>> {
  return custom((value, ctx) => {
    if (!Array.isArray(value)) {
      forward(ctx, item.safeParse(value), []);
      return;
    }
    if (value.length === 0) ctx.addIssue({ code: 'custom', message: `must list at least one ${what}` });
    value.forEach((entry, index) => forward(ctx, item.safeParse(entry), [index]));
  });
}

/** An object that must carry exactly one of the branch keys; the branch's schema checks the rest. */
function oneKeyOf<T>(what: string, branches: Record<string, z.ZodType>): z.ZodType<T> {
  const keys = Object.keys(branches);
  const list = keys.map((key) => `"${key}"`).join(', ');
  return custom((value, ctx) => {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      ctx.addIssue({ code: 'custom', message: `${what} must be an object with one of ${list}` });
      return;
    }
    const present = keys.filter((key) => key in value);
    if (present.length !== 1) {
      const message =
        present.length === 0
          ? `${what} needs one of ${list}`
          : `${what} may have only one of ${present.map((key) => `"${key}"`).join(', ')}`;
      ctx.addIssue({ code: 'custom', message });
      return;
    }
    forward(ctx, branches[present[0]!]!.safeParse(value), []);
  });
}

const errorToken = z
  .string()
  .refine(
    isErrorToken,
    'must be INVALID-PORT, NO-USER, HIDDEN-USER, UNKNOWN-ERROR or an X-token ("X" then 1..63 printable characters, no ":")',
  ) as unknown as z.ZodType<ErrorToken>;
const rfcToken = z.string().refine(isToken, 'must be 1..64 printable ASCII characters without ":", "," or white space');

const cidr = custom<string>((value, ctx) => {
  if (typeof value !== 'string')
    return void ctx.addIssue({
      code: 'custom',
      message: `must be a CIDR string like "192.0.2.0/24", got ${JSON.stringify(value)}`,
    });
  const block = parseCidr(value);
  if (typeof block === 'string') ctx.addIssue({ code: 'custom', message: block });
});

const namePattern = z.string().min(1, 'must not be empty').max(256, 'must be at most 256 characters');

function range(min: number, max: number, what: string) {
  return custom<RangeSpec>((value, ctx) => {
    if (typeof value !== 'number' && typeof value !== 'string') {
      return void ctx.addIssue({ code: 'custom', message: `must be a ${what} or a range like "${min}-${max}"` });
    }
    const parsed = parseRange(value, min, max);
    if (typeof parsed === 'string') ctx.addIssue({ code: 'custom', message: parsed });
  });
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
}) as unknown as z.ZodType<PolicyMatch>;

const revealSchema = z
  .strictObject({
    reveal: z.enum(['name', 'uid'], 'must be "name" or "uid"'),
    ifNoName: z.union([z.literal('uid'), errorToken], 'must be "uid" or an error token').optional(),
    ifUnknown: errorToken.optional(),
  })
  .superRefine((action, ctx) => {
    if (action.reveal === 'uid' && action.ifNoName !== undefined) {
      ctx.addIssue({
        code: 'custom',
        message: 'only { "reveal": "name" } has ifNoName (a uid is always known)',
        path: ['ifNoName'],
      });
    }
  });

const printable = /^[\x21-\x7e]*$/;

const randomSchema = z.strictObject({
  random: oneKeyOf('random', {
    from: z.strictObject({ from: z.array(z.string()).min(1, 'must list at least one user id').max(10_000) }),
    chars: z.strictObject({
      chars: z.number().int().min(1).max(MAX_RANDOM_CHARS),
      alphabet: z
        .string()
        .min(2, 'must have at least 2 characters')
        .max(256)
        .refine((alphabet) => printable.test(alphabet), 'must be printable ASCII without white space')
        .refine((alphabet) => new Set(alphabet).size === alphabet.length, 'must not repeat a character')
        .optional(),
    }),
  }),
});

const pseudonymSchema = z.strictObject({
  pseudonym: z.strictObject({
    length: z.number().int().min(MIN_PSEUDONYM_LENGTH).max(MAX_PSEUDONYM_LENGTH).optional(),
    prefix: z
      .string()
      .max(32)
      .refine((prefix) => printable.test(prefix), 'must be printable ASCII without white space')
      .optional(),
  }),
  ifUnknown: errorToken.optional(),
});

export const ActionSchema = oneKeyOf<PolicyAction>('an action', {
  reveal: revealSchema,
  userId: z.strictObject({ userId: z.string().min(1, 'must not be empty') }),
  random: randomSchema,
  pseudonym: pseudonymSchema,
  error: z.strictObject({ error: errorToken }),
});

/** Checks what only the whole outcome can tell: opsys/charset fit the action, fixed ids are writable. */
function checkOutcome(outcome: Partial<PolicyOutcome>, ctx: Context): void {
  const action = outcome.action as Record<string, unknown> | undefined;
  if (!action || typeof action !== 'object') return;
  if ('error' in action) {
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
  const charset = outcome.charset;
  const check = (userId: unknown, path: PropertyKey[]) => {
    if (typeof userId !== 'string' || userId.length === 0) return; // reported by the action schema
    const violation = replyRuleViolation({ type: 'USERID', opsys, charset, userId });
    if (violation) ctx.addIssue({ code: 'custom', message: violation, path });
  };
  if ('userId' in action) check(action.userId, ['action', 'userId']);
  const random = action.random as { from?: unknown } | undefined;
  if (random && Array.isArray(random.from))
    random.from.forEach((userId, index) => check(userId, ['action', 'random', 'from', index]));
}

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
    let pseudonymAt: string | undefined;
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
      if (pseudonymAt === undefined && rule?.action && typeof rule.action === 'object' && 'pseudonym' in rule.action)
        pseudonymAt = `rules[${index}]`;
    });
    const fallback = policy.default?.action;
    if (pseudonymAt === undefined && fallback && typeof fallback === 'object' && 'pseudonym' in fallback)
      pseudonymAt = 'default';
    if (pseudonymAt !== undefined && policy.key === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `required: ${pseudonymAt} uses a pseudonym, which is keyed by this secret`,
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
