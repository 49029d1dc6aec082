/**
 * uid -> user name from /etc/passwd, for the procfs owner lookup (the
 * sock_diag helper asks NSS itself). The file is parsed once and parsed again
 * only when its mtime or size changes, checked with one stat per name asked
 * for; concurrent reloads share one read. Users that exist only in other NSS
 * sources (LDAP, systemd-homed...) come back as null.
 *
 * @example
 * const names = new PasswdNames();
 * await names.userName(0) // 'root'
 */
import { readFile, stat } from 'node:fs/promises';

export class PasswdNames {
  readonly #path: string;
  #names = new Map<number, string>();
  #version = '';
  #reload: Promise<void> | null = null;

  constructor(path = '/etc/passwd') {
    this.#path = path;
  }

  /**
   * The first name /etc/passwd gives `uid`, or null when it has none or the
   * file cannot be read.
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
    return this.#names.get(uid) ?? null;
  }

  async #fresh(): Promise<void> {
    const info = await stat(this.#path);
    const version = `${info.mtimeMs}:${info.size}:${info.ino}`;
    if (version === this.#version) return;
    this.#reload ??= readFile(this.#path, 'utf8')
      .then((text) => {
        this.#names = parsePasswd(text);
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
