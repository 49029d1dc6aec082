/**
 * uid -> user name from /etc/passwd for the procfs lookup, parsed again only when the file changes; users of
 * other NSS sources come back as null.
 *
 * @example
 * const names = new PasswdNames();
 * await names.userName(0) // 'root'
 */
import { readFile, stat } from 'node:fs/promises';
import { MAX_USER_NAME_OCTETS } from '../../protocol/wire.js';

export class PasswdNames {
  readonly #path: string;
  #names = new Map<number, string>();
  #accounts: PasswdAccounts = { homes: new Map(), uids: new Map() };
  #version = '';
  #reload: Promise<void> | null = null;

  constructor(path = '/etc/passwd') {
    this.#path = path;
  }

  /**
   * The first name /etc/passwd gives `uid`, or null when it has none, when
   * that name is longer than MAX_USER_NAME_OCTETS (a whole name or none, never
   * a cut one), or when the file cannot be read.
   *
   * @example
   * await new PasswdNames().userName(65534) // 'nobody'
   */
  async userName(uid: number): Promise<string | null> {
    try {
      await this.#fresh();
    } catch {
      return null;
    }
    const name = this.#names.get(uid);
    return name !== undefined && Buffer.byteLength(name) <= MAX_USER_NAME_OCTETS ? name : null;
  }

  /**
   * The home directory /etc/passwd gives `uid` (its first line), or null.
   *
   * @example
   * await new PasswdNames().homeDirectory(0) // '/root'
   */
  async homeDirectory(uid: number): Promise<string | null> {
    try {
      await this.#fresh();
    } catch {
      return null;
    }
    return this.#accounts.homes.get(uid) ?? null;
  }

  /**
   * The uid of the account named `name`, or null when /etc/passwd has none.
   *
   * @example
   * await new PasswdNames().uidOf('root') // 0
   */
  async uidOf(name: string): Promise<number | null> {
    try {
      await this.#fresh();
    } catch {
      return null;
    }
    return this.#accounts.uids.get(name) ?? null;
  }

  async #fresh(): Promise<void> {
    const info = await stat(this.#path);
    const version = `${info.mtimeMs}:${info.size}:${info.ino}`;
    if (version === this.#version) return;
    this.#reload ??= readFile(this.#path, 'utf8')
      .then((text) => {
        this.#names = parsePasswd(text);
        this.#accounts = parsePasswdAccounts(text);
        this.#version = version;
      })
      .finally(() => {
        this.#reload = null;
      });
    await this.#reload;
  }
}

/**
 * uid -> name from passwd(5) text; the first line for a uid wins, as getpwuid does.
 *
 * @example
 * parsePasswd('root:x:0:0:root:/root:/bin/sh\n').get(0) // 'root'
 */
export function parsePasswd(text: string): Map<number, string> {
  const names = new Map<number, string>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#') || line.startsWith('+') || line.startsWith('-')) continue;
    const fields = line.split(':');
    const name = fields[0];
    const uidText = fields[2];
    if (!name || uidText === undefined || !/^\d+$/.test(uidText)) continue;
    const uid = Number(uidText);
    if (!names.has(uid)) names.set(uid, name);
  }
  return names;
}

export interface PasswdAccounts {
  /** uid -> home directory (first line for a uid). */
  readonly homes: Map<number, string>;
  /** name -> uid (first line for a name, as getpwnam does). */
  readonly uids: Map<string, number>;
}

/**
 * Home directories and name -> uid from passwd(5) text.
 *
 * @example
 * parsePasswdAccounts('root:x:0:0:root:/root:/bin/sh\n').homes.get(0) // '/root'
 */
export function parsePasswdAccounts(text: string): PasswdAccounts {
  const homes = new Map<number, string>();
  const uids = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#') || line.startsWith('+') || line.startsWith('-')) continue;
    const fields = line.split(':');
    const name = fields[0];
    const uidText = fields[2];
    if (!name || uidText === undefined || !/^\d+$/.test(uidText)) continue;
    const uid = Number(uidText);
    const home = fields[5];
    if (home && home.startsWith('/') && !homes.has(uid)) homes.set(uid, home);
    if (!uids.has(name)) uids.set(name, uid);
  }
  return { homes, uids };
}
