/** Starts an IdentServer on an ephemeral loopback port for a test and stops it afterwards. */
import { afterEach } from 'vitest';
import {
  IdentServer,
  type IdentHandler,
  type IdentServerError,
  type IdentServerOptions,
} from '../../gateway/server/server.js';

/** The transports every IdentServer behaviour test runs under, named explicitly (not 'auto'). */
export const TRANSPORTS = ['native', 'node'] as const;

const running: IdentServer[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.stop({ graceMs: 200 })));
});

export interface TestServer {
  server: IdentServer;
  port: number;
  errors: IdentServerError[];
}

export async function startServer(handler: IdentHandler, options: IdentServerOptions = {}): Promise<TestServer> {
  const errors: IdentServerError[] = [];
  const server = new IdentServer({
    hostname: '127.0.0.1',
    port: 0,
    onError: (error) => errors.push(error),
    ...options,
  });
  await server.start(handler);
  running.push(server);
  return { server, port: server.port, errors };
}

/** The seed's example handler: 400/500 is grimlock, everything else NO-USER. */
export const grimlock: IdentHandler = (tx) => {
  if (tx.req.serverPort === 400 && tx.req.clientPort === 500) tx.replyWithUser('grimlock');
  else tx.replyWithError('NO-USER');
};
