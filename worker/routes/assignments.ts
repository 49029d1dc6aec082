/**
 * PUT, GET and DELETE ROUTES.assignments: admin-assigned idents, unique across the fleet (the
 * database's primary key decides; a second scope asking for a taken ident is 409 ident_taken naming
 * who has it). Every change made here is in this worker's decision cache at once (docs/audit.md).
 */
import { Hono } from 'hono';
import {
  AssignmentDeleteSchema,
  AssignmentPutSchema,
  AssignmentQuerySchema,
  DEFAULT_PAGE,
  type AssignmentScope,
} from '../../protocol/audit.js';
import { ROUTES } from '../../protocol/wire.js';
import { adminAuth } from '../auth.js';
import { limitBody, parseWith, readJson, RequestRejected } from '../http.js';
import type { Service } from '../service.js';
import type { Assignment, AssignmentFilter } from '../stores/audit.js';
import { auditOf, fromDatabase } from './admin-audit.js';

export function describeScope(scope: AssignmentScope): string {
  return 'ownerUid' in scope
    ? `uid ${scope.ownerUid} on gateway ${scope.gateway}`
    : `claim user ${JSON.stringify(scope.claimUser)} on gateway ${scope.gateway}`;
}

/**
 * What PUT does (the console's form too): assigns the ident to the scope, in the decision cache at once.
 * Throws RequestRejected: 409 ident_taken naming who has the ident, 503 when there is no audit database.
 */
export async function assignIdent(service: Service, scope: AssignmentScope, ident: string) {
  const audit = auditOf(service);
  const outcome = await fromDatabase(service, () => audit.store.putAssignment(scope, ident, service.now()));
  if (outcome.kind === 'taken') {
    const message = `ident ${JSON.stringify(ident)} is already assigned to ${describeScope(outcome.holder.scope)}`;
    throw new RequestRejected(409, 'ident_taken', message);
  }
  audit.assignments.applyPut(outcome.assignment);
  const replaced = outcome.kind === 'assigned' ? outcome.replaced : null;
  if (outcome.kind === 'assigned') service.log({ msg: 'ident_assigned', ident, scope, replaced });
  return { assignment: outcome.assignment, replaced };
}

/** What GET does: a page of assignments, ordered by ident. */
export async function listAssignments(service: Service, filter: AssignmentFilter) {
  const audit = auditOf(service);
  return fromDatabase(service, () => audit.store.listAssignments(filter));
}

/** What DELETE does: removes by ident or by scope; throws RequestRejected 404 no_assignment when nothing is. */
export async function unassignIdent(
  service: Service,
  target: { ident: string } | AssignmentScope,
): Promise<Assignment> {
  const audit = auditOf(service);
  const deleted = await fromDatabase(service, () => audit.store.deleteAssignment(target));
  if (deleted === null) {
    const what = 'ident' in target ? `ident ${JSON.stringify(target.ident)}` : describeScope(target);
    throw new RequestRejected(404, 'no_assignment', `nothing is assigned for ${what}`);
  }
  audit.assignments.applyDelete(deleted);
  service.log({ msg: 'ident_unassigned', ident: deleted.ident, scope: deleted.scope });
  return deleted;
}

export function assignmentRoutes(service: Service): Hono {
  const admin = adminAuth(service);
  const routes = new Hono();
  routes.put(ROUTES.assignments, admin, limitBody, async (c) => {
    const { scope, ident } = parseWith(AssignmentPutSchema, await readJson(c));
    return c.json(await assignIdent(service, scope, ident));
  });
  routes.get(ROUTES.assignments, admin, async (c) => {
    const { limit, ...filter } = parseWith(AssignmentQuerySchema, c.req.query());
    return c.json(await listAssignments(service, { ...filter, limit: limit ?? DEFAULT_PAGE }));
  });
  routes.delete(ROUTES.assignments, admin, async (c) => {
    const target = parseWith(AssignmentDeleteSchema, c.req.query());
    return c.json({ deleted: await unassignIdent(service, target) });
  });
  return routes;
}
