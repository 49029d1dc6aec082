/**
 * The Cloudflare Workers entry (wrangler's `main`): bindings POLICY, AUDIT (D1, docs/audit.md), IDENTGATE_SECRETS,
 * IDENTGATE_ADMIN_TOKENS and IDENTGATE_DECISION_LOG (docs/internals.md); the app is built on an isolate's first request.
 */
import type { Hono } from 'hono';
import { createApp } from './app.js';
import { createKvStore } from './stores/kv.js';
import { createAuditStore, type AuditStore } from './stores/audit.js';
import { d1Database } from './stores/d1.js';
import { createAssignmentCache } from './audit/assignments.js';
import { createAuditRecorder } from './audit/recorder.js';
import { pruneAudit, retentionDaysOf } from './audit/retention.js';
import { decisionLog, type AuditDeps } from './service.js';

/** Splits a newline-separated secret binding into its values. */
function lines(value: string | undefined): string[] {
  return (value ?? '')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
}

/** Memoizes the split of a binding by its text, so each request costs a string compare. */
function splitter(): (value: string | undefined) => readonly string[] {
  let text: string | undefined;
  let values: readonly string[] = [];
  return (value) => {
    if (value !== text) {
      text = value;
      values = lines(value);
    }
    return values;
  };
}

// One app per isolate (its KV cache and replay memory live as long as the
// isolate); secrets are read from the bindings of the request at hand.
let app: Hono | undefined;
let latest: Env | undefined;
const log = (entry: Record<string, unknown>) => console.log(JSON.stringify(entry));

/** The audit parts over the AUDIT binding, or undefined when the binding is absent. */
function auditFor(env: Env): AuditDeps | undefined {
  // Optional at run time: a deployment may leave the binding out.
  const d1 = (env as Partial<Env>).AUDIT;
  if (!d1) return undefined;
  const store: AuditStore = createAuditStore(d1Database(d1));
  return {
    store,
    // No delay: each request's records are one write, which ctx.waitUntil keeps alive after the response.
    recorder: createAuditRecorder({ store, flushDelayMs: 0, log }),
    assignments: createAssignmentCache(store, { log }),
  };
}

function appFor(env: Env): Hono {
  latest = env;
  if (!app) {
    const secrets = splitter();
    const adminTokens = splitter();
    app = createApp({
      store: createKvStore(env.POLICY, { log }),
      secrets: () => secrets(latest?.IDENTGATE_SECRETS),
      adminTokens: () => adminTokens(latest?.IDENTGATE_ADMIN_TOKENS),
      mode: 'service',
      log,
      audit: auditFor(env),
      logDecisions: decisionLog(env.IDENTGATE_DECISION_LOG as string | undefined, log),
    });
  }
  return app;
}

export default {
  fetch(request, env, ctx) {
    return appFor(env).fetch(request, env, ctx);
  },
  // The cron trigger (wrangler.toml [triggers]): retention.
  async scheduled(controller, env) {
    const d1 = (env as Partial<Env>).AUDIT;
    if (!d1) return;
    let days: number;
    try {
      days = retentionDaysOf(env.IDENTGATE_AUDIT_RETENTION_DAYS);
    } catch (error) {
      log({ msg: 'audit_retention_invalid', error: (error as Error).message });
      return;
    }
    await pruneAudit(createAuditStore(d1Database(d1)), days, controller.scheduledTime, log);
  },
} satisfies ExportedHandler<Env>;
