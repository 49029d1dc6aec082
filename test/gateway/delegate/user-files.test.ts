import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs/promises';
import { chmod, chown, mkdir, mkdtemp, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UserFiles } from '../../../gateway/delegate/user-files.js';

const XDG = '.config/oidentd.conf';
const HOME_FILE = '.oidentd.conf';
const BOTH = [XDG, HOME_FILE];
const isRoot = process.getuid?.() === 0;
const uid = process.getuid!();
/** A uid that is not ours, for files owned by someone else (needs root to chown). */
const OTHER_UID = uid === 0 ? 65534 : uid;

let home: string;
let warnings: [string, string][];
let files: UserFiles;

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'identgate-userfiles-'));
  await chmod(home, 0o755);
  warnings = [];
  files = new UserFiles({
    passwd: { homeDirectory: async (asked) => (asked === uid ? home : null) },
    onWarning: (path, reason) => warnings.push([path, reason]),
  });
});

afterEach(async () => {
  await rm(home, { recursive: true, force: true });
});

async function write(name: string, text: string | Buffer, mode = 0o644): Promise<string> {
  const path = join(home, name);
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, text);
  await chmod(path, mode);
  return path;
}

describe('reading an owner oidentd user file', () => {
  it('reads ~/.oidentd.conf when there is no ~/.config/oidentd.conf', async () => {
    await write(HOME_FILE, 'global { reply "alice" }\n');
    const found = await files.read(uid, BOTH);
    expect(found.status).toBe('ok');
    expect(found.status === 'ok' && found.file.entries[0]!.capability).toEqual({ kind: 'reply', replies: ['alice'] });
  });

  it('prefers ~/.config/oidentd.conf, as oidentd does', async () => {
    await write(HOME_FILE, 'global { reply "old" }\n');
    await write(XDG, 'global { reply "xdg" }\n');
    const found = await files.read(uid, BOTH);
    expect(found.status === 'ok' && found.path).toBe(join(home, XDG));
  });

  it('reads only the files the rule lists', async () => {
    await write(XDG, 'global { reply "xdg" }\n');
    expect((await files.read(uid, [HOME_FILE])).status).toBe('none');
  });

  it('says none when no file exists or the uid has no home', async () => {
    expect(await files.read(uid, BOTH)).toMatchObject({ status: 'none' });
    expect(await files.read(uid + 1, BOTH)).toMatchObject({ status: 'none', reason: /no home directory/ });
  });

  it('parses a file once while it is unchanged and again when it changes', async () => {
    const path = await write(HOME_FILE, 'global { reply "alice" }\n');
    const first = await files.read(uid, [HOME_FILE]);
    expect(await files.read(uid, [HOME_FILE])).toBe(first);
    await writeFile(path, 'global { reply "bobby" }\n');
    const second = await files.read(uid, [HOME_FILE]);
    expect(second).not.toBe(first);
    expect(second.status === 'ok' && second.file.entries[0]!.capability).toEqual({ kind: 'reply', replies: ['bobby'] });
  });

  it('sees a rewrite of the same size within the same second (mtime in nanoseconds, ctime)', async () => {
    const path = await write(HOME_FILE, 'global { reply "alice" }\n');
    await files.read(uid, [HOME_FILE]);
    await writeFile(path, 'global { reply "carol" }\n');
    const when = new Date(1_700_000_000_000);
    await utimes(path, when, when);
    const found = await files.read(uid, [HOME_FILE]);
    expect(found.status === 'ok' && found.file.entries[0]!.capability).toEqual({ kind: 'reply', replies: ['carol'] });
  });

  it('costs one lstat per query while the file is unchanged, and one per listed file until one exists', async () => {
    const calls: string[] = [];
    const counted = new UserFiles({
      passwd: { homeDirectory: async () => home },
      fs: {
        lstat: ((path: string, options: object) => (calls.push('lstat'), fs.lstat(path, options))) as typeof fs.lstat,
        open: ((...args: Parameters<typeof fs.open>) => (calls.push('open'), fs.open(...args))) as typeof fs.open,
        realpath: ((path: string) => (calls.push('realpath'), fs.realpath(path))) as typeof fs.realpath,
      },
    });
    await write(HOME_FILE, 'global { reply "alice" }\n');
    await counted.read(uid, BOTH);
    calls.length = 0;
    for (let i = 0; i < 10; i++) expect((await counted.read(uid, [HOME_FILE])).status).toBe('ok');
    expect(calls).toEqual(new Array(10).fill('lstat'));
    calls.length = 0;
    await counted.read(uid, BOTH);
    expect(calls).toEqual(['lstat', 'lstat']);
  });
});

describe('hostile user files are refused and warned about once per change', () => {
  it('a file that is a symbolic link (even to a file the user owns)', async () => {
    const target = await write('elsewhere.conf', 'global { reply "alice" }\n');
    await symlink(target, join(home, HOME_FILE));
    expect(await files.read(uid, BOTH)).toMatchObject({ status: 'refused', reason: /symbolic link/ });
  });

  it('a ~/.config that links out of the home directory', async () => {
    const outside = await mkdtemp(join(tmpdir(), 'identgate-outside-'));
    try {
      await writeFile(join(outside, 'oidentd.conf'), 'global { reply "alice" }\n');
      await chmod(join(outside, 'oidentd.conf'), 0o644);
      await symlink(outside, join(home, '.config'));
      expect(await files.read(uid, BOTH)).toMatchObject({ status: 'refused', reason: /leads out of the home/ });
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
  });

  it('a group-writable file', async () => {
    await write(HOME_FILE, 'global { reply "alice" }\n', 0o664);
    expect(await files.read(uid, BOTH)).toMatchObject({ status: 'refused', reason: /group- or world-writable/ });
  });

  it('a world-writable file', async () => {
    await write(HOME_FILE, 'global { reply "alice" }\n', 0o646);
    expect(await files.read(uid, BOTH)).toMatchObject({ status: 'refused', reason: /mode 646/ });
  });

  it.runIf(isRoot)('a file read for its owner is still refused for another uid sharing the home', async () => {
    const shared = new UserFiles({ passwd: { homeDirectory: async () => home } });
    await write(HOME_FILE, 'global { reply "alice" }\n');
    expect((await shared.read(uid, BOTH)).status).toBe('ok');
    expect(await shared.read(OTHER_UID, BOTH)).toMatchObject({ status: 'refused', reason: /owned by uid 0/ });
  });

  it('a home it cannot search, warned about once', async () => {
    const noSearch = new UserFiles({
      passwd: { homeDirectory: async () => home },
      fs: {
        ...fs,
        lstat: (async () => {
          throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
        }) as unknown as typeof fs.lstat,
      },
      onWarning: (path, reason) => warnings.push([path, reason]),
    });
    for (let i = 0; i < 3; i++)
      expect(await noSearch.read(uid, [HOME_FILE])).toMatchObject({ status: 'refused', reason: /permission denied/ });
    expect(warnings).toHaveLength(1);
  });

  it.runIf(isRoot)('a file owned by another user', async () => {
    const path = await write(HOME_FILE, 'global { reply "root" }\n');
    await chown(path, OTHER_UID, OTHER_UID);
    expect(await files.read(uid, BOTH)).toMatchObject({ status: 'refused', reason: /owned by uid 65534/ });
  });

  it('a file larger than the cap', async () => {
    const small = new UserFiles({ passwd: { homeDirectory: async () => home }, maxOctets: 64 });
    await write(HOME_FILE, `# ${'x'.repeat(100)}\nglobal { reply "alice" }\n`);
    expect(await small.read(uid, BOTH)).toMatchObject({ status: 'refused', reason: /larger than 64 octets/ });
  });

  it('a binary file', async () => {
    await write(HOME_FILE, Buffer.from([0x67, 0x6c, 0x00, 0xff, 0xfe, 0x01]));
    expect(await files.read(uid, BOTH)).toMatchObject({ status: 'broken', reason: /NUL/ });
  });

  it('a directory in its place', async () => {
    await mkdir(join(home, HOME_FILE));
    expect(await files.read(uid, BOTH)).toMatchObject({ status: 'refused', reason: /not a regular file/ });
  });

  it('a FIFO in its place (never opened, so never waited on)', async () => {
    execFileSync('mkfifo', ['-m', '644', join(home, HOME_FILE)]);
    expect(await files.read(uid, BOTH)).toMatchObject({ status: 'refused', reason: /not a regular file/ });
  });

  it('a file that does not parse, warned once until it changes', async () => {
    const path = await write(HOME_FILE, 'lport undefined { reply "alice" }\n');
    for (let i = 0; i < 3; i++)
      expect(await files.read(uid, BOTH)).toMatchObject({ status: 'broken', reason: /line 1: bad port "undefined"/ });
    expect(warnings).toEqual([[path, expect.stringMatching(/bad port/)]]);
    await writeFile(path, 'lport 0x10 { reply "alice" }\n');
    await files.read(uid, BOTH);
    expect(warnings).toHaveLength(2);
  });
});
