/**
 * `{ "userFile": { "files"?, "allow"? }, "accept"?, "fallback"? }`: the gateway reads the owner's
 * oidentd user file and answers what its matching entry says, if granted and accepted (docs/apps.md).
 */
import { z } from 'zod';
import {
  USER_FILE_CAPABILITIES,
  USER_FILES,
  type UserFileCapability,
  type UserFileDelegate,
} from '../../../protocol/wire.js';
import { acceptSchema, constraintsOf, type AcceptSpec } from './accept.js';
import type { ActionDefinition } from './action.js';
import { DEFAULT_DELEGATE_FALLBACK } from './forward.js';
import { ActionSchema } from './index.js';

export interface UserFileAction {
  userFile: { files?: (typeof USER_FILES)[number][]; allow?: UserFileCapability[] };
  accept?: AcceptSpec;
  fallback?: object;
}

/** What a user file may do unless the rule says otherwise: everything but forward (oidentd's CAP_FORWARD). */
export const DEFAULT_USER_FILE_ALLOW: readonly UserFileCapability[] = [
  'reply',
  'hide',
  'random',
  'numeric',
  'random_numeric',
];

export const userFile: ActionDefinition<UserFileAction> = {
  key: 'userFile',
  schema: z.strictObject({
    userFile: z.strictObject({
      files: z
        .array(z.enum(USER_FILES, `must be ${USER_FILES.map((file) => `"${file}"`).join(' or ')}`))
        .min(1)
        .max(USER_FILES.length)
        .refine((files) => new Set(files).size === files.length, 'must not repeat a file')
        .optional(),
      allow: z
        .array(z.enum(USER_FILE_CAPABILITIES, `must be one of ${USER_FILE_CAPABILITIES.join(', ')}`))
        .max(USER_FILE_CAPABILITIES.length)
        .optional(),
    }),
    accept: acceptSchema.optional(),
    fallback: z.lazy(() => ActionSchema).optional(),
  }) as z.ZodType<UserFileAction>,
  delegates: true,
  nested: (action) => (action.fallback === undefined ? [] : [{ action: action.fallback, path: ['fallback'] }]),
  compile(action, { opsys, charset, compileNested }) {
    const fallback = compileNested(action.fallback ?? DEFAULT_DELEGATE_FALLBACK);
    const delegate: UserFileDelegate = Object.freeze({
      kind: 'userfile',
      files: action.userFile.files ?? [...USER_FILES],
      allow: [...new Set(action.userFile.allow ?? DEFAULT_USER_FILE_ALLOW)],
      opsys: opsys ?? 'OTHER',
      ...(charset !== undefined && { charset }),
      accept: constraintsOf(action.accept),
    });
    return { constant: fallback.constant, answer: fallback.answer, delegate };
  },
};
