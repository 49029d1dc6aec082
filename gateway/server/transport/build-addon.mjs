/**
 * Builds the native transport (gateway/server/transport/uv-tcp.c) with the system C
 * compiler into dist/gateway/server/transport/identgate-uv.node, next to the module
 * that loads it. Like the owner-lookup addon it needs only Node's own headers
 * (node_api.h and uv.h in <prefix>/include/node): no node-gyp, no download.
 * It never fails the build: what cannot be built here is named in one line,
 * and IdentServer's `auto` transport then uses node:net. The compiler flags
 * (hardening, the sanitizer build) are gateway/native-build.mjs's.
 *
 * @example
 *   node gateway/server/transport/build-addon.mjs                 # -> dist/gateway/server/transport/identgate-uv.node
 *   node gateway/server/transport/build-addon.mjs --out /tmp/identgate-uv.node
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cFlags, compile, nodeIncludeDir } from '../../native-build.mjs';

const SOURCE = fileURLToPath(new URL('./uv-tcp.c', import.meta.url));
const DEFAULT_OUT = fileURLToPath(new URL('../../../dist/gateway/server/transport/identgate-uv.node', import.meta.url));

/**
 * Compiles the addon. Returns its path, or null (with the reason) when this
 * machine cannot build it.
 *
 * @example
 *   const { path, reason } = buildTransportAddon({ out: '/tmp/identgate-uv.node' });
 */
export function buildTransportAddon({ out = DEFAULT_OUT, cc = 'cc' } = {}) {
  if (process.platform === 'win32')
    return { path: null, reason: 'the native transport is built for POSIX systems only' };
  const include = nodeIncludeDir();
  if (include === null || !include) return { path: null, reason: 'no node_api.h next to this Node' };
  return compile(cc, [...cFlags({ cc, output: 'shared' }), `-I${include}`, SOURCE], out);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { out: { type: 'string' }, cc: { type: 'string' } } });
  const { path, reason } = buildTransportAddon({ out: values.out ?? DEFAULT_OUT, cc: values.cc ?? 'cc' });
  if (path) console.log(`transport: built native transport ${path}`);
  else console.log(`transport: native transport not built (${reason}); the gateway will use node:net`);
}
