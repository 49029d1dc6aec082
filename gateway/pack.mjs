/**
 * `npm pack` / `npm publish` around the package: `prepack` checks that dist/ is built from the current sources,
 * builds the prebuilt addons (gateway/build-addons.mjs --prebuilds) and gives the tarball a package.json whose
 * scripts use only files the package ships; `postpack` puts the repository's package.json back.
 *
 * @example
 *   node gateway/pack.mjs prepack
 *   node gateway/pack.mjs postpack
 */
import { existsSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildPrebuilds } from './build-addons.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MANIFEST = join(ROOT, 'package.json');
const BACKUP = join(ROOT, 'package.json.before-pack');

/** The scripts an installed package keeps: each runs files the package ships (test/package/pack.test.ts checks). */
const CONSUMER_SCRIPTS = {
  start: 'node dist/gateway/cli/main.js serve --listen 127.0.0.1:1113 --policy examples/policy.json',
  'build-addons': 'node gateway/build-addons.mjs',
};

/** The newest modification time under `dir` of files ending in one of `suffixes`. */
function newest(dir, suffixes) {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !suffixes.some((suffix) => entry.name.endsWith(suffix))) continue;
    latest = Math.max(latest, statSync(join(entry.parentPath ?? entry.path, entry.name)).mtimeMs);
  }
  return latest;
}

function prepack() {
  if (existsSync(BACKUP)) renameSync(BACKUP, MANIFEST); // a pack that died before postpack
  const entry = join(ROOT, 'dist/gateway/cli/main.js');
  if (!existsSync(entry)) throw new Error('dist/ is not built: run `npm run build` before `npm pack`');
  const built = statSync(entry).mtimeMs;
  const sources = Math.max(...['gateway', 'worker', 'protocol'].map((dir) => newest(join(ROOT, dir), ['.ts', '.tsx'])));
  if (sources > built) throw new Error('dist/ is older than the sources: run `npm run build` before `npm pack`');
  for (const path of buildPrebuilds()) console.log(`prebuilt ${path.slice(ROOT.length)}`);
  const text = readFileSync(MANIFEST, 'utf8');
  const { scripts: _scripts, devDependencies: _dev, ...manifest } = JSON.parse(text);
  writeFileSync(BACKUP, text);
  writeFileSync(MANIFEST, `${JSON.stringify({ ...manifest, scripts: CONSUMER_SCRIPTS }, null, 2)}\n`);
}

function postpack() {
  if (existsSync(BACKUP)) renameSync(BACKUP, MANIFEST);
}

const step = process.argv[2];
try {
  if (step === 'prepack') prepack();
  else if (step === 'postpack') postpack();
  else throw new Error(`usage: node gateway/pack.mjs prepack|postpack (not ${step})`);
} catch (error) {
  console.error(`npm pack: ${error.message}`);
  process.exitCode = 1;
}
