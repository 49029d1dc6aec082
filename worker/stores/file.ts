/**
 * A policy store backed by a JSON file (the Node worker): read on open, again on change and on
 * reload(); a bad file keeps the last good policy; replace() writes atomically (docs/internals.md).
 */
import { watch, type FSWatcher } from 'node:fs';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { parsePolicy, type Policy } from '../policy/index.js';
import { snapshotOf, type PolicySnapshot, type PolicyStore } from './store.js';
import { IdentgateError } from '../../protocol/errors.js';

export interface FileStoreOptions {
  log?: (entry: Record<string, unknown>) => void;
  /** Watch the file for changes. Default true. */
  watch?: boolean;
  /** Quiet time after the last change event before reading. Default 100 ms. */
  debounceMs?: number;
  /** Every reload's result, on a file change and on reload() alike (metrics count them). */
  onReload?: (result: PolicyReload) => void;
}

/** What one reload did; a refused file keeps the last good policy (`version`), `error` says why it was refused. */
export type PolicyReload =
  | { readonly outcome: 'loaded' | 'unchanged'; readonly version: string }
  | { readonly outcome: 'rejected'; readonly version: string; readonly error: string };

export interface FileStore extends PolicyStore {
  readonly path: string;
  /** Reads the file again; resolves what happened (never rejects: a bad file is `rejected`, the old policy kept). */
  reload(): Promise<PolicyReload>;
  /** Stops watching. */
  close(): void;
}

/** Thrown when the policy file cannot be used at start: one subclass per reason, each with its own code. */
export abstract class FileStoreError extends IdentgateError {
  override readonly userError = true;
}

/** The policy file cannot be read (missing, unreadable). */
export class PolicyFileReadError extends FileStoreError {
  readonly code = 'ERR_POLICY_FILE_READ';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PolicyFileReadError';
  }
}

/** The policy file is not JSON or not a valid policy. */
export class PolicyFileInvalidError extends FileStoreError {
  readonly code = 'ERR_POLICY_FILE_INVALID';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PolicyFileInvalidError';
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function readPolicyFile(path: string): Promise<Policy> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : messageOf(error);
    throw new PolicyFileReadError(`cannot read policy file ${path}: ${reason}`, { cause: error });
  }
  try {
    return parsePolicy(JSON.parse(text));
  } catch (error) {
    throw new PolicyFileInvalidError(`policy file ${path} is not a valid policy: ${messageOf(error)}`, {
      cause: error,
    });
  }
}

let tmpCounter = 0;

/**
 * Opens a file store: reads and compiles the policy, then starts watching.
 *
 * @example
 * const store = await openFileStore('examples/policy.json', { watch: false });
 */
export async function openFileStore(path: string, options: FileStoreOptions = {}): Promise<FileStore> {
  const log = options.log ?? (() => {});
  const debounceMs = options.debounceMs ?? 100;
  const onReload = options.onReload ?? (() => {});
  let snapshot = await snapshotOf(await readPolicyFile(path));
  log({ msg: 'policy_loaded', source: path, version: snapshot.version });

  // Reloads run one after another so an older read never overwrites a newer one.
  let queue: Promise<unknown> = Promise.resolve();
  function reload(): Promise<PolicyReload> {
    const run = queue.then(async (): Promise<PolicyReload> => {
      let next: PolicySnapshot;
      try {
        next = await snapshotOf(await readPolicyFile(path), snapshot);
      } catch (error) {
        log({ msg: 'policy_rejected', source: path, error: messageOf(error), keptVersion: snapshot.version });
        return { outcome: 'rejected', version: snapshot.version, error: messageOf(error) };
      }
      if (next === snapshot) return { outcome: 'unchanged', version: snapshot.version };
      snapshot = next;
      log({ msg: 'policy_loaded', source: path, version: snapshot.version });
      return { outcome: 'loaded', version: snapshot.version };
    });
    queue = run.catch(() => undefined);
    return run.then((result) => {
      onReload(result);
      return result;
    });
  }

  let watcher: FSWatcher | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  if (options.watch ?? true) {
    const name = basename(path);
    watcher = watch(dirname(path), { persistent: false }, (_event, filename) => {
      if (filename !== null && filename !== name) return;
      clearTimeout(timer);
      timer = setTimeout(() => void reload(), debounceMs);
    });
    watcher.on('error', (error) => log({ msg: 'policy_watch_failed', source: path, error: messageOf(error) }));
  }

  return {
    path,
    reload,
    current: () => Promise.resolve(snapshot),
    peek: () => snapshot,
    replace(policy, document = policy) {
      const run = queue.then(async () => {
        const next = await snapshotOf(policy, snapshot);
        const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${++tmpCounter}.tmp`);
        try {
          await writeFile(tmp, `${JSON.stringify(document, null, 2)}\n`, { mode: 0o644 });
          await rename(tmp, path);
        } catch (error) {
          await rm(tmp, { force: true });
          throw error;
        }
        snapshot = next;
        log({ msg: 'policy_loaded', source: path, version: snapshot.version });
        return { version: snapshot.version };
      });
      queue = run.catch(() => undefined);
      return run;
    },
    close() {
      clearTimeout(timer);
      watcher?.close();
    },
  };
}
