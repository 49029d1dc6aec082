/**
 * Builds what the interop suites run outside the vitest process, each into a
 * temporary directory: `transpileForNode` turns the project's TypeScript that
 * an entry module imports (followed through relative imports) into plain ES
 * modules a child `node` can load inside a network namespace (Node 20 cannot
 * run .ts, and reading dist/ would test a stale build), and `compileC` builds
 * a C peer with the system compiler. Transpiling is per file, without type
 * checking: the project is `isolatedModules`, and `npm test` type-checks.
 *
 * @example
 * const root = await transpileForNode(['gateway/server.ts']);
 * const { IdentServer } = await import(join(root, 'gateway/server.js'));
 */
import { mkdir, mkdtemp, readFile, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { PEERS_DIR, REPO_ROOT, run } from './netns.js';

/**
 * Transpiles `entries` (paths relative to the repository root) and every
 * project module they import into a new temporary directory laid out like
 * the repository, and returns that directory. Bare imports (zod, undici)
 * resolve through a symlink to the repository's node_modules.
 *
 * @example
 * const root = await transpileForNode(['gateway/server.ts']);
 */
export async function transpileForNode(entries: readonly string[]): Promise<string> {
  const outRoot = await mkdtemp(join(tmpdir(), 'identgate-interop-'));
  await writeFile(join(outRoot, 'package.json'), '{ "type": "module" }\n');
  await symlink(join(REPO_ROOT, 'node_modules'), join(outRoot, 'node_modules'), 'dir');
  const pending = entries.map((entry) => resolve(REPO_ROOT, entry));
  const done = new Set<string>();
  while (pending.length > 0) {
    const source = pending.pop()!;
    if (done.has(source)) continue;
    done.add(source);
    const text = await readFile(source, 'utf8');
    const output = ts.transpileModule(text, {
      fileName: source,
      compilerOptions: {
        target: ts.ScriptTarget.ES2022,
        // Every project file is an ES module (package.json "type": "module").
        module: ts.ModuleKind.ES2022,
        verbatimModuleSyntax: true,
      },
    });
    const target = join(outRoot, relative(REPO_ROOT, source)).replace(/\.ts$/, '.js');
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, output.outputText);
    for (const imported of ts.preProcessFile(text, true, true).importedFiles) {
      if (!imported.fileName.startsWith('.')) continue;
      pending.push(resolve(dirname(source), imported.fileName).replace(/\.js$/, '.ts'));
    }
  }
  return outRoot;
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
  const args = ['-Wall', '-Wextra', '-O1', '-o', executable, join(PEERS_DIR, `${name}.c`), ...libraries.map((library) => `-l${library}`)];
  const result = await run('cc', args, { timeoutMs: 60_000 });
  if (result.code !== 0) throw new Error(`cc ${args.join(' ')} failed (exit ${result.code}):\n${result.stderr}`);
  return executable;
}
