/**
 * The C code as `npm run build` ships it (dist/, built by pretest): every
 * binary has full RELRO with immediate binding, the stack protector and
 * FORTIFY's checked calls, and the helper is a position-independent
 * executable; the sources compile without a warning under the shared flags
 * (gateway/native-build.mjs). Read with readelf (binutils), as an operator would.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { cFlags, nodeIncludeDir } from '../../gateway/native-build.mjs';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const HELPER = join(ROOT, 'dist/owner/identgate-sockdiag');
const BINARIES = [
  join(ROOT, 'dist/gateway/server/transport/identgate-uv.node'),
  join(ROOT, 'dist/owner/identgate-sockdiag.node'),
  HELPER,
];

function readelf(flags: string, file: string): string {
  return execFileSync('readelf', ['-W', flags, file], { encoding: 'utf8' });
}

/** The undefined dynamic symbols a binary takes from libc. */
function importedSymbols(file: string): string[] {
  return readelf('--dyn-syms', file)
    .split('\n')
    .filter((line) => line.includes(' UND '))
    .map((line) => line.trim().split(/\s+/)[7]?.replace(/@.*/, '') ?? '');
}

describe.each(BINARIES.map((file) => [file.slice(ROOT.length), file]))('%s', (_name, file) => {
  it('binds every symbol at load time (BIND_NOW, FLAGS_1 NOW)', () => {
    const dynamic = readelf('-d', file);
    expect(dynamic).toMatch(/\(FLAGS\)\s+BIND_NOW/);
    expect(dynamic).toMatch(/\(FLAGS_1\)\s+Flags:.*\bNOW\b/);
  });

  it('has its relocations read-only after loading (a GNU_RELRO segment)', () => {
    expect(readelf('-l', file)).toMatch(/^\s*GNU_RELRO\s/m);
  });

  it('calls the stack protector', () => {
    expect(importedSymbols(file)).toContain('__stack_chk_fail');
  });
});

describe('the build', () => {
  it('makes the helper a position-independent executable (DYN, FLAGS_1 PIE)', () => {
    expect(readelf('-h', HELPER)).toMatch(/Type:\s+DYN \(Position-Independent Executable/);
    expect(readelf('-d', HELPER)).toMatch(/\(FLAGS_1\)\s+Flags:.*\bPIE\b/);
  });

  it('uses FORTIFY: the transport and the helper call checked __*_chk functions', () => {
    for (const file of [BINARIES[0]!, HELPER]) {
      expect(
        importedSymbols(file).filter((name) => /^__\w+_chk$/.test(name) && name !== '__stack_chk_fail'),
      ).not.toEqual([]);
    }
  });

  const scratch = mkdtempSync(join(tmpdir(), 'identgate-cflags-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it.each([
    ['gateway/server/transport/uv-tcp.c', 'shared'],
    ['gateway/owner/sockdiag-addon.c', 'shared'],
    ['gateway/owner/sockdiag-helper.c', 'executable'],
  ] as const)('compiles %s without a warning under the shared flags', (source, output) => {
    const include = output === 'shared' ? [`-I${nodeIncludeDir()}`] : [];
    const flags = [...cFlags({ cc: 'cc', output, sanitize: false }), '-Werror'];
    execFileSync('cc', [...flags, ...include, join(ROOT, source), '-o', join(scratch, 'out')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  });
});
