/** GET ROUTES.gateways: every gateway the worker has recorded decisions for (admin; docs/audit.md). */
import { Hono } from 'hono';
import { ROUTES } from '../../protocol/wire.js';
import { adminAuth } from '../auth.js';
import type { Service } from '../service.js';
import { auditOf, fromDatabase } from './admin-audit.js';

/** What GET does (the console's pages too): the fleet, by name; throws RequestRejected without a database. */
export async function listGateways(service: Service) {
  const audit = auditOf(service);
  return fromDatabase(service, () => audit.store.listGateways());
}

export function gatewayRoutes(service: Service): Hono {
  const routes = new Hono();
  routes.get(ROUTES.gateways, adminAuth(service), async (c) => c.json({ gateways: await listGateways(service) }));
  return routes;
}
