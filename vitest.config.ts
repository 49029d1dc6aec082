import { cloudflareTest, readD1Migrations } from '@cloudflare/vitest-pool-workers';
import { defineConfig } from 'vitest/config';

// Projects: `node` (protocol, gateway, worker logic and end-to-end over real sockets),
// `worker` (the Workers entry inside workerd, with a local KV namespace, a local D1
// database with worker/migrations applied before each file, and test secrets) and `interop` (real Debian ident clients; run by .ci/run after `npm test`).
// A plain `vitest run` runs node + worker; interop joins only when asked for with
// `--project interop` (or IDENTGATE_INTEROP=1), as it needs the Debian clients.
const interopSelected =
  process.env.IDENTGATE_INTEROP === '1' ||
  process.argv.some(
    (arg, i, argv) => arg === '--project=interop' || (arg === '--project' && argv[i + 1] === 'interop'),
  );

export default defineConfig(async () => ({
  test: {
    projects: [
      {
        test: {
          name: 'node',
          include: ['test/**/*.test.ts'],
          exclude: ['test/interop/**', 'test/worker/workerd/**', 'node_modules/**'],
          testTimeout: 20_000,
          hookTimeout: 30_000,
        },
      },
      {
        plugins: [
          cloudflareTest({
            wrangler: { configPath: './wrangler.toml' },
            miniflare: {
              // Test-only values; production secrets are set with `wrangler secret put`.
              bindings: {
                IDENTGATE_SECRETS: 'test-secret-new\ntest-secret-old',
                IDENTGATE_ADMIN_TOKENS: 'test-admin-token',
                // The same files `wrangler d1 migrations apply` reads; applied by test/worker/workerd/setup.ts.
                TEST_MIGRATIONS: await readD1Migrations('worker/migrations'),
              },
            },
          }),
        ],
        test: {
          name: 'worker',
          include: ['test/worker/workerd/**/*.test.ts'],
          setupFiles: ['test/worker/workerd/setup.ts'],
          testTimeout: 20_000,
          hookTimeout: 30_000,
        },
      },
      ...(interopSelected
        ? [
            {
              test: {
                name: 'interop',
                include: ['test/interop/**/*.test.ts'],
                testTimeout: 60_000,
                hookTimeout: 60_000,
                fileParallelism: false,
              },
            },
          ]
        : []),
    ],
  },
}));
