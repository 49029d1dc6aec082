/**
 * What the interop suites run outside the vitest process: `builtRoot` points
 * a child `node` inside a network namespace at the built project (Node 20
 * cannot run .ts), and `compileC` builds a C peer with the system compiler
 * into a temporary directory.
 *
 * @example
 * const root = await builtRoot();
 * const identQuery = await compileC('ident-query', ['ident']);
 */
import { constants } from 'node:fs';
import { access, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PEERS_DIR, REPO_ROOT, run } from './netns.js';

/**
 * The built project (dist/, made by `npm run build`, which `npm test` and
 * `npm run test:interop` run first), for a child `node` inside a network
 * namespace; fails with what to do when it is missing.
 *
 * @example
 * const root = await builtRoot();
 * const { IdentServer } = await import(join(root, 'gateway/server/server.js'));
 */
export async function builtRoot(): Promise<string> {
  const root = join(REPO_ROOT, 'dist');
  try {
    await access(join(root, 'gateway/server/server.js'), constants.R_OK);
  } catch {
    throw new Error(
      `${root}/gateway/server/server.js is missing; run "npm run build" first (npm test and npm run test:interop do it)`,
    );
  }
  return root;
}

/**
 * Compiles the C peer `peers/<name>.c` with `cc`, linking `libraries`, into a
 * new temporary directory, and returns the executable's path. Fails with the
 * compiler's output when it does not build.
 *
 * @example
 * const identQuery = await compileC('ident-query', ['ident']);
 */
export async function compileC(name: string, libraries: readonly string[]): Promise<string> {
  const outDir = await mkdtemp(join(tmpdir(), `identgate-${name}-`));
  const executable = join(outDir, name);
  const args = [
    '-Wall',
    '-Wextra',
    '-O1',
    '-o',
    executable,
    join(PEERS_DIR, `${name}.c`),
    ...libraries.map((library) => `-l${library}`),
  ];
  const result = await run('cc', args, { timeoutMs: 60_000 });
  if (result.code !== 0) throw new Error(`cc ${args.join(' ')} failed (exit ${result.code}):\n${result.stderr}`);
  return executable;
}
