#!/usr/bin/env node
/**
 * `npm run test:sanitize`: the C code (the native transport, the sock_diag
 * addon and helper) built with AddressSanitizer and UndefinedBehaviorSanitizer
 * into a separate tree, and the suites that drive it run there with the
 * sanitizer runtimes preloaded into every process (Node is not built with
 * ASan, so its addons need libasan loaded first). Any report fails the run:
 * a sanitizer aborts the process it finds a fault in (halt_on_error), and
 * afterwards the run looks for reports in the suites' output (UBSan writes to
 * stderr only) and in the tree's reports/ directory, where ASan writes the
 * reports of test processes and of their children (a helper, a CLI) alike.
 *
 * The tree: the checkout's files (tracked and new, not ignored) copied into
 * build/sanitize/ (or --out DIR) with node_modules linked, then built there
 * with IDENTGATE_BUILD_SANITIZE=1 (gateway/native-build.mjs), so the tests
 * find the sanitized binaries in that tree's dist/ as they find the normal ones.
 *
 * @example
 *   npm run test:sanitize
 *   node test/sanitize/run.mjs --fuzz-seconds 5 --out /tmp/identgate-sanitize
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = resolve(fileURLToPath(new URL('../../', import.meta.url)));

/** The suites that drive the C code: transport contract, server behaviour, hostile, owner lookup. */
const SUITES = [
  'test/gateway/server/transport.test.ts',
  'test/gateway/server/transport-teardown.test.ts',
  'test/gateway/server/basics.test.ts',
  'test/gateway/server/faults.test.ts',
  'test/gateway/server/halfclose.test.ts',
  'test/gateway/server/invalid.test.ts',
  'test/gateway/server/ipv6.test.ts',
  'test/gateway/server/ipv6-prefix.test.ts',
  'test/gateway/server/limits.test.ts',
  'test/gateway/server/nodelay.test.ts',
  'test/gateway/server/order.test.ts',
  'test/hostile',
  'test/gateway/owner',
];
// Not here: test/gateway/server/transport-faults.test.ts preloads its own calloc, which ASan's would shadow.

const { values } = parseArgs({
  options: {
    out: { type: 'string', default: join(ROOT, 'build', 'sanitize') },
    'fuzz-seconds': { type: 'string', default: '20' },
    cc: { type: 'string', default: 'cc' },
  },
});
const OUT = resolve(values.out);
/** The first line of a sanitizer's report. */
const SANITIZER_REPORT = /^.*(?:ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer).*$/gm;
const REPORTS = join(OUT, 'reports');

function fail(message) {
  console.error(`test:sanitize: ${message}`);
  process.exit(1);
}

/** The shared runtime the compiler links sanitized code against, for LD_PRELOAD. */
function runtime(name) {
  const path = execFileSync(values.cc, [`-print-file-name=${name}`], { encoding: 'utf8' }).trim();
  if (!path.startsWith('/') || !existsSync(path))
    fail(
      `${values.cc} has no ${name} (install the compiler's sanitizer runtimes: libasan8 and libubsan1 on Debian 12)`,
    );
  return path;
}

const started = performance.now();
const preload = [runtime('libasan.so'), runtime('libubsan.so')].join(':');

// ---- the tree ----
if (OUT === ROOT || ROOT.startsWith(`${OUT}/`)) fail(`--out ${OUT} would overwrite the checkout`);
rmSync(OUT, { recursive: true, force: true });
mkdirSync(REPORTS, { recursive: true });
const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
  cwd: ROOT,
  encoding: 'utf8',
})
  .split('\0')
  // node_modules: linked below (a node_modules symlink is not matched by the ignore rule for the directory).
  .filter((file) => file && !/^(build|node_modules)(\/|$)/.test(file) && existsSync(join(ROOT, file)));
for (const file of files) {
  mkdirSync(dirname(join(OUT, file)), { recursive: true });
  cpSync(join(ROOT, file), join(OUT, file));
}
symlinkSync(join(ROOT, 'node_modules'), join(OUT, 'node_modules'));

const buildEnv = { ...process.env, IDENTGATE_BUILD_SANITIZE: '1' };
const build = spawnSync('npm', ['run', 'build'], { cwd: OUT, env: buildEnv, encoding: 'utf8' });
if (build.status !== 0) fail(`the sanitized build failed:\n${build.stdout}${build.stderr}`);
for (const built of [
  'dist/gateway/server/transport/identgate-uv.node',
  'dist/owner/identgate-sockdiag.node',
  'dist/owner/identgate-sockdiag',
]) {
  const symbols = execFileSync('nm', ['-D', join(OUT, built)], { encoding: 'utf8' });
  if (!symbols.includes('__asan_')) fail(`${built} was not built with AddressSanitizer:\n${build.stdout}`);
}
console.log(`test:sanitize: built with -fsanitize=address,undefined into ${OUT}/dist`);

// ---- the suites, under the runtimes ----
const env = {
  ...buildEnv,
  LD_PRELOAD: preload,
  // Node itself is not instrumented and keeps allocations until exit: leak checking would only report Node.
  ASAN_OPTIONS: `detect_leaks=0:halt_on_error=1:abort_on_error=1:alloc_dealloc_mismatch=0:log_path=${REPORTS}/asan`,
  UBSAN_OPTIONS: `halt_on_error=1:abort_on_error=1:print_stacktrace=1:log_path=${REPORTS}/ubsan`,
  IDENTGATE_FUZZ_SECONDS: values['fuzz-seconds'],
  // Instrumented code is several times slower by design: the hostile suites' latency bounds scale by this.
  IDENTGATE_TEST_SLOWDOWN: '5',
};
const vitest = spawnSync(
  process.execPath,
  [
    join(ROOT, 'node_modules/vitest/vitest.mjs'),
    'run',
    '--project',
    'node',
    '--reporter',
    'dot',
    // Latency bounds are npm test's to check: instrumented code is several times slower by design.
    '--testNamePattern',
    '^(?!.*under 200 ms p99).*$',
    ...SUITES,
  ],
  { cwd: OUT, env, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 },
);
process.stdout.write(vitest.stdout ?? '');
process.stderr.write(vitest.stderr ?? '');

const reportFiles = readdirSync(REPORTS).map((name) => join(REPORTS, name));
for (const report of reportFiles) console.error(`==== ${report}\n${readFileSync(report, 'utf8')}`);
const printed = `${vitest.stdout ?? ''}${vitest.stderr ?? ''}`.match(SANITIZER_REPORT) ?? [];
const reports = [...reportFiles, ...new Set(printed)];
const seconds = ((performance.now() - started) / 1000).toFixed(1);
const counts = /Tests\s+(.*\(\d+\))/.exec((vitest.stdout ?? '').replace(/\x1b\[[0-9;]*m/g, ''))?.[1] ?? 'unknown';
console.log(`test:sanitize: ${counts}; ${reports.length} sanitizer report(s); ${seconds} s`);
if (reports.length > 0) fail(`${reports.length} sanitizer report(s) above`);
if (vitest.status !== 0) fail(`the suites failed (exit ${vitest.status ?? vitest.signal})`);
