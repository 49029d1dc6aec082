/**
 * Builds the sock_diag owner-lookup helper (gateway/owner/sockdiag-helper.c)
 * into dist/owner/identgate-sockdiag with the system C compiler. It is meant
 * to run from `npm run build` and never fails the build: without Linux or a
 * compiler it prints one line and exits 0, and the gateway's `auto` owner
 * lookup then falls back to scanning /proc/net/tcp. `--out PATH` builds
 * somewhere else (the tests build into a temporary directory).
 *
 * @example
 *   node gateway/owner/build-helper.mjs              # -> dist/owner/identgate-sockdiag
 *   node gateway/owner/build-helper.mjs --out /tmp/identgate-sockdiag
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const SOURCE = fileURLToPath(new URL('./sockdiag-helper.c', import.meta.url));
const DEFAULT_OUT = fileURLToPath(new URL('../../dist/owner/identgate-sockdiag', import.meta.url));

/**
 * Compiles the helper. Returns the binary's path, or to null (with the
 * reason) when this machine cannot build it.
 *
 * @example
 *   const { path, reason } = buildHelper({ out: '/tmp/identgate-sockdiag' });
 */
export function buildHelper({ out = DEFAULT_OUT, cc = 'cc' } = {}) {
  if (process.platform !== 'linux') return { path: null, reason: `sock_diag is Linux-only (platform ${process.platform})` };
  const target = resolve(out);
  const partial = `${target}.${process.pid}.tmp`;
  try {
    mkdirSync(dirname(target), { recursive: true });
    execFileSync(cc, ['-O2', '-Wall', '-o', partial, SOURCE], { stdio: ['ignore', 'ignore', 'pipe'] });
    renameSync(partial, target); // atomic: a running gateway never sees half a binary
    return { path: target, reason: null };
  } catch (error) {
    rmSync(partial, { force: true });
    const detail = error.code === 'ENOENT' ? `no C compiler (${cc})` : String(error.stderr ?? error.message).trim().split('\n')[0];
    return { path: null, reason: detail };
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { out: { type: 'string' }, cc: { type: 'string' } } });
  const { path, reason } = buildHelper({ out: values.out ?? DEFAULT_OUT, cc: values.cc ?? 'cc' });
  if (path) console.log(`owner lookup: built sock_diag helper ${path}`);
  else console.log(`owner lookup: sock_diag helper not built (${reason}); owner lookup will use /proc/net/tcp`);
}
