/** POST ROUTES.lookup and ROUTES.batch: signed lookups from gateways (docs/wire.md). */
import { Hono } from 'hono';
import { BatchRequestSchema, LookupRequestSchema, ROUTES, WIRE_VERSION } from '../../protocol/wire.js';
import { gatewayAuth } from '../auth.js';
import { limitBody, parseWith, readJson } from '../http.js';
import type { Service } from '../service.js';

export function lookupRoutes(service: Service): Hono {
  const { configured, signed } = gatewayAuth(service);
  const routes = new Hono();
  routes.post(ROUTES.lookup, configured, limitBody, signed, async (c) => {
    const request = parseWith(LookupRequestSchema, await readJson(c));
    return c.json(service.answerAll(await service.current(), [request])[0]);
  });
  // One policy version for the whole batch; answers keep the requests' order.
  routes.post(ROUTES.batch, configured, limitBody, signed, async (c) => {
    const batch = parseWith(BatchRequestSchema, await readJson(c));
    return c.json({ v: WIRE_VERSION, answers: service.answerAll(await service.current(), batch.requests) });
  });
  return routes;
}
