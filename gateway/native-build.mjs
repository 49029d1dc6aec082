/**
 * How identgate's C code is compiled, in one place for both build scripts
 * (gateway/owner/build-helper.mjs, gateway/server/transport/build-addon.mjs):
 * the hardening flags every build gets, the sanitizer build of
 * `npm run test:sanitize`, the compile step itself and where Node's headers are.
 *
 * @example
 *   compile('cc', [...cFlags({ cc: 'cc', output: 'shared' }), `-I${nodeIncludeDir()}`, source], out);
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/**
 * Hardening for every build: the stack protector, FORTIFY (level 3 where the
 * compiler has __builtin_dynamic_object_size, else 2; both need optimisation),
 * stack-clash probes, full RELRO with immediate binding, and the warnings the
 * code is kept clean of.
 */
const WARNINGS = ['-Wall', '-Wextra', '-Wformat=2'];
const CODEGEN = ['-fstack-protector-strong', '-fstack-clash-protection'];
const LINK = ['-Wl,-z,relro,-z,now'];

/** The sanitizer build (test:sanitize): -O1 keeps reports readable, and any report is fatal. */
const SANITIZE = ['-fsanitize=address,undefined', '-fno-sanitize-recover=all', '-fno-omit-frame-pointer', '-g'];

/** Memoised per compiler: the FORTIFY level it supports. */
const fortifyLevels = new Map();

/** 3 when `cc` has __builtin_dynamic_object_size (GCC 12, Clang 9 and later), else 2. */
export function fortifyLevel(cc = 'cc') {
  let level = fortifyLevels.get(cc);
  if (level !== undefined) return level;
  const probe = '#if !defined(__has_builtin) || !__has_builtin(__builtin_dynamic_object_size)\n#error no\n#endif\n';
  try {
    execFileSync(cc, ['-x', 'c', '-fsyntax-only', '-'], { input: probe, stdio: ['pipe', 'ignore', 'ignore'] });
    level = 3;
  } catch {
    level = 2;
  }
  fortifyLevels.set(cc, level);
  return level;
}

/**
 * The compiler flags for one output: 'shared' (a Node-API addon, -fPIC) or
 * 'executable' (a position-independent executable). `sanitize` builds with
 * AddressSanitizer and UndefinedBehaviorSanitizer instead of FORTIFY (the two
 * do not mix: FORTIFY's checked calls hide accesses from ASan); it defaults to
 * on when IDENTGATE_BUILD_SANITIZE=1 (set by test/sanitize/run.mjs, so that
 * tests which build their own copies build sanitized ones too).
 *
 * @example
 *   cFlags({ cc: 'cc', output: 'executable' })
 */
export function cFlags({ cc = 'cc', output, sanitize = process.env.IDENTGATE_BUILD_SANITIZE === '1' }) {
  const position = output === 'shared' ? ['-shared', '-fPIC'] : ['-fPIE', '-pie'];
  const checks = sanitize
    ? ['-O1', ...SANITIZE]
    : ['-O2', '-U_FORTIFY_SOURCE', `-D_FORTIFY_SOURCE=${fortifyLevel(cc)}`];
  return [...checks, ...WARNINGS, ...CODEGEN, ...position, ...LINK];
}

/** Runs the compiler into a temporary file, then renames it: a running gateway never sees half a binary. */
export function compile(cc, args, out) {
  const target = resolve(out);
  const partial = `${target}.${process.pid}.tmp`;
  try {
    mkdirSync(dirname(target), { recursive: true });
    execFileSync(cc, [...args, '-o', partial], { stdio: ['ignore', 'ignore', 'pipe'] });
    renameSync(partial, target);
    return { path: target, reason: null };
  } catch (error) {
    rmSync(partial, { force: true });
    const detail =
      error.code === 'ENOENT'
        ? `no C compiler (${cc})`
        : String(error.stderr ?? error.message)
            .trim()
            .split('\n')[0];
    return { path: null, reason: detail };
  }
}

/** The directory holding node_api.h for the Node running this script, or null. */
export function nodeIncludeDir() {
  const prefixes = [
    resolve(dirname(process.execPath), '..'),
    process.config?.variables?.node_prefix,
    '/usr/local',
    '/usr',
  ];
  for (const prefix of prefixes) {
    if (typeof prefix !== 'string') continue;
    const dir = join(prefix, 'include', 'node');
    if (existsSync(join(dir, 'node_api.h'))) return dir;
  }
  return null;
}
