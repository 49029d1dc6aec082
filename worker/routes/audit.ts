/** GET ROUTES.audit: the audit trail, filtered, newest first, a page at a time (admin; docs/audit.md). */
import { Hono } from 'hono';
import { AuditQuerySchema, DEFAULT_PAGE, type AuditQuery } from '../../protocol/audit.js';
import { ROUTES } from '../../protocol/wire.js';
import { adminAuth } from '../auth.js';
import { parseWith } from '../http.js';
import type { Service } from '../service.js';
import { auditOf, fromDatabase } from './admin-audit.js';

/** What GET does (the console's search too): a page of records; throws RequestRejected (bad cursor, no database). */
export async function searchAudit(service: Service, { limit, ...filter }: AuditQuery) {
  const audit = auditOf(service);
  return fromDatabase(service, () => audit.store.search({ ...filter, limit: limit ?? DEFAULT_PAGE }));
}

export function auditRoutes(service: Service): Hono {
  const routes = new Hono();
  routes.get(ROUTES.audit, adminAuth(service), async (c) =>
    c.json(await searchAudit(service, parseWith(AuditQuerySchema, c.req.query()))),
  );
  return routes;
}
