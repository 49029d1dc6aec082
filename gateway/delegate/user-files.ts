/**
 * Reading an owner's oidentd user file at query time with oidentd's safety rules and more (docs/apps.md), parsed once
 * per change: while unchanged, a query costs one lstat() per listed file until one exists.
 *
 * @example
 * const files = new UserFiles({ passwd: new PasswdNames(), onWarning: (path, reason) => log.warn({ path }, reason) });
 * const found = await files.read(1000, ['.config/oidentd.conf', '.oidentd.conf']);
 * if (found.status === 'ok') matchUserFile(found.file, query);
 *
 */
import { constants, type BigIntStats } from 'node:fs';
import * as fsPromises from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { PasswdNames } from '../owner/passwd.js';
import { parseUserFile, UserFileSyntaxError, type UserFile } from './oidentd-conf.js';

/** Largest user file read (a TheLounge file has one ~100-octet line per connection). */
export const DEFAULT_USER_FILE_MAX_OCTETS = 1024 * 1024;
/** How long a uid's home directory is trusted before /etc/passwd is asked again. */
const HOME_TTL_MS = 10_000;
/** Parsed files remembered; beyond it the oldest are forgotten. */
const MAX_CACHED_FILES = 10_000;

export type UserFileRead =
  | { readonly status: 'ok'; readonly path: string; readonly file: UserFile }
  /** No listed file exists (or the owner has no home directory). */
  | { readonly status: 'none'; readonly reason: string }
  /** A file exists but is unsafe to read or does not parse; it answers like no file. */
  | { readonly status: 'refused' | 'broken'; readonly path: string; readonly reason: string };

/** The file system calls a reader makes (tests count them). */
export type UserFilesFs = Pick<typeof fsPromises, 'lstat' | 'open' | 'realpath'>;

export interface UserFilesOptions {
  passwd: Pick<PasswdNames, 'homeDirectory'>;
  fs?: UserFilesFs;
  maxOctets?: number;
  /** Once per change of a file that is refused or broken. */
  onWarning?: (path: string, reason: string) => void;
}

interface Cached {
  readonly signature: string;
  readonly result: UserFileRead;
}

function signatureOf(info: BigIntStats): string {
  return `${info.dev}:${info.ino}:${info.mtimeNs}:${info.ctimeNs}:${info.size}:${info.mode}:${info.uid}`;
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

export class UserFiles {
  readonly #passwd: Pick<PasswdNames, 'homeDirectory'>;
  readonly #fs: UserFilesFs;
  readonly #maxOctets: number;
  readonly #onWarning: (path: string, reason: string) => void;
  readonly #files = new Map<string, Cached>();
  readonly #homes = new Map<number, { home: string | null; at: number }>();

  constructor(options: UserFilesOptions) {
    this.#passwd = options.passwd;
    this.#fs = options.fs ?? fsPromises;
    this.#maxOctets = options.maxOctets ?? DEFAULT_USER_FILE_MAX_OCTETS;
    this.#onWarning = options.onWarning ?? (() => undefined);
  }

  async #home(uid: number): Promise<string | null> {
    const now = performance.now();
    const known = this.#homes.get(uid);
    if (known && now - known.at < HOME_TTL_MS) return known.home;
    const home = await this.#passwd.homeDirectory(uid);
    if (this.#homes.size >= MAX_CACHED_FILES) this.#homes.clear();
    this.#homes.set(uid, { home, at: now });
    return home;
  }

  /** The first of `files` (relative to uid's home) that exists, parsed, or why there is none. */
  async read(uid: number, files: readonly string[]): Promise<UserFileRead> {
    const home = await this.#home(uid);
    if (home === null) return { status: 'none', reason: `uid ${uid} has no home directory in /etc/passwd` };
    for (const name of files) {
      const path = join(home, name);
      // Per uid and path: two accounts may share a home, and the owner check is per uid.
      const key = `${uid}\0${path}`;
      let info: BigIntStats;
      try {
        info = await this.#fs.lstat(path, { bigint: true });
      } catch (error) {
        if (isMissing(error)) continue;
        // Remembered by its code, so that an unreadable home is warned about once, not on every query.
        const signature = `error:${(error as NodeJS.ErrnoException).code ?? 'unknown'}`;
        const cached = this.#files.get(key);
        if (cached?.signature === signature) return cached.result;
        const reason = `cannot stat: ${(error as Error).message}`;
        return this.#remember(key, path, signature, { status: 'refused', path, reason });
      }
      const signature = signatureOf(info);
      const cached = this.#files.get(key);
      if (cached?.signature === signature) return cached.result;
      return this.#remember(key, path, signature, await this.#load(uid, home, path, info));
    }
    return { status: 'none', reason: `no ${files.join(' or ')} in ${home}` };
  }

  #remember(key: string, path: string, signature: string, result: UserFileRead): UserFileRead {
    if (result.status === 'refused' || result.status === 'broken') this.#onWarning(path, result.reason);
    if (this.#files.size >= MAX_CACHED_FILES) this.#files.delete(this.#files.keys().next().value!);
    this.#files.delete(key);
    this.#files.set(key, { signature, result });
    return result;
  }

  async #load(uid: number, home: string, path: string, info: BigIntStats): Promise<UserFileRead> {
    const refuse = (reason: string): UserFileRead => ({ status: 'refused', path, reason });
    const problem = unsafe(info, uid, this.#maxOctets);
    if (problem) return refuse(problem);
    try {
      const [realHome, realDirectory] = await Promise.all([this.#fs.realpath(home), this.#fs.realpath(dirname(path))]);
      if (realDirectory !== realHome && !realDirectory.startsWith(realHome.endsWith('/') ? realHome : `${realHome}/`))
        return refuse(`its directory leads out of the home directory (to ${realDirectory})`);
    } catch (error) {
      return refuse(`cannot resolve its directory: ${(error as Error).message}`);
    }
    let text: string;
    try {
      // O_NOFOLLOW: a link swapped in since the lstat is not followed; O_NONBLOCK: nor is a FIFO waited on;
      // O_NOCTTY: a terminal swapped in does not become ours. fstat below refuses anything but a regular file.
      const handle = await this.#fs.open(
        path,
        constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY,
      );
      try {
        const opened = await handle.stat({ bigint: true });
        const again = unsafe(opened, uid, this.#maxOctets);
        if (again) return refuse(again);
        if (opened.ino !== info.ino || opened.dev !== info.dev) return refuse('it changed while being opened');
        const buffer = Buffer.alloc(Number(opened.size) + 1);
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
        if (bytesRead > this.#maxOctets) return refuse(`it is larger than ${this.#maxOctets} octets`);
        const octets = buffer.subarray(0, bytesRead);
        if (octets.includes(0)) return { status: 'broken', path, reason: 'it contains a NUL octet (not a text file)' };
        text = new TextDecoder('utf-8', { fatal: true }).decode(octets);
      } finally {
        await handle.close();
      }
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ELOOP') return refuse('it is a symbolic link');
      if (error instanceof TypeError) return { status: 'broken', path, reason: 'it is not UTF-8 text' };
      return refuse(`cannot read: ${(error as Error).message}`);
    }
    try {
      return { status: 'ok', path, file: parseUserFile(text) };
    } catch (error) {
      if (error instanceof UserFileSyntaxError) return { status: 'broken', path, reason: error.message };
      throw error;
    }
  }
}

/** Why a file with these attributes is not read for uid, or undefined when it may be. */
function unsafe(info: BigIntStats, uid: number, maxOctets: number): string | undefined {
  if (info.isSymbolicLink()) return 'it is a symbolic link';
  if (!info.isFile()) return 'it is not a regular file';
  if (info.uid !== BigInt(uid)) return `it is owned by uid ${info.uid}, not by the connection's owner (uid ${uid})`;
  if ((info.mode & 0o022n) !== 0n)
    return `it is group- or world-writable (mode ${(info.mode & 0o777n).toString(8)}; chmod go-w it)`;
  if (info.size > BigInt(maxOctets)) return `it is larger than ${maxOctets} octets`;
  return undefined;
}
