/**
 * identgate's Node side: the ident server and client, the resolvers that ask
 * the policy worker, local owner lookup, and `identgate serve` as a function.
 */
export * from './server.js';
export * from './client.js';
export * from './resolver.js';
export { createHttpResolver, type HttpResolverOptions } from './http-resolver.js';
export { createEmbeddedResolver, type EmbeddedResolverOptions, type FetchApp } from './embedded-resolver.js';
export { createOwnerLookup, type OwnerLookup, type OwnerLookupMode } from './owner/index.js';
export { startGateway, type RunningGateway } from './serve.js';
export { parseServeArgs, parseQueryArgs, parseWorkerArgs, ConfigError, type ServeConfig } from './config.js';
