// Before each workerd test file: the local D1 database gets the schema of
// worker/migrations/, as `wrangler d1 migrations apply` gives a real one.
import { applyD1Migrations } from 'cloudflare:test';
import { env } from 'cloudflare:workers';

await applyD1Migrations(env.AUDIT, env.TEST_MIGRATIONS);
