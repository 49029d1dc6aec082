/** GET ROUTES.gateways: every gateway the worker has recorded decisions for (admin; docs/audit.md). */
import { Hono } from 'hono';
import { ROUTES } from '../../protocol/wire.js';
import { adminAuth } from '../auth.js';
import type { Service } from '../service.js';
import { auditOf, fromDatabase } from './admin-audit.js';

export function gatewayRoutes(service: Service): Hono {
  const routes = new Hono();
  routes.get(ROUTES.gateways, adminAuth(service), async (c) => {
    const audit = auditOf(service);
    return c.json({ gateways: await fromDatabase(service, () => audit.store.listGateways()) });
  });
  return routes;
}
