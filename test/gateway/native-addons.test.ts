import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { currentTarget, locateNative, targetTag } from '../../gateway/native-addons.js';

const roots: string[] = [];
afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

/** A package root holding these files (relative paths). */
function packageWith(files: string[]): string {
  const root = mkdtempSync(join(tmpdir(), 'identgate-native-'));
  roots.push(root);
  for (const file of files) {
    mkdirSync(join(root, file, '..'), { recursive: true });
    writeFileSync(join(root, file), '');
  }
  return root;
}

const X64 = { platform: 'linux', arch: 'x64', libc: 'glibc' } as const;
const ARM64 = { platform: 'linux', arch: 'arm64', libc: 'glibc' } as const;
const MUSL = { platform: 'linux', arch: 'x64', libc: 'musl' } as const;
const PREBUILT = ['linux-x64-glibc', 'linux-arm64-glibc'].flatMap((tag) => [
  `prebuilds/${tag}/identgate-uv.node`,
  `prebuilds/${tag}/identgate-sockdiag.node`,
]);

describe('locateNative', () => {
  it('takes the prebuilt program of this platform, CPU and C library', () => {
    const root = packageWith(PREBUILT);
    expect(locateNative('identgate-uv.node', { root, target: X64 }).path).toBe(
      `${root}/prebuilds/linux-x64-glibc/identgate-uv.node`,
    );
    expect(locateNative('identgate-sockdiag.node', { root, target: ARM64 }).path).toBe(
      `${root}/prebuilds/linux-arm64-glibc/identgate-sockdiag.node`,
    );
  });

  it('prefers the one built on this machine into dist/', () => {
    const root = packageWith([...PREBUILT, 'dist/gateway/server/transport/identgate-uv.node']);
    expect(locateNative('identgate-uv.node', { root, target: X64 }).path).toBe(
      `${root}/dist/gateway/server/transport/identgate-uv.node`,
    );
  });

  it('names the target and the prebuilt ones when none fits (musl)', () => {
    const root = packageWith(PREBUILT);
    expect(locateNative('identgate-uv.node', { root, target: MUSL })).toEqual({
      path: null,
      reason: `identgate-uv.node is neither built here (${root}/dist/gateway/server/transport/identgate-uv.node) nor prebuilt for linux-x64-musl (this package has linux-arm64-glibc, linux-x64-glibc); \`identgate build-addons\` builds it with a C compiler`,
    });
  });

  it("tells this process's target by its platform, CPU and the C library Node runs on", () => {
    expect(targetTag(currentTarget())).toBe(`${process.platform}-${process.arch}-glibc`);
    expect(targetTag({ platform: 'darwin', arch: 'arm64', libc: null })).toBe('darwin-arm64');
  });
});
