/** A well-formed wire-contract lookup request for tests: query `serverPort, 23` from 127.0.0.1, owned by alice (uid 1000). */
import type { LookupRequest } from '../../protocol/wire.js';

export function lookupRequest(id: string, serverPort = 6193): LookupRequest {
  return {
    v: 1,
    id,
    gateway: 'test-gateway',
    query: { serverPort, clientPort: 23 },
    connection: { localAddress: '127.0.0.1', localPort: 113, remoteAddress: '127.0.0.1', remotePort: 40000 },
    owner: { uid: 1000, userName: 'alice' },
  };
}
