/**
 * `{ "forward": { "port", "host"?: "127.0.0.1" | "inner" }, "accept"?, "fallback"? }`: the gateway asks an app's
 * own identd, or the inner host's behind NAT, about the connection (docs/wire.md "Delegated answers", docs/nat.md).
 */
import { z } from 'zod';
import type { ForwardDelegate, LookupRequest } from '../../../protocol/wire.js';
import { NOT_AN_ADDRESS, parseAddress } from '../address.js';
import { acceptSchema, constraintsOf, type AcceptSpec } from './accept.js';
import type { ActionDefinition } from './action.js';
import { ActionSchema } from './index.js';

/** The `host` that means the inner host of the translated connection (request.nat). */
export const INNER_HOST = 'inner';

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
          (host) =>
            host === INNER_HOST || (!host.includes('%') && parseAddress(host, new Int32Array(4)) !== NOT_AN_ADDRESS),
          'must be an IP address (127.0.0.1, ::1, ...) or "inner" (the inner host behind this NAT router)',
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
    if (action.forward.host === INNER_HOST) {
      const fields = {
        kind: 'forward' as const,
        port: action.forward.port,
        opsys: opsys ?? 'OTHER',
        ...(charset !== undefined && { charset }),
        accept: constraintsOf(action.accept),
      };
      // No inner host (not NAT, or conntrack knows none): no forward, the fallback answers.
      const delegateFor = (request: LookupRequest): ForwardDelegate | undefined => {
        const nat = request.nat;
        if (nat == null) return undefined;
        return {
          ...fields,
          host: nat.innerAddress,
          query: { serverPort: nat.innerPort, clientPort: request.query.clientPort },
        };
      };
      return { constant: fallback.constant, answer: fallback.answer, delegateFor };
    }
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
