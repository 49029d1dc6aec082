/** POST ROUTES.explain: which rule would answer a query, and why earlier rules did not (admin). */
import { Hono } from 'hono';
import { z } from 'zod';
import { LookupRequestSchema, OwnerSchema, ROUTES, WIRE_VERSION, type LookupRequest } from '../../protocol/wire.js';
import { explain } from '../policy/index.js';
import { adminAuth } from '../auth.js';
import { limitBody, parseWith, readJson } from '../http.js';
import type { Service } from '../service.js';

/** An explain query: a lookup request whose `v`, `id` and `owner` may be left out. */
const ExplainRequestSchema = LookupRequestSchema.extend({
  v: z.literal(WIRE_VERSION).optional(),
  id: z.string().min(1).max(128).optional(),
  owner: OwnerSchema.optional(),
});

export function explainRoutes(service: Service): Hono {
  const routes = new Hono();
  routes.post(ROUTES.explain, adminAuth(service), limitBody, async (c) => {
    const query = parseWith(ExplainRequestSchema, await readJson(c));
    const request: LookupRequest = { ...query, v: WIRE_VERSION, id: query.id ?? 'explain', owner: query.owner ?? null };
    const snapshot = await service.current();
    return c.json({ v: WIRE_VERSION, version: snapshot.version, ...explain(snapshot.compiled, request) });
  });
  return routes;
}
