/** GET ROUTES.audit: the audit trail, filtered, newest first, a page at a time (admin; docs/audit.md). */
import { Hono } from 'hono';
import { AuditQuerySchema, DEFAULT_PAGE } from '../../protocol/audit.js';
import { ROUTES } from '../../protocol/wire.js';
import { adminAuth } from '../auth.js';
import { parseWith } from '../http.js';
import type { Service } from '../service.js';
import { auditOf, fromDatabase } from './admin-audit.js';

export function auditRoutes(service: Service): Hono {
  const routes = new Hono();
  routes.get(ROUTES.audit, adminAuth(service), async (c) => {
    const { limit, ...filter } = parseWith(AuditQuerySchema, c.req.query());
    const audit = auditOf(service);
    return c.json(await fromDatabase(service, () => audit.store.search({ ...filter, limit: limit ?? DEFAULT_PAGE })));
  });
  return routes;
}
