/**
 * identgate/gateway: the pieces `identgate serve` is assembled from — the resolvers that ask the policy worker, the
 * owner lookup, the query pipeline (where a new FactSource plugs in), the CLI's parsers and startGateway itself.
 */
export {
  DEFAULT_FALLBACK,
  RESOLVER_DEFAULTS,
  ResolverConfigError,
  ResolverFailure,
  type BatchListener,
  type FailureCause,
  type FailureListener,
  type FallbackListener,
  type RecoveryListener,
  type Resolver,
  type SharedResolverOptions,
} from './resolver/types.js';
export { createHttpResolver, type HttpResolverOptions } from './resolver/http.js';
export { createEmbeddedResolver, type EmbeddedResolverOptions, type FetchApp } from './resolver/embedded.js';
export {
  createOwnerLookup,
  OwnerLookupError,
  OwnerLookupHelperError,
  OwnerLookupKernelError,
  OwnerLookupTimeoutError,
  OwnerLookupUnsupportedError,
  type Owner,
  type OwnerLookup,
  type OwnerLookupErrorCode,
  type OwnerLookupMethod,
  type OwnerLookupMode,
  type OwnerLookupOptions,
  type OwnerQuery,
} from './owner/index.js';
export { createQueryPipeline, type ConnectionFacts, type FactSource, type PipelineOptions } from './pipeline.js';
export { startGateway, type GatewayDeps, type RunningGateway } from './daemon/serve.js';
export {
  ConfigError,
  parseQueryArgs,
  parseServeArgs,
  parseWorkerArgs,
  type QueryConfig,
  type ServeConfig,
  type WorkerConfig,
} from './cli/config.js';
export { createClaimsClient, endpointsOf, ClaimsApiError, type ClaimsClient } from './claims/client.js';
export { ClaimsSocketError } from './claims/socket.js';
export {
  createNatSource,
  NatLookupError,
  NatLookupKernelError,
  NatLookupTimeoutError,
  NatLookupUnsupportedError,
  type NatSource,
} from './nat/conntrack.js';
export { createForwardedSource, type ForwardedSource } from './nat/forwarded.js';
export { createDockerSource, type DockerSource } from './containers/docker.js';
