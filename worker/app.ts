/**
 * The policy worker as a Hono app, the same in every runtime (workers-entry.ts, node.ts, in-process);
 * one route group per file in routes/. Every error is `{ error: { code, message } }` (docs/wire.md).
 */
import { Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { methodNotAllowed } from 'hono/method-not-allowed';
import { errorResponse, RequestRejected } from './http.js';
import { createInProcessLookups, type InProcessLookups } from './in-process.js';
import { consoleRoutes } from './console/routes.js';
import { assignmentRoutes } from './routes/assignments.js';
import { auditRoutes } from './routes/audit.js';
import { explainRoutes } from './routes/explain.js';
import { gatewayPolicyRoutes } from './routes/gateway-policy.js';
import { gatewayRoutes } from './routes/gateways.js';
import { healthRoutes } from './routes/health.js';
import { lookupRoutes } from './routes/lookup.js';
import { policyRoutes } from './routes/policy.js';
import { createService, type AppDeps, type Service } from './service.js';

export { MAX_REMEMBERED_SIGNATURES } from './auth.js';
export { RequestRejected } from './http.js';
export type { InProcessLookups } from './in-process.js';
export type { AppDeps, AuditDeps } from './service.js';

/** The route groups, each a Hono app mounted at the root. A new group is one file and one entry here. */
const ROUTE_GROUPS: readonly ((service: Service) => Hono)[] = [
  lookupRoutes,
  gatewayPolicyRoutes,
  policyRoutes,
  explainRoutes,
  auditRoutes,
  assignmentRoutes,
  gatewayRoutes,
  healthRoutes,
  consoleRoutes,
];

/** The Hono app, plus in-process lookups in 'embedded' mode. */
export type PolicyApp = Hono & { readonly inProcess: InProcessLookups | undefined };

/**
 * Builds the policy worker's Hono app.
 *
 * @example
 * const app = createApp({ store: createMemoryStore(), secrets: ['s3cret'], mode: 'service' });
 * const res = await app.request('/v1/ident', { method: 'POST', body, headers: await signatureHeaders(['s3cret'], 'POST', '/v1/ident', body) });
 * await res.json(); // { v: 1, id, answer: { type: 'ERROR', error: 'HIDDEN-USER' }, rule: 'default' }
 */
export function createApp(deps: AppDeps): PolicyApp {
  const service = createService(deps);
  const app = new Hono();
  app.use(
    methodNotAllowed({
      app,
      onMethodNotAllowed: (c, methods) => {
        const allow = methods.join(', ');
        const message = `${c.req.method} is not allowed on ${c.req.path}; use ${allow}`;
        return errorResponse(405, 'method_not_allowed', message, { Allow: allow });
      },
    }),
  );
  for (const routes of ROUTE_GROUPS) app.route('/', routes(service));
  app.notFound((c) => errorResponse(404, 'not_found', `no route ${c.req.method} ${c.req.path}`));
  app.onError((error, c) => {
    if (error instanceof RequestRejected && (error.status === 401 || error.status === 503)) {
      service.log({ msg: 'rejected', path: c.req.path, code: error.code });
    }
    if (error instanceof HTTPException) return error.getResponse();
    const message = error instanceof Error ? error.message : String(error);
    service.log({ msg: 'internal_error', path: c.req.path, error: message });
    return errorResponse(500, 'internal_error', 'the worker failed; see its log');
  });
  const inProcess = service.mode === 'embedded' ? createInProcessLookups(service) : undefined;
  return Object.assign(app, { inProcess });
}
