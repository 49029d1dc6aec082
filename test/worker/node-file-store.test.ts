import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileStoreError, openFileStore, type FileStore } from '../../worker/stores/file.js';
import { parsePolicy } from '../../worker/policy/index.js';
import { createApp } from '../../worker/app.js';
import { TEST_POLICY, adminRequest } from './workerd/fixtures.js';

const OTHER_POLICY = { version: 1, rules: [], default: { action: { userId: 'anonymous' } } };

/** Collects log entries and lets a test await the next one with a given msg. */
function recorder() {
  const entries: Record<string, unknown>[] = [];
  const waiters: { msg: string; resolve: (entry: Record<string, unknown>) => void }[] = [];
  return {
    entries,
    log(entry: Record<string, unknown>) {
      entries.push(entry);
      for (const waiter of waiters.splice(0)) {
        if (waiter.msg === entry.msg) waiter.resolve(entry);
        else waiters.push(waiter);
      }
    },
    next(msg: string): Promise<Record<string, unknown>> {
      return new Promise((resolve) => waiters.push({ msg, resolve }));
    },
  };
}

let dir: string;
let file: string;
let store: FileStore | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'identgate-policy-'));
  file = join(dir, 'policy.json');
});

afterEach(async () => {
  store?.close();
  store = undefined;
  await rm(dir, { recursive: true, force: true });
});

describe('openFileStore', () => {
  it('fails with a one-line ERR_POLICY_FILE_READ naming the file when it is missing', async () => {
    const error = await openFileStore(file).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(FileStoreError);
    expect((error as FileStoreError).code).toBe('ERR_POLICY_FILE_READ');
    expect((error as Error).message).toBe(`cannot read policy file ${file}: no such file`);
  });

  it('fails with ERR_POLICY_FILE_INVALID naming the bad field when the file is not a valid policy', async () => {
    await writeFile(file, JSON.stringify({ ...TEST_POLICY, default: { action: { error: 'NOPE' } } }));
    const error = (await openFileStore(file).catch((caught: unknown) => caught)) as FileStoreError;
    expect(error.code).toBe('ERR_POLICY_FILE_INVALID');
    expect(error.message).toContain('default.action.error');
    expect(error.message).not.toContain('\n');
  });

  it('fails with ERR_POLICY_FILE_INVALID when the file is not JSON', async () => {
    await writeFile(file, '{ version: 1');
    const error = (await openFileStore(file).catch((caught: unknown) => caught)) as FileStoreError;
    expect(error.code).toBe('ERR_POLICY_FILE_INVALID');
  });

  it('serves the policy in the file', async () => {
    await writeFile(file, JSON.stringify(TEST_POLICY));
    store = await openFileStore(file, { watch: false });
    expect((await store.current()).policy).toEqual(parsePolicy(TEST_POLICY));
  });
});

describe('file store reloads', () => {
  it('takes a changed file without being asked', async () => {
    await writeFile(file, JSON.stringify(TEST_POLICY));
    const log = recorder();
    store = await openFileStore(file, { log: log.log, debounceMs: 20 });
    const before = (await store.current()).version;
    const loaded = log.next('policy_loaded');
    await writeFile(file, JSON.stringify(OTHER_POLICY));
    expect((await loaded).version).not.toBe(before);
    expect((await store.current()).policy).toEqual(parsePolicy(OTHER_POLICY));
  });

  it('takes a file replaced by rename, as editors save', async () => {
    await writeFile(file, JSON.stringify(TEST_POLICY));
    const log = recorder();
    store = await openFileStore(file, { log: log.log, debounceMs: 20 });
    const loaded = log.next('policy_loaded');
    await writeFile(join(dir, 'policy.json.swp'), JSON.stringify(OTHER_POLICY));
    await rename(join(dir, 'policy.json.swp'), file);
    await loaded;
    expect((await store.current()).policy).toEqual(parsePolicy(OTHER_POLICY));
  });

  it('refuses an invalid new file with one log line and keeps the last good policy', async () => {
    await writeFile(file, JSON.stringify(TEST_POLICY));
    const log = recorder();
    store = await openFileStore(file, { log: log.log, debounceMs: 20 });
    const good = await store.current();
    const rejected = log.next('policy_rejected');
    await writeFile(
      file,
      JSON.stringify({ version: 1, rules: [{ name: 'x' }], default: { action: { error: 'NO-USER' } } }),
    );
    const entry = await rejected;
    expect(entry).toMatchObject({ msg: 'policy_rejected', source: file, keptVersion: good.version });
    expect(String(entry.error)).toContain('rules[0]');
    expect(await store.current()).toBe(good);
  });

  it('reload() reads the file again when asked (SIGHUP) and says whether it took a new policy', async () => {
    await writeFile(file, JSON.stringify(TEST_POLICY));
    store = await openFileStore(file, { watch: false });
    const first = await store.current();
    expect(await store.reload()).toEqual({ outcome: 'unchanged', version: first.version });
    await writeFile(file, JSON.stringify(OTHER_POLICY));
    const loaded = await store.reload();
    expect(loaded.outcome).toBe('loaded');
    expect(loaded.version).not.toBe(first.version);
    expect((await store.current()).policy).toEqual(parsePolicy(OTHER_POLICY));
  });

  it('reload() of a deleted file keeps the last good policy', async () => {
    await writeFile(file, JSON.stringify(TEST_POLICY));
    store = await openFileStore(file, { watch: false });
    const good = await store.current();
    await rm(file);
    expect(await store.reload()).toEqual({
      outcome: 'rejected',
      version: good.version,
      error: `cannot read policy file ${file}: no such file`,
    });
    expect(await store.current()).toBe(good);
  });
});

describe('file store replace', () => {
  it('writes the new policy to the file and leaves no temporary file behind', async () => {
    await writeFile(file, JSON.stringify(TEST_POLICY));
    store = await openFileStore(file, { watch: false });
    const { version } = await store.replace(parsePolicy(OTHER_POLICY));
    expect((await store.current()).version).toBe(version);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual(parsePolicy(OTHER_POLICY));
    expect(await readdir(dir)).toEqual(['policy.json']);
  });

  it('keeps the document as a PUT sent it: its keys in their order, not a normalised copy', async () => {
    await writeFile(file, JSON.stringify(TEST_POLICY));
    store = await openFileStore(file, { watch: false });
    const app = createApp({ store, secrets: [], adminTokens: ['admin'], mode: 'embedded' });
    const sent = {
      default: { action: { userId: 'anonymous' }, description: 'everyone' },
      rules: [],
      description: 'keys in an order of my own',
      version: 1,
    };
    const put = await app.fetch(adminRequest('PUT', '/v1/policy', 'admin', JSON.stringify(sent)));
    expect(put.status).toBe(200);
    expect(await readFile(file, 'utf8')).toBe(`${JSON.stringify(sent, null, 2)}\n`);
  });
});
