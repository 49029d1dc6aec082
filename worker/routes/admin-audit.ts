/**
 * What the audit routes share: the audit database or 503 not_configured, and its failures as
 * 503 database_unavailable and a bad cursor as 400 invalid_request (docs/wire.md).
 */
import { RequestRejected } from '../http.js';
import type { AuditDeps, Service } from '../service.js';
import { CursorError } from '../stores/audit.js';

export function auditOf(service: Service): AuditDeps {
  if (!service.audit) {
    const message = 'no audit database is configured (--audit FILE, or the AUDIT D1 binding on Workers)';
    throw new RequestRejected(503, 'not_configured', message);
  }
  return service.audit;
}

/** Runs a database call, turning its failures into wire errors. */
export async function fromDatabase<T>(service: Service, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof RequestRejected) throw error;
    if (error instanceof CursorError) throw new RequestRejected(400, 'invalid_request', `cursor: ${error.message}`);
    const message = error instanceof Error ? error.message : String(error);
    service.log({ msg: 'database_failed', error: message });
    throw new RequestRejected(503, 'database_unavailable', 'the audit database failed; see the worker log');
  }
}
