import { defineConfig } from 'vitest/config';

// Projects: `node` (protocol, gateway, worker logic and end-to-end over real sockets)
// and `interop` (real Debian ident clients; run by .ci/run after `npm test`).
export default defineConfig({
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
        test: {
          name: 'interop',
          include: ['test/interop/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
