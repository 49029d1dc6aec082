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
 * The compiler flags (hardening, the sanitizer build) are gateway/native-build.mjs's.
 *
 * @example
 *   node gateway/owner/build-helper.mjs              # -> dist/owner/identgate-sockdiag{,.node}
 *   node gateway/owner/build-helper.mjs --out /tmp/identgate-sockdiag
 */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cFlags, compile, nodeIncludeDir } from '../native-build.mjs';

const SOURCE = fileURLToPath(new URL('./sockdiag-helper.c', import.meta.url));
const ADDON_SOURCE = fileURLToPath(new URL('./sockdiag-addon.c', import.meta.url));
const DEFAULT_OUT = fileURLToPath(new URL('../../dist/owner/identgate-sockdiag', import.meta.url));

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
  return compile(cc, [...cFlags({ cc, output: 'executable' }), SOURCE], out);
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
  return compile(cc, [...cFlags({ cc, output: 'shared' }), `-I${include}`, ADDON_SOURCE], out);
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
