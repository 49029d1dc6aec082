/**
 * Who is at the other end of an accepted Unix socket (SO_PEERCRED, asked of the sock_diag addon): the claims
 * API's only source of the caller's uid. Without the addon every request is refused (503), never guessed.
 *
 * @example
 * const peers = loadPeerCredentials();
 * if ('problem' in peers) log.warn(peers.problem); else peers.of(socket)?.uid;
 */
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { sockDiagAddonPath } from '../owner/index.js';

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

interface PeerAddon {
  peerCredentials?(out: Uint32Array, fd: number): number;
}

export type PeerCredentialsReader = { of(socket: Socket): PeerCredentials | null } | { problem: string };

const require = createRequire(import.meta.url);

/** The reader, or why there is none. */
export function loadPeerCredentials(addonPath: string = sockDiagAddonPath()): PeerCredentialsReader {
  let addon: PeerAddon;
  try {
    addon = require(addonPath) as PeerAddon;
  } catch (error) {
    return { problem: `the sock_diag addon ${addonPath} does not load (${(error as Error).message.split('\n')[0]})` };
  }
  const read = addon.peerCredentials;
  if (typeof read !== 'function')
    return { problem: `the sock_diag addon ${addonPath} predates peer credentials; rebuild it (npm run build)` };
  const out = new Uint32Array(3);
  return {
    of(socket) {
      const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
      if (typeof fd !== 'number' || fd < 0 || read(out, fd) !== 0) return null;
      return { pid: out[0]!, uid: out[1]!, gid: out[2]! };
    },
  };
}
