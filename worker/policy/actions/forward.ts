/**
 * `{ "forward": { "port", "host"? }, "accept"?, "fallback"? }`: the gateway asks an app's own identd
 * about the same connection and answers its user id if accepted (docs/wire.md "Delegated answers").
 */
import { z } from 'zod';
import type { ForwardDelegate } from '../../../protocol/wire.js';
import { NOT_AN_ADDRESS, parseAddress } from '../address.js';
import { acceptSchema, constraintsOf, type AcceptSpec } from './accept.js';
import type { ActionDefinition } from './action.js';
import { ActionSchema } from './index.js';

export interface ForwardAction {
  forward: { port: number; host?: string };
  accept?: AcceptSpec;
  /** Any action but forward and userFile; default { "error": "UNKNOWN-ERROR" }. */
  fallback?: object;
}

export const DEFAULT_DELEGATE_FALLBACK = Object.freeze({ error: 'UNKNOWN-ERROR' });

export const forward: ActionDefinition<ForwardAction> = {
  key: 'forward',
  schema: z.strictObject({
    forward: z.strictObject({
      port: z.number().int().min(1).max(65535),
      host: z
        .string()
        .max(64)
        .refine(
          (host) => !host.includes('%') && parseAddress(host, new Int32Array(4)) !== NOT_AN_ADDRESS,
          'must be an IP address (127.0.0.1, ::1, ...)',
        )
        .optional(),
    }),
    accept: acceptSchema.optional(),
    fallback: z.lazy(() => ActionSchema).optional(),
  }) as z.ZodType<ForwardAction>,
  delegates: true,
  nested: (action) => (action.fallback === undefined ? [] : [{ action: action.fallback, path: ['fallback'] }]),
  compile(action, { opsys, charset, compileNested }) {
    const fallback = compileNested(action.fallback ?? DEFAULT_DELEGATE_FALLBACK);
    const delegate: ForwardDelegate = Object.freeze({
      kind: 'forward',
      host: action.forward.host ?? '127.0.0.1',
      port: action.forward.port,
      opsys: opsys ?? 'OTHER',
      ...(charset !== undefined && { charset }),
      accept: constraintsOf(action.accept),
    });
    return { constant: fallback.constant, answer: fallback.answer, delegate };
  },
};
