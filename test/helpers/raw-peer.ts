/**
 * A raw TCP peer for server tests: writes literal bytes and collects what the
 * server sends back, with helpers that wait for events instead of sleeping.
 */
import net from 'node:net';
import { once } from 'node:events';

export interface RawPeer {
  readonly socket: net.Socket;
  /** Everything received so far, as latin1 text. */
  text(): string;
  write(bytes: string | Uint8Array): void;
  /** Resolves with the received text once it holds `count` CRLF-terminated lines. */
  lines(count: number, timeoutMs?: number): Promise<string[]>;
  /** Resolves with everything received when the server closes the connection. */
  closed(timeoutMs?: number): Promise<string>;
}

export async function connectRaw(port: number, host = '127.0.0.1', localAddress?: string): Promise<RawPeer> {
  const socket = net.connect({ port, host, ...(localAddress ? { localAddress } : {}) });
  socket.setNoDelay(true);
  socket.on('error', () => {});
  let received = '';
  const waiters = new Set<() => void>();
  socket.on('data', (chunk: Buffer) => {
    received += chunk.toString('latin1');
    for (const wake of waiters) wake();
  });
  const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.once('close', () => {
    for (const wake of waiters) wake();
  });
  await once(socket, 'connect');

  const waitFor = <T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> =>
    new Promise((resolve, reject) => {
      const wake = () => {
        const value = check();
        if (value !== undefined) {
          clearTimeout(timer);
          waiters.delete(wake);
          resolve(value);
        } else if (socket.destroyed && !socket.readable) {
          clearTimeout(timer);
          waiters.delete(wake);
          reject(new Error(`connection closed before ${what}; got ${JSON.stringify(received)}`));
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(wake);
        reject(new Error(`timed out waiting for ${what}; got ${JSON.stringify(received)}`));
      }, timeoutMs);
      waiters.add(wake);
      wake();
    });

  return {
    socket,
    text: () => received,
    write: (bytes) => void socket.write(bytes),
    lines: (count, timeoutMs = 5_000) =>
      waitFor(
        () => {
          const parts = received.split('\r\n');
          return parts.length - 1 >= count ? parts.slice(0, count) : undefined;
        },
        timeoutMs,
        `${count} lines`,
      ),
    closed: async (timeoutMs = 5_000) => {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        ended,
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`server did not close; got ${JSON.stringify(received)}`)),
            timeoutMs,
          );
        }),
      ]);
      clearTimeout(timer);
      return received;
    },
  };
}
