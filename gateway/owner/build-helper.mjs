/**
 * Builds the two sock_diag owner-lookup programs with the system C compiler:
 * the Node-API addon (gateway/owner/sockdiag-addon.c) into
 * dist/owner/identgate-sockdiag.node, which the gateway loads to ask the
 * kernel in-process, and the helper process (gateway/owner/sockdiag-helper.c)
 * into dist/owner/identgate-sockdiag, used where the addon does not load. The
 * addon needs Node's headers (node_api.h, shipped in <prefix>/include/node
 * with every Node install); no node-gyp and no download are involved, and
 * Node-API keeps one build good for Node 20, 22 and 24. It is meant to run
 * from `npm run build` and never fails the build: what cannot be built here
 * is named in one line, and the gateway's `auto` owner lookup uses the next
 * way (helper, then /proc/net/tcp). `--out PATH` builds the helper at PATH
 * and the addon at PATH.node (the tests build into a temporary directory).
 *
 * @example
 *   node gateway/owner/build-helper.mjs              # -> dist/owner/identgate-sockdiag{,.node}
 *   node gateway/owner/build-helper.mjs --out /tmp/identgate-sockdiag
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const SOURCE = fileURLToPath(new URL('./sockdiag-helper.c', import.meta.url));
const ADDON_SOURCE = fileURLToPath(new URL('./sockdiag-addon.c', import.meta.url));
const DEFAULT_OUT = fileURLToPath(new URL('../../dist/owner/identgate-sockdiag', import.meta.url));

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

/**
 * Compiles the helper. Returns the binary's path, or null (with the reason)
 * when this machine cannot build it.
 *
 * @example
 *   const { path, reason } = buildHelper({ out: '/tmp/identgate-sockdiag' });
 */
export function buildHelper({ out = DEFAULT_OUT, cc = 'cc' } = {}) {
  if (process.platform !== 'linux')
    return { path: null, reason: `sock_diag is Linux-only (platform ${process.platform})` };
  return compile(cc, ['-O2', '-Wall', SOURCE], out);
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

/**
 * Compiles the Node-API addon. Returns its path, or null (with the reason)
 * when this machine cannot build it.
 *
 * @example
 *   const { path, reason } = buildAddon({ out: '/tmp/identgate-sockdiag.node' });
 */
export function buildAddon({ out = `${DEFAULT_OUT}.node`, cc = 'cc' } = {}) {
  if (process.platform !== 'linux')
    return { path: null, reason: `sock_diag is Linux-only (platform ${process.platform})` };
  const include = nodeIncludeDir();
  if (include === null)
    return { path: null, reason: `no node_api.h under ${resolve(dirname(process.execPath), '..', 'include', 'node')}` };
  return compile(cc, ['-O2', '-Wall', '-shared', '-fPIC', `-I${include}`, ADDON_SOURCE], out);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { out: { type: 'string' }, cc: { type: 'string' } } });
  const out = values.out ?? DEFAULT_OUT;
  const cc = values.cc ?? 'cc';
  const addon = buildAddon({ out: `${out}.node`, cc });
  const helper = buildHelper({ out, cc });
  if (addon.path) console.log(`owner lookup: built sock_diag addon ${addon.path}`);
  else
    console.log(`owner lookup: sock_diag addon not built (${addon.reason}); owner lookup will use the helper process`);
  if (helper.path) console.log(`owner lookup: built sock_diag helper ${helper.path}`);
  else
    console.log(
      `owner lookup: sock_diag helper not built (${helper.reason})${addon.path ? '' : '; owner lookup will use /proc/net/tcp'}`,
    );
}
