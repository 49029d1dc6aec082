/** POST ROUTES.explain: which rule would answer a query, and why earlier rules did not (admin). */
import { Hono } from 'hono';
import { z } from 'zod';
import {
  ConnectionSchema,
  LookupRequestSchema,
  OwnerSchema,
  ROUTES,
  WIRE_VERSION,
  type LookupRequest,
} from '../../protocol/wire.js';
import { explain } from '../policy/index.js';
import { adminAuth } from '../auth.js';
import { limitBody, parseWith, readJson } from '../http.js';
import type { Service } from '../service.js';

/**
 * What a question leaves out: a query from this host (loopback) on the ident port, by an unnamed gateway, about a
 * connection whose owner is unknown and unclaimed. The answer lists the fields it assumed.
 */
export const EXPLAIN_DEFAULTS = {
  id: 'explain',
  gateway: 'explain',
  owner: null,
  connection: { localAddress: '127.0.0.1', localPort: 113, remoteAddress: '127.0.0.1', remotePort: 0 },
} as const;

/** An explain query: a lookup request of which only `query` is needed. */
const ExplainRequestSchema = LookupRequestSchema.extend({
  v: z.literal(WIRE_VERSION).optional(),
  id: z.string().min(1).max(128).optional(),
  gateway: z.string().min(1).max(128).optional(),
  connection: ConnectionSchema.partial().optional(),
  owner: OwnerSchema.optional(),
});

export type ExplainRequest = z.infer<typeof ExplainRequestSchema>;

/**
 * The lookup request an explain question stands for, its left-out fields filled with EXPLAIN_DEFAULTS, and
 * the names of those fields. Throws RequestRejected (400) when the question does not parse.
 *
 * @example
 * explainRequest({ query: { serverPort: 6667, clientPort: 40000 } }).assumed // ['gateway', 'connection.localAddress', ...]
 */
export function explainRequest(question: unknown): { request: LookupRequest; assumed: string[] } {
  const query = parseWith(ExplainRequestSchema, question);
  const assumed: string[] = [];
  const given = <K extends string, T>(name: K, value: T | undefined, fallback: T): T => {
    if (value !== undefined) return value;
    assumed.push(name);
    return fallback;
  };
  const connection = Object.fromEntries(
    Object.entries(EXPLAIN_DEFAULTS.connection).map(([field, fallback]) => [
      field,
      given(`connection.${field}`, query.connection?.[field as keyof typeof EXPLAIN_DEFAULTS.connection], fallback),
    ]),
  ) as LookupRequest['connection'];
  const request: LookupRequest = {
    ...query,
    v: WIRE_VERSION,
    id: query.id ?? EXPLAIN_DEFAULTS.id,
    gateway: given('gateway', query.gateway, EXPLAIN_DEFAULTS.gateway),
    connection,
    owner: given('owner', query.owner, EXPLAIN_DEFAULTS.owner),
  };
  return { request, assumed };
}

export function explainRoutes(service: Service): Hono {
  const routes = new Hono();
  routes.post(ROUTES.explain, adminAuth(service), limitBody, async (c) => {
    const { request, assumed } = explainRequest(await readJson(c));
    const snapshot = await service.current();
    return c.json({ v: WIRE_VERSION, version: snapshot.version, ...explain(snapshot.compiled, request), assumed });
  });
  return routes;
}
