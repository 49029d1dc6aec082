/** POST ROUTES.lookup and ROUTES.batch: signed lookups from gateways (docs/wire.md). */
import { Hono, type Context } from 'hono';
import { BatchRequestSchema, LookupRequestSchema, ROUTES, WIRE_VERSION } from '../../protocol/wire.js';
import { callerOf, gatewayAuth } from '../auth.js';
import { limitBody, parseWith, readJson } from '../http.js';
import type { AfterResponse, Service } from '../service.js';

/** Workers: ctx.waitUntil, so the audit write runs after the response. Node has no execution context: the recorder runs on its own. */
function afterResponse(c: Context): AfterResponse | undefined {
  let ctx: { waitUntil(work: Promise<unknown>): void };
  try {
    ctx = c.executionCtx;
  } catch {
    return undefined;
  }
  return (work) => ctx.waitUntil(work);
}

export function lookupRoutes(service: Service): Hono {
  const { configured, signed } = gatewayAuth(service);
  const routes = new Hono();
  routes.post(ROUTES.lookup, configured, limitBody, signed, async (c) => {
    const request = parseWith(LookupRequestSchema, await readJson(c));
    const snapshot = await service.current();
    const after = afterResponse(c);
    await service.assignmentsReady(snapshot, after);
    return c.json(service.answerAll(snapshot, [request], callerOf(c), after)[0]);
  });
  // One policy version for the whole batch; answers keep the requests' order.
  routes.post(ROUTES.batch, configured, limitBody, signed, async (c) => {
    const batch = parseWith(BatchRequestSchema, await readJson(c));
    const snapshot = await service.current();
    const after = afterResponse(c);
    await service.assignmentsReady(snapshot, after);
    return c.json({ v: WIRE_VERSION, answers: service.answerAll(snapshot, batch.requests, callerOf(c), after) });
  });
  return routes;
}
