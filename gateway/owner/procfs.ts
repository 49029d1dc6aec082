/**
 * Owner lookup by scanning /proc/net/tcp{,6} where sock_diag is unavailable; lookups arriving during a scan share
 * the next one, matched on the raw bytes the kernel prints.
 *
 * @example
 * const procfs = new ProcfsOwnerLookup();
 * await procfs.find(connectionEnds({ localAddress: '127.0.0.1', localPort: 6667, remoteAddress: '127.0.0.1', remotePort: 40000 })!)
 * // -> { uid: 1000, userName: 'alice' } or null
 */
import { open } from 'node:fs/promises';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { type ConnectionEnds, mappedBytes, procAddressHex } from './address.js';
import { OwnerLookupKernelError } from './errors.js';
import { PasswdNames } from './passwd.js';
import { isOwnedConnection } from './tcp-state.js';

/** A connection's owner as the lookups report it. */
export interface Owner {
  uid: number;
  userName: string | null;
}

export interface ProcfsOwnerLookupOptions {
  /** Where tcp and tcp6 live; '/proc/net' (this process's network namespace). */
  procNetDir?: string;
  /** uid -> name source; a PasswdNames on /etc/passwd. */
  passwd?: PasswdNames;
}

interface Waiter {
  ends: ConnectionEnds;
  resolve: (owner: Owner | null) => void;
  reject: (error: unknown) => void;
}

/** One socket line's owner fields. */
interface ProcSocket {
  state: number;
  uid: number;
  inode: number;
}

export class ProcfsOwnerLookup {
  readonly method = 'procfs';
  readonly #procNetDir: string;
  readonly #passwd: PasswdNames;
  readonly #littleEndian = endianness() === 'LE';
  #waiting: Waiter[] = [];
  #scanning = false;
  #scans = 0;
  /** Read buffers, kept between scans (they only grow). */
  #buffers = { tcp: Buffer.alloc(256 * 1024), tcp6: Buffer.alloc(256 * 1024) };

  constructor(options: ProcfsOwnerLookupOptions = {}) {
    this.#procNetDir = options.procNetDir ?? '/proc/net';
    this.#passwd = options.passwd ?? new PasswdNames();
  }

  /** How many scans have run; lets tests and metrics see coalescing. */
  get scans(): number {
    return this.#scans;
  }

  /**
   * The owner of the connection with these ends, or null when no process
   * holds such a connection. Rejects with ERR_OWNER_LOOKUP_KERNEL when the
   * tables cannot be read.
   *
   * @example
   * await new ProcfsOwnerLookup().find(ends) // { uid: 0, userName: 'root' }
   */
  find(ends: ConnectionEnds): Promise<Owner | null> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ ends, resolve, reject });
      if (!this.#scanning) void this.#drain();
    });
  }

  /**
   * Nothing to release (no descriptor stays open between scans); here so
   * both lookups close alike.
   *
   * @example
   * await procfs.close();
   */
  async close(): Promise<void> {}

  async #drain(): Promise<void> {
    this.#scanning = true;
    try {
      while (this.#waiting.length > 0) {
        const batch = this.#waiting;
        this.#waiting = [];
        await this.#scan(batch);
      }
    } finally {
      this.#scanning = false;
    }
  }

  async #scan(batch: Waiter[]): Promise<void> {
    this.#scans += 1;
    let tcp: Buffer | null = null;
    let tcp6: Buffer;
    try {
      // IPv4 connections live in tcp, or in tcp6 (IPv4-mapped) when a dual-stack socket holds them.
      if (batch.some((w) => w.ends.family === 4)) tcp = await this.#read('tcp');
      tcp6 = await this.#read('tcp6');
    } catch (cause) {
      const error = new OwnerLookupKernelError(`cannot read ${this.#procNetDir}/tcp: ${(cause as Error).message}`, {
        cause,
      });
      for (const waiter of batch) waiter.reject(error);
      return;
    }
    const v4Keys = batch.map((w) =>
      w.ends.family === 4 ? this.#key(w.ends.local, w.ends.localPort, w.ends.remote, w.ends.remotePort) : null,
    );
    const v6Keys = batch.map(({ ends }) =>
      ends.family === 4
        ? this.#key(mappedBytes(ends.local), ends.localPort, mappedBytes(ends.remote), ends.remotePort)
        : this.#key(ends.local, ends.localPort, ends.remote, ends.remotePort),
    );
    const inTcp =
      tcp === null
        ? new Map<string, ProcSocket>()
        : this.#locate(
            tcp,
            v4Keys.filter((k) => k !== null),
          );
    const inTcp6 = this.#locate(tcp6, v6Keys);
    batch.forEach((waiter, i) => {
      const v4Key = v4Keys[i];
      const socket = (v4Key ? inTcp.get(v4Key) : undefined) ?? inTcp6.get(v6Keys[i] ?? '');
      if (socket === undefined) waiter.resolve(null);
      else
        this.#passwd
          .userName(socket.uid)
          .then((userName) => waiter.resolve({ uid: socket.uid, userName }), waiter.reject);
    });
  }

  /**
   * For each key ("LOCALHEX:PORT REMOTEHEX:PORT", as the table prints a
   * socket's two ends), the first owned socket listed with it. A few keys are
   * each found with one Buffer.indexOf over the table; more than a few make
   * one pass over its lines cheaper.
   */
  #locate(table: Buffer, keys: string[]): Map<string, ProcSocket> {
    const found = new Map<string, ProcSocket>();
    if (keys.length <= 2) {
      for (const key of keys) {
        const needle = Buffer.from(`: ${key} `, 'latin1');
        for (let at = table.indexOf(needle); at !== -1; at = table.indexOf(needle, at + needle.length)) {
          const socket = ownedSocket(table, at + needle.length);
          if (socket !== null) {
            found.set(key, socket);
            break;
          }
        }
      }
      return found;
    }
    const wanted = new Set(keys);
    const keyLength = keys[0]?.length ?? 0;
    for (let line = 0; line < table.length; ) {
      const end = table.indexOf(0x0a, line);
      const lineEnd = end === -1 ? table.length : end;
      const colon = table.indexOf(0x3a, line); // "   sl: local rem ..." - the first ':' ends the slot number
      if (colon !== -1 && colon < lineEnd) {
        const key = table.toString('latin1', colon + 2, colon + 2 + keyLength);
        if (wanted.has(key) && !found.has(key)) {
          const socket = ownedSocket(table, colon + 2 + keyLength + 1);
          if (socket !== null) found.set(key, socket);
        }
      }
      line = lineEnd + 1;
    }
    return found;
  }

  #key(local: Uint8Array, localPort: number, remote: Uint8Array, remotePort: number): string {
    return `${this.#hex(local, localPort)} ${this.#hex(remote, remotePort)}`;
  }

  #hex(address: Uint8Array, port: number): string {
    return `${procAddressHex(address, this.#littleEndian)}:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  }

  /** Reads a whole table (in big reads: each read makes the kernel find its place in the table again); /proc files report size 0, so read until EOF into a growing buffer. */
  async #read(name: 'tcp' | 'tcp6'): Promise<Buffer> {
    const file = await open(join(this.#procNetDir, name), 'r');
    try {
      let buffer = this.#buffers[name];
      let length = 0;
      for (;;) {
        if (length === buffer.length) {
          const grown = Buffer.alloc(buffer.length * 2);
          buffer.copy(grown, 0, 0, length);
          buffer = grown;
          this.#buffers[name] = buffer;
        }
        const { bytesRead } = await file.read(buffer, length, buffer.length - length, null);
        if (bytesRead === 0) break;
        length += bytesRead;
      }
      return buffer.subarray(0, length);
    } finally {
      await file.close();
    }
  }
}

/** The owner fields of the line whose state column starts at `from`, if that socket is an owned connection. */
function ownedSocket(table: Buffer, from: number): ProcSocket | null {
  let to = table.indexOf(0x0a, from);
  if (to === -1) to = table.length;
  // st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
  const fields = table.toString('latin1', from, to).trim().split(/\s+/);
  const socket = { state: Number.parseInt(fields[0] ?? '', 16), uid: Number(fields[4]), inode: Number(fields[6]) };
  return Number.isInteger(socket.uid) && isOwnedConnection(socket.state, socket.inode) ? socket : null;
}
