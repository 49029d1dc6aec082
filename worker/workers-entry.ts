/**
 * The Cloudflare Workers entry (wrangler's `main`): bindings POLICY, IDENTGATE_SECRETS and
 * IDENTGATE_ADMIN_TOKENS (docs/internals.md); the app is built on an isolate's first request, not at import.
 */
import type { Hono } from 'hono';
import { createApp } from './app.js';
import { createKvStore } from './stores/kv.js';

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

function appFor(env: Env): Hono {
  latest = env;
  if (!app) {
    const log = (entry: Record<string, unknown>) => console.log(JSON.stringify(entry));
    const secrets = splitter();
    const adminTokens = splitter();
    app = createApp({
      store: createKvStore(env.POLICY, { log }),
      secrets: () => secrets(latest?.IDENTGATE_SECRETS),
      adminTokens: () => adminTokens(latest?.IDENTGATE_ADMIN_TOKENS),
      mode: 'service',
      log,
    });
  }
  return app;
}

export default {
  fetch(request, env, ctx) {
    return appFor(env).fetch(request, env, ctx);
  },
} satisfies ExportedHandler<Env>;
