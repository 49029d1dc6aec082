/**
 * identgate's Node side: the ident server and client, the resolvers that ask
 * the policy worker, local owner lookup, and `identgate serve` as a function.
 */
export * from './server/server.js';
export * from './client/client.js';
export * from './resolver/types.js';
export { createHttpResolver, type HttpResolverOptions } from './resolver/http.js';
export { createEmbeddedResolver, type EmbeddedResolverOptions, type FetchApp } from './resolver/embedded.js';
export { createOwnerLookup, type OwnerLookup, type OwnerLookupMode } from './owner/index.js';
export { startGateway, type RunningGateway } from './daemon/serve.js';
export { parseServeArgs, parseQueryArgs, parseWorkerArgs, ConfigError, type ServeConfig } from './cli/config.js';
export { createClaimsClient, endpointsOf, ClaimsApiError, type ClaimsClient } from './claims/client.js';
export { ClaimsSocketError } from './claims/socket.js';
