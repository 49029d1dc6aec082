/**
 * What an app may answer through a rule, as written in the policy (`"accept": { "pattern", "deny",
 * "maxLength", "localNames" }`), and its normal form on the wire (protocol/constraints.ts). Shared
 * by the actions that answer with a name an app supplies: claim, forward and userFile.
 */
import { z } from 'zod';
import { DEFAULT_IDENT_MAX_LENGTH, type IdentConstraints } from '../../../protocol/constraints.js';
import { oneOrMany, type OneOrMany } from '../zod.js';

export interface AcceptSpec {
  /** Globs; the name must match one (default: any name). */
  pattern?: OneOrMany<string>;
  /** Globs the name must match none of. */
  deny?: OneOrMany<string>;
  /** Default 32 characters. */
  maxLength?: number;
  /** true: the name may be another local account's (checked by the gateway; default false). */
  localNames?: boolean;
}

const glob = z.string().min(1, 'must not be empty').max(256, 'must be at most 256 characters');

const fields = {
  pattern: oneOrMany(glob, 'glob').optional(),
  deny: oneOrMany(glob, 'glob').optional(),
  maxLength: z.number().int().min(1).max(512).optional(),
};

/** For names the gateway checks (forward, userFile): localNames can be enforced there. */
export const acceptSchema = z.strictObject({ ...fields, localNames: z.boolean().optional() }) as z.ZodType<AcceptSpec>;
/** For names the worker checks (claims): it has no account list, so no localNames. */
export const workerAcceptSchema = z.strictObject(fields) as z.ZodType<Omit<AcceptSpec, 'localNames'>>;

const list = (value: OneOrMany<string> | undefined) =>
  value === undefined ? undefined : Array.isArray(value) ? value : [value];

/** The normal form of an accept spec (absent: any name of up to 32 characters that is not another account's). */
export function constraintsOf(spec: AcceptSpec | undefined): IdentConstraints {
  const pattern = list(spec?.pattern);
  const deny = list(spec?.deny);
  return {
    ...(pattern && { pattern }),
    ...(deny && { deny }),
    maxLength: spec?.maxLength ?? DEFAULT_IDENT_MAX_LENGTH,
    localNames: spec?.localNames ?? false,
  };
}
