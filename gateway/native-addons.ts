/**
 * Where this package's native programs are: built on this machine into dist/ (`npm run build`, `identgate
 * build-addons`), else prebuilt for this platform, CPU and C library under prebuilds/TAG/ (made by `npm pack`).
 * When neither is there, the reason names this machine's TAG and the ones the package has (docs/operations.md).
 */
import { readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The three native programs: the libuv transport, the sock_diag addon and the sock_diag helper. */
export type NativeProgram = 'identgate-uv.node' | 'identgate-sockdiag.node' | 'identgate-sockdiag';

/** The targets `npm pack` builds (gateway/build-addons.mjs PREBUILT_TARGETS). */
export const PREBUILT_TAGS = ['linux-x64-glibc', 'linux-arm64-glibc'] as const;

export interface NativeTarget {
  platform: string;
  arch: string;
  /** 'glibc' or 'musl' on Linux; null elsewhere. */
  libc: 'glibc' | 'musl' | null;
}

/** Where `npm run build` puts each program, relative to the package root. */
const BUILT_HERE: Record<NativeProgram, string> = {
  'identgate-uv.node': 'dist/gateway/server/transport/identgate-uv.node',
  'identgate-sockdiag.node': 'dist/owner/identgate-sockdiag.node',
  'identgate-sockdiag': 'dist/owner/identgate-sockdiag',
};

export type NativeLocation = { path: string; reason?: undefined } | { path: null; reason: string };

let current: NativeTarget | undefined;

/**
 * This process's target. The C library is the one this Node was linked with (glibc reports its version in
 * process.report; a Linux Node without it is taken to be musl).
 *
 * @example
 * currentTarget() // { platform: 'linux', arch: 'x64', libc: 'glibc' }
 */
export function currentTarget(): NativeTarget {
  if (current === undefined) {
    let libc: NativeTarget['libc'] = null;
    if (process.platform === 'linux') {
      const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
      libc = header?.glibcVersionRuntime ? 'glibc' : 'musl';
    }
    current = { platform: process.platform, arch: process.arch, libc };
  }
  return current;
}

/** `linux-x64-glibc`; `darwin-arm64` where there is no libc to tell apart. */
export function targetTag(target: NativeTarget): string {
  return [target.platform, target.arch, target.libc].filter((part) => part !== null).join('-');
}

/** The package root: two folders up from dist/gateway/ (built), one from gateway/ (the source tree, in tests). */
export function packageRoot(): string {
  const built = fileURLToPath(import.meta.url).includes('/dist/gateway/');
  return fileURLToPath(new URL(built ? '../../' : '../', import.meta.url));
}

/**
 * The program to load: dist/'s copy when one was built here, else prebuilds/TAG/'s for `target`, else null with
 * the reason in one phrase.
 *
 * @example
 * locateNative('identgate-uv.node') // { path: '/usr/lib/node_modules/identgate/prebuilds/linux-x64-glibc/identgate-uv.node' }
 */
export function locateNative(
  program: NativeProgram,
  options: { target?: NativeTarget; root?: string } = {},
): NativeLocation {
  const root = options.root ?? packageRoot();
  const base = root.endsWith('/') ? root : `${root}/`;
  const built = `${base}${BUILT_HERE[program]}`;
  if (isFile(built)) return { path: built };
  const tag = targetTag(options.target ?? currentTarget());
  const prebuilds = `${base}prebuilds`;
  const prebuilt = `${prebuilds}/${tag}/${program}`;
  if (isFile(prebuilt)) return { path: prebuilt };
  const shipped = listDir(prebuilds).filter((dir) => isFile(`${prebuilds}/${dir}/${program}`));
  return {
    path: null,
    reason: `${program} is neither built here (${built}) nor prebuilt for ${tag} (${shipped.length > 0 ? `this package has ${shipped.join(', ')}` : 'this package has no prebuilds'}); \`identgate build-addons\` builds it with a C compiler`,
  };
}

/**
 * By stat() rather than access(): access() checks the real user without capabilities, so a process running as
 * another user with CAP_DAC_READ_SEARCH would see nothing (the loader then says what is wrong).
 */
function isFile(path: string): boolean {
  try {
    return statSync(path, { throwIfNoEntry: false })?.isFile() ?? false;
  } catch {
    return false;
  }
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}
