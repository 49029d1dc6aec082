/**
 * The building blocks of the policy's zod schemas (schema.ts, actions/, match conditions):
 * nested parses reported under their path, one-or-many lists, objects keyed by one of several fields.
 */
import { z } from 'zod';
import { isErrorToken, isToken, type ErrorToken } from '../../protocol/tokens.js';
import { parseCidr } from './address.js';
import { parseRange } from './patterns.js';

/** One value or a non-empty list of them. */
export type OneOrMany<T> = T | T[];

export type Context = z.core.$RefinementCtx;

/** Re-reports the issues of a nested parse under `prefix`. */
export function forward(
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

export function custom<T>(check: (value: unknown, ctx: Context) => void): z.ZodType<T> {
  return z.unknown().superRefine(check) as unknown as z.ZodType<T>;
}

/** A single item or a non-empty list of items, with list paths like `clientAddress[1]`. */
export function oneOrMany<T>(item: z.ZodType<T>, what: string): z.ZodType<OneOrMany<T>> {
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
export function oneKeyOf<T>(what: string, branches: Record<string, z.ZodType>): z.ZodType<T> {
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

export const errorToken = z
  .string()
  .refine(
    isErrorToken,
    'must be INVALID-PORT, NO-USER, HIDDEN-USER, UNKNOWN-ERROR or an X-token ("X" then 1..63 printable characters, no ":")',
  ) as unknown as z.ZodType<ErrorToken>;
export const rfcToken = z
  .string()
  .refine(isToken, 'must be 1..64 printable ASCII characters without ":", "," or white space');

/** Printable ASCII without white space (prefixes, alphabets). */
export const printable = /^[\x21-\x7e]*$/;

/** A CIDR block (or a bare address), as parseCidr takes it. */
export const cidr = custom<string>((value, ctx) => {
  if (typeof value !== 'string')
    return void ctx.addIssue({
      code: 'custom',
      message: `must be a CIDR string like "192.0.2.0/24", got ${JSON.stringify(value)}`,
    });
  const block = parseCidr(value);
  if (typeof block === 'string') ctx.addIssue({ code: 'custom', message: block });
});

/** A name or glob (gateway, owner and container names, label values). */
export const namePattern = z.string().min(1, 'must not be empty').max(256, 'must be at most 256 characters');

/** A number in min..max or a "lo-hi" range of them (ports, uids). */
export function range(min: number, max: number, what: string) {
  return custom<number | string>((value, ctx) => {
    if (typeof value !== 'number' && typeof value !== 'string') {
      return void ctx.addIssue({ code: 'custom', message: `must be a ${what} or a range like "${min}-${max}"` });
    }
    const parsed = parseRange(value, min, max);
    if (typeof parsed === 'string') ctx.addIssue({ code: 'custom', message: parsed });
  });
}
