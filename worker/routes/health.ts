/** GET ROUTES.health: liveness, the mode, and whether lookups can be answered (no store access). */
import { Hono } from 'hono';
import { ROUTES } from '../../protocol/wire.js';
import type { Service } from '../service.js';

export function healthRoutes(service: Service): Hono {
  const routes = new Hono();
  routes.get(ROUTES.health, (c) => {
    const configured = service.mode === 'embedded' || service.secrets().length > 0;
    // With an audit database: what this isolate or process wrote and dropped (docs/audit.md).
    const audit = service.audit && { audit: service.audit.recorder.stats() };
    return c.json({ status: 'ok', mode: service.mode, configured, ...audit });
  });
  return routes;
}
