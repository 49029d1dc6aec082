/**
 * Builds identgate's three native programs for one target: the libuv transport (identgate-uv.node), the
 * sock_diag addon (identgate-sockdiag.node) and the sock_diag helper (identgate-sockdiag), with the hardening
 * flags of gateway/native-build.mjs. In place (no --out) they go where the gateway looks first, dist/ of this
 * package; `--out DIR` puts all three in DIR; `--prebuilds` builds every PREBUILT_TARGETS entry into
 * prebuilds/TAG/, as `npm pack` does (a cross compiler for the other CPU: gcc-aarch64-linux-gnu on x86-64).
 * `identgate build-addons` runs this file (docs/operations.md).
 *
 * @example
 *   node gateway/build-addons.mjs                                   # -> dist/…, as npm run build
 *   node gateway/build-addons.mjs --out /tmp/addons --cc clang
 *   node gateway/build-addons.mjs --prebuilds                       # -> prebuilds/linux-{x64,arm64}-glibc/
 */
import { existsSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildAddon, buildHelper } from './owner/build-helper.mjs';
import { buildTransportAddon } from './server/transport/build-addon.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The prebuilt targets the package ships (gateway/native-addons.ts PREBUILT_TAGS), with the compiler per host CPU. */
export const PREBUILT_TARGETS = [
  { tag: 'linux-x64-glibc', arch: 'x64', crossCc: 'x86_64-linux-gnu-gcc' },
  { tag: 'linux-arm64-glibc', arch: 'arm64', crossCc: 'aarch64-linux-gnu-gcc' },
];

/** What the gateway does without each program (when no prebuilt one fits this machine either). */
const WITHOUT = {
  'native transport': 'the gateway will use node:net',
  'sock_diag addon': 'owner lookup will use the sock_diag helper',
  'sock_diag helper': 'owner lookup will use /proc/net/tcp where the addon does not load',
};

/** Where each program goes: in place (dist/), or in one directory. */
function outputs(out) {
  if (out === undefined) {
    return {
      transport: join(ROOT, 'dist/gateway/server/transport/identgate-uv.node'),
      addon: join(ROOT, 'dist/owner/identgate-sockdiag.node'),
      helper: join(ROOT, 'dist/owner/identgate-sockdiag'),
    };
  }
  const dir = resolve(out);
  return {
    transport: join(dir, 'identgate-uv.node'),
    addon: join(dir, 'identgate-sockdiag.node'),
    helper: join(dir, 'identgate-sockdiag'),
  };
}

/**
 * Builds the three programs with `cc`; one result per program, with the reason when it could not be built.
 *
 * @example
 *   buildAddons({ out: '/tmp/addons' }) // [{ name: 'native transport', path: '/tmp/addons/identgate-uv.node', reason: null }, …]
 */
export function buildAddons({ out, cc = 'cc' } = {}) {
  const to = outputs(out);
  return [
    { name: 'native transport', ...buildTransportAddon({ out: to.transport, cc }) },
    { name: 'sock_diag addon', ...buildAddon({ out: to.addon, cc }) },
    { name: 'sock_diag helper', ...buildHelper({ out: to.helper, cc }) },
  ];
}

/**
 * Builds every prebuilt target into `dir`/TAG/ (a fresh directory each): `cc` for this machine's CPU, the
 * target's cross compiler for the other. Throws naming what could not be built: a package without them
 * would fall back to node:net and /proc on that target.
 *
 * @example
 *   buildPrebuilds({ dir: 'prebuilds' })
 */
export function buildPrebuilds({ dir = join(ROOT, 'prebuilds') } = {}) {
  if (process.platform !== 'linux') throw new Error(`prebuilds are built on Linux (this is ${process.platform})`);
  const failed = [];
  const built = [];
  for (const target of PREBUILT_TARGETS) {
    const cc = target.arch === process.arch ? 'cc' : target.crossCc;
    const out = join(dir, target.tag);
    if (existsSync(out)) rmSync(out, { recursive: true });
    for (const result of buildAddons({ out, cc })) {
      if (result.path) built.push(result.path);
      else failed.push(`${target.tag} ${result.name} (${cc}): ${result.reason}`);
    }
  }
  if (failed.length > 0) {
    throw new Error(
      `cannot build the prebuilt addons:\n  ${failed.join('\n  ')}\n(Debian: apt-get install gcc libc6-dev gcc-aarch64-linux-gnu)`,
    );
  }
  return built;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: { out: { type: 'string' }, cc: { type: 'string' }, prebuilds: { type: 'boolean' } },
  });
  if (values.prebuilds) {
    try {
      for (const path of buildPrebuilds()) console.log(`built ${path}`);
    } catch (error) {
      console.error(error.message);
      process.exitCode = 1;
    }
  } else {
    for (const { name, path, reason } of buildAddons({ out: values.out, cc: values.cc })) {
      console.log(path ? `built ${name}: ${path}` : `${name} not built (${reason}); ${WITHOUT[name]}`);
    }
  }
}
