/**
 * The public entry points export exactly the documented API (README "Library", docs/): each built module's runtime
 * exports, sorted, against the list here. A new export is a decision: document it, then add it here.
 */
import { describe, expect, it } from 'vitest';

const PROTOCOL = [
  // errors (protocol/errors.ts)
  'ConfigError',
  'ERROR_CODES',
  'IDENTGATE_ERROR_CODES',
  'IdentgateError',
  // RFC 1413: tokens, requests, framing, replies
  'DEFAULT_MAX_LINE_OCTETS',
  'LineSplitter',
  'LineTooLongError',
  'ReplyRuleError',
  'STANDARD_ERRORS',
  'TOKEN_MAX_CHARS',
  'USER_ID_MAX_OCTETS',
  'assertValidAnswer',
  'encodeReply',
  'formatReply',
  'formatReplyUnchecked',
  'formatRequest',
  'isErrorToken',
  'isPort',
  'isStandardError',
  'isToken',
  'parseReply',
  'parseRequest',
  'parseRequestOctets',
  'replyRuleViolation',
  'userIdViolation',
  // the wire contract (docs/wire.md) and its signatures
  'AnswerSchema',
  'BatchAnswerSchema',
  'BatchRequestSchema',
  'ClaimSchema',
  'CONTAINER_LIMITS',
  'ConnectionSchema',
  'ContainerSchema',
  'GatewayPolicyAnswerSchema',
  'GatewayPolicyRequestSchema',
  'LookupAnswerSchema',
  'LookupRequestSchema',
  'MAX_BATCH',
  'MAX_BODY_OCTETS',
  'MAX_CLOCK_SKEW_SECONDS',
  'MAX_USER_NAME_OCTETS',
  'NatSchema',
  'OwnerSchema',
  'QuerySchema',
  'ROUTES',
  'SIGNATURE_HEADER',
  'TIMESTAMP_HEADER',
  'WIRE_VERSION',
  'WireErrorSchema',
  'describeIssues',
  'issuesOf',
  'signatureHeaders',
  'signedHeaders',
  'signedText',
  'verifySignature',
  // delegated answers: claim constraints and oidentd user files (docs/apps.md, docs/policy.md)
  'ConstraintsSchema',
  'DEFAULT_IDENT_MAX_LENGTH',
  'DelegateSchema',
  'USER_FILES',
  'USER_FILE_CAPABILITIES',
  'compileConstraints',
  'identViolation',
  // the admin API over the audit database (protocol/audit.ts, docs/wire.md, docs/audit.md)
  'AssignmentDeleteSchema',
  'AssignmentPageSchema',
  'AssignmentPutSchema',
  'AssignmentQuerySchema',
  'AssignmentSchema',
  'AssignmentScopeSchema',
  'AuditPageSchema',
  'AuditQuerySchema',
  'AuditRecordSchema',
  'DEFAULT_PAGE',
  'GatewaySchema',
  'GatewaysSchema',
  'MAX_PAGE',
];

const SERVER = [
  'IdentServer',
  'IdentTransaction',
  'SERVER_DEFAULTS',
  'IdentServerError',
  'IdentBindError',
  'IdentDuplicateReplyError',
  'IdentHandlerFailedError',
  'IdentHandlerTimeoutError',
  'IdentInvalidReplyError',
  'IdentLineTooLongError',
  'IdentServerRunningError',
  'IdentSocketError',
  'IdentTransportError',
];

const CLIENT = [
  'IdentClient',
  'ident',
  'IdentClientError',
  'IdentClosedError',
  'IdentConnectError',
  'IdentMalformedReplyError',
  'IdentPortMismatchError',
  'IdentTimeoutError',
];

const GATEWAY = [
  // resolvers
  'createEmbeddedResolver',
  'createHttpResolver',
  'DEFAULT_FALLBACK',
  'RESOLVER_DEFAULTS',
  'ResolverConfigError',
  'ResolverFailure',
  // owner lookup
  'createOwnerLookup',
  'OwnerLookupError',
  'OwnerLookupHelperError',
  'OwnerLookupKernelError',
  'OwnerLookupTimeoutError',
  'OwnerLookupUnsupportedError',
  // NAT and containers (docs/nat.md)
  'createDockerSource',
  'createForwardedSource',
  'createNatSource',
  'NatLookupError',
  'NatLookupKernelError',
  'NatLookupTimeoutError',
  'NatLookupUnsupportedError',
  // the claims client (docs/claims.md)
  'ClaimsApiError',
  'ClaimsSocketError',
  'createClaimsClient',
  'endpointsOf',
  // the pipeline, the daemon, the CLI's parsers
  'createQueryPipeline',
  'startGateway',
  'ConfigError',
  'parseQueryArgs',
  'parseServeArgs',
  'parseWorkerArgs',
];

const WORKER = [
  'createApp',
  'RequestRejected',
  'MAX_REMEMBERED_SIGNATURES',
  'createMemoryStore',
  'createKvStore',
  'KV_CACHE_TTL_MS',
  'POLICY_KV_KEY',
  'openFileStore',
  'FileStoreError',
  'PolicyFileReadError',
  'PolicyFileInvalidError',
  'PolicyStoreError',
  'policyVersion',
  'snapshotOf',
  'startNodeWorker',
  'DEFAULT_POLICY',
  'PolicyError',
  'PolicySchema',
  'compilePolicy',
  'decide',
  'explain',
  'parsePolicy',
  'redactPolicy',
  // the audit database (docs/audit.md)
  'createAuditStore',
  'CursorError',
  'MAX_SEARCH_LIMIT',
  'DatabaseError',
  'sql',
  'd1Database',
  'openSqliteDatabase',
  'openLocalAudit',
  'createAuditRecorder',
  'createAssignmentCache',
];

const CLAIMS = ['ClaimsApiError', 'DEFAULT_CLAIMS_SOCKET', 'createClaimsClient', 'endpointsOf'];

const ENTRY_POINTS: [string, string, string[]][] = [
  ['identgate', '../dist/index.js', [...SERVER, ...CLIENT, ...PROTOCOL]],
  ['identgate/protocol', '../dist/protocol/index.js', PROTOCOL],
  ['identgate/gateway', '../dist/gateway/index.js', GATEWAY],
  ['identgate/worker', '../dist/worker/index.js', WORKER],
  ['identgate/claims', '../dist/gateway/claims/client.js', CLAIMS],
];

describe('public exports', () => {
  for (const [name, path, expected] of ENTRY_POINTS) {
    it(`${name} exports exactly its documented API`, async () => {
      const module = (await import(new URL(path, import.meta.url).href)) as Record<string, unknown>;
      expect(Object.keys(module).sort()).toEqual([...new Set(expected)].sort());
    });
  }
});
