/**
 * identgate's library API: the ident server and client with the capabilities
 * of Perl's AnyEvent::Ident, plus the protocol core. The policy worker is at
 * 'identgate/worker', the pure protocol at 'identgate/protocol', and the
 * gateway pieces (resolvers, owner lookup, CLI assembly) at 'identgate/gateway'.
 *
 * @example
 * import { IdentServer, IdentClient } from 'identgate';
 * const server = new IdentServer({ port: 0 });
 * await server.start((tx) => tx.replyWithUser('grimlock'));
 * const client = new IdentClient({ port: server.port });
 * console.log(await client.ident(400, 500)); // { isSuccess: true, userId: 'grimlock', ... }
 */
export {
  IdentServer,
  IdentTransaction,
  SERVER_DEFAULTS,
  IdentServerError,
  IdentBindError,
  IdentDuplicateReplyError,
  IdentHandlerFailedError,
  IdentHandlerTimeoutError,
  IdentInvalidReplyError,
  IdentLineTooLongError,
  IdentServerRunningError,
  IdentSocketError,
  IdentTransportError,
  type IdentHandler,
  type IdentServerOptions,
  type IdentServerErrorCode,
  type ListenTarget,
} from './gateway/server/server.js';
export * from './gateway/client/client.js';
export * from './protocol/index.js';
