/**
 * The claims API's Unix socket: bound (with its mode and group) while the gateway may still be root, served only
 * after it dropped privileges — connections that arrive in between wait, unread (pauseOnConnect). Each accepted
 * connection's peer credentials are read once, from the kernel, and kept with its socket.
 *
 * @example
 * const bound = await bindClaimsSocket({ path: '/run/identgate/claims.sock', mode: 0o666 });
 * dropPrivileges(runAs);
 * const endpoint = bound.serve(app.fetch, peers);
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, lstatSync, unlinkSync } from 'node:fs';
import http from 'node:http';
import net, { type Socket } from 'node:net';
import { dirname } from 'node:path';
import { getRequestListener, type HttpBindings } from '@hono/node-server';
import { IdentgateError } from '../../protocol/errors.js';
import type { PeerCredentials } from './peer.js';

export interface ClaimsSocketOptions {
  path: string;
  /** File mode of the socket; who may connect (0o666: every local user; each only ever touches its own). */
  mode: number;
  /** Group to give the socket (a name or a gid), for a mode such as 0o660. */
  group?: string | undefined;
}

/** The socket could not be had: one line, exit 2. */
export class ClaimsSocketError extends IdentgateError {
  readonly code = 'ERR_IDENTGATE_CLAIMS_SOCKET';
  override readonly userError = true;
}

export interface ClaimsEndpoint {
  readonly path: string;
  /** Stops listening, closes open connections and removes the socket file (when this process may). */
  close(): Promise<void>;
}

export interface BoundClaimsSocket {
  readonly path: string;
  /** Starts answering with `fetch` (connections that waited first); `peers` reads each connection's credentials. */
  serve(
    fetch: (request: Request, env: HttpBindings) => Response | Promise<Response>,
    peers: (socket: Socket) => PeerCredentials | null,
  ): ClaimsEndpoint;
  close(): Promise<void>;
}

/** Connections the API serves at once at most; more wait in the kernel's backlog. */
const MAX_CONNECTIONS = 256;

/** A socket whose peer credentials were read; the API's `peerUid` looks here. */
const credentials = new WeakMap<Socket, PeerCredentials | null>();

/** The credentials read when `socket` was served (null: none could be read). */
export function credentialsOf(socket: Socket): PeerCredentials | null {
  return credentials.get(socket) ?? null;
}

export async function bindClaimsSocket({ path, mode, group }: ClaimsSocketOptions): Promise<BoundClaimsSocket> {
  const gid = group === undefined ? undefined : groupId(group);
  await removeStale(path);
  let server: http.Server | undefined;
  let peers: ((socket: Socket) => PeerCredentials | null) | undefined;
  const waiting: Socket[] = [];
  // Served connections, to end on close (http.Server's closeAllConnections knows only those it accepted itself).
  const open = new Set<Socket>();
  const hand = (socket: Socket) => {
    credentials.set(socket, peers!(socket));
    open.add(socket);
    socket.once('close', () => open.delete(socket));
    server!.emit('connection', socket);
    socket.resume();
  };
  const listener = net.createServer({ pauseOnConnect: true }, (socket) => {
    if (server) hand(socket);
    else waiting.push(socket.on('error', () => {}));
  });
  listener.maxConnections = MAX_CONNECTIONS;
  await new Promise<void>((resolve, reject) => {
    listener.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        new ClaimsSocketError(`--claims-socket ${path}: cannot listen (${error.code ?? error.message})`, {
          cause: error,
        }),
      ),
    );
    listener.listen(path, () => resolve());
  });
  listener.on('error', () => {});
  try {
    if (gid !== undefined) chownSync(path, -1, gid);
    chmodSync(path, mode);
  } catch (error) {
    listener.close();
    throw new ClaimsSocketError(
      `--claims-socket ${path}: cannot set its ${gid === undefined ? 'mode' : 'group or mode'} (${(error as NodeJS.ErrnoException).code})`,
      { cause: error },
    );
  }
  const closeListener = () =>
    new Promise<void>((resolve) => {
      listener.close(() => resolve());
      try {
        unlinkSync(path);
      } catch {
        // After dropping root the directory may not be ours to write; the next start removes the stale socket.
      }
    });
  return {
    path,
    serve(fetch, readPeers) {
      peers = readPeers;
      server = http.createServer(getRequestListener(fetch as Parameters<typeof getRequestListener>[0]));
      server.keepAliveTimeout = 5_000;
      server.headersTimeout = 5_000;
      server.requestTimeout = 10_000;
      for (const socket of waiting.splice(0)) if (!socket.destroyed) hand(socket);
      const http1 = server;
      return {
        path,
        close: async () => {
          http1.closeAllConnections();
          for (const socket of open) socket.destroy();
          await closeListener();
        },
      };
    },
    close: async () => {
      for (const socket of waiting.splice(0)) socket.destroy();
      await closeListener();
    },
  };
}

/** A socket left by a gateway that is gone is removed; a live one, or anything that is not a socket, is not. */
async function removeStale(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    throw new ClaimsSocketError(`--claims-socket ${path}: cannot look at it (${code})`, { cause: error });
  }
  if (!isSocket)
    throw new ClaimsSocketError(`--claims-socket ${path}: exists and is not a socket; remove it or pick another path`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live)
    throw new ClaimsSocketError(
      `--claims-socket ${path}: another process is serving it (is a gateway already running?)`,
    );
  try {
    unlinkSync(path);
  } catch (error) {
    throw new ClaimsSocketError(
      `--claims-socket ${path}: cannot remove the stale socket (${(error as NodeJS.ErrnoException).code}); is ${dirname(path)} writable?`,
      { cause: error },
    );
  }
}

/** A group name or number as a gid; NSS answers for names (getent), so LDAP and sssd groups work. */
function groupId(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  try {
    return Number(execFileSync('getent', ['group', group], { encoding: 'utf8' }).split(':')[2]);
  } catch {
    throw new ClaimsSocketError(`--claims-socket-group: no group named ${JSON.stringify(group)} on this host`);
  }
}
