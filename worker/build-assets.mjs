// Copies what the compiled worker reads at run time and tsc does not emit: the
// SQL migrations (worker/migrations/, also wrangler's migrations_dir) and the
// SQLite thread (worker/stores/sqlite-thread.mjs), to the same places under dist/.
import { cpSync, mkdirSync } from 'node:fs';

mkdirSync('dist/worker/stores', { recursive: true });
cpSync('worker/migrations', 'dist/worker/migrations', { recursive: true });
cpSync('worker/stores/sqlite-thread.mjs', 'dist/worker/stores/sqlite-thread.mjs');
