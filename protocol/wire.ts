/**
 * The gateway<->worker wire contract, version 1 (docs/wire.md): one zod schema per message, parsed
 * wherever untrusted JSON enters; inside, code trusts the inferred types.
 */
import { z } from 'zod';
import { isErrorToken, isToken, type ErrorToken } from './tokens.js';
import { replyRuleViolation, userIdViolation, type IdentAnswer } from './reply.js';

export const WIRE_VERSION = 1;

/** Most queries one batch may carry. */
export const MAX_BATCH = 256;

/** Largest request or answer body either side accepts, in octets. */
export const MAX_BODY_OCTETS = 256 * 1024;

/** Routes, relative to the worker's base URL. */
export const ROUTES = {
  lookup: '/v1/ident',
  batch: '/v1/ident/batch',
  policy: '/v1/policy',
  explain: '/v1/explain',
  /** The audit trail, assignments and fleet (admin; protocol/audit.ts, docs/audit.md). */
  audit: '/v1/audit',
  assignments: '/v1/assignments',
  gateways: '/v1/gateways',
  /** A gateway's copy of the policy, for answering through an outage (signed like lookups; docs/wire.md). */
  gatewayPolicy: '/v1/gateway/policy',
  health: '/healthz',
} as const;

const port = z.number().int().min(1).max(65535);
const tcpPort = z.number().int().min(0).max(65535);
const address = z.string().min(1).max(64);

export const QuerySchema = z.strictObject({ serverPort: port, clientPort: port });

/** The ident connection the query arrived on: local is this host (L), remote the querier (Q). */
export const ConnectionSchema = z.strictObject({
  localAddress: address,
  localPort: tcpPort,
  remoteAddress: address,
  remotePort: tcpPort,
});

/**
 * The longest user name sent, in octets of UTF-8. Owner lookup reports a
 * longer name as no name (null), never a cut one (gateway/owner, and
 * SOCKDIAG_NAME_MAX_OCTETS in gateway/owner/sockdiag-core.h).
 */
export const MAX_USER_NAME_OCTETS = 256;

/** The owner of the queried connection, or null when the gateway does not know it. */
export const OwnerSchema = z
  .strictObject({
    uid: z.number().int().min(0).max(0xffffffff),
    userName: z.string().min(1).max(MAX_USER_NAME_OCTETS).nullable(),
  })
  .nullable();

// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;

/**
 * A local app's claim on the queried connection (the gateway's claims API, docs/claims.md): the app's own
 * user the connection belongs to, and the ident it asks for. null: the connection is not claimed.
 */
export const ClaimSchema = z
  .strictObject({
    user: z
      .string()
      .min(1)
      .max(256)
      .refine((user) => !CONTROL.test(user), 'must not contain control characters'),
    ident: z
      .string()
      .superRefine((ident, ctx) => {
        const violation = userIdViolation(ident);
        if (violation) ctx.addIssue({ code: 'custom', message: violation });
      })
      .optional(),
  })
  .nullable();

/**
 * The inner side of a connection this host translates (NAT): the inner host's address and its port,
 * as the inner host sees its own connection; null when connection tracking knows no translation.
 * Absent when the gateway does not look (no NAT lookup configured, or the owner was found).
 */
export const NatSchema = z
  .strictObject({
    innerAddress: address,
    innerPort: port,
  })
  .nullable();

/** Most labels passed on per container, and their sizes (docs/wire.md). */
export const CONTAINER_LIMITS = { labels: 32, keyOctets: 128, valueOctets: 256, nameOctets: 128 } as const;

/**
 * The container holding the inner address (Docker Engine, `--docker-socket`): its name without
 * Docker's leading "/", and its labels; null when no known container has that address.
 */
export const ContainerSchema = z
  .strictObject({
    name: z.string().min(1).max(CONTAINER_LIMITS.nameOctets),
    labels: z
      .record(z.string().min(1).max(CONTAINER_LIMITS.keyOctets), z.string().max(CONTAINER_LIMITS.valueOctets))
      .refine((labels) => Object.keys(labels).length <= CONTAINER_LIMITS.labels, {
        message: `at most ${CONTAINER_LIMITS.labels} labels`,
      }),
  })
  .nullable();

export const LookupRequestSchema = z.strictObject({
  v: z.literal(WIRE_VERSION),
  /** Unique per query; echoed in the answer and in logs. */
  id: z.string().min(1).max(128),
  /** The gateway's configured name (policy rules may match it). */
  gateway: z.string().min(1).max(128),
  query: QuerySchema,
  connection: ConnectionSchema,
  owner: OwnerSchema,
  /** Optional on the wire so that gateways from before claims still validate; absent means null. */
  claim: ClaimSchema.optional(),
  /** Absent: the gateway did not look (no NAT lookup, or a local owner was found). */
  nat: NatSchema.optional(),
  /** Absent: no --docker-socket, or no inner address to look up. */
  container: ContainerSchema.optional(),
});

export const BatchRequestSchema = z.strictObject({
  v: z.literal(WIRE_VERSION),
  requests: z.array(LookupRequestSchema).min(1).max(MAX_BATCH),
});

const errorToken = z
  .string()
  .refine(isErrorToken, 'must be a standard error or an X-token') as unknown as z.ZodType<ErrorToken>;
const token = z.string().refine(isToken, 'must be 1..64 printable ASCII characters without ":", "," or white space');

export const AnswerSchema = z
  .discriminatedUnion('type', [
    z.strictObject({ type: z.literal('USERID'), opsys: token, charset: token.optional(), userId: z.string() }),
    z.strictObject({ type: z.literal('ERROR'), error: errorToken }),
  ])
  .superRefine((answer, ctx) => {
    const violation = replyRuleViolation(answer as IdentAnswer);
    if (violation) ctx.addIssue({ code: 'custom', message: violation });
  }) as unknown as z.ZodType<IdentAnswer>;

const glob = z.string().min(1).max(256);

/** What an app-supplied name must meet before the gateway writes it (protocol/constraints.ts). */
export const ConstraintsSchema = z.strictObject({
  pattern: z.array(glob).min(1).max(100).optional(),
  deny: z.array(glob).min(1).max(100).optional(),
  maxLength: z.number().int().min(1).max(512),
  localNames: z.boolean(),
});

/** oidentd user-file capabilities a rule may grant (oidentd.conf(5): reply, hide, random, numeric, ...). */
export const USER_FILE_CAPABILITIES = ['reply', 'hide', 'random', 'numeric', 'random_numeric', 'forward'] as const;
/** The user files the gateway may read, relative to the owner's home directory, in oidentd's order. */
export const USER_FILES = ['.config/oidentd.conf', '.oidentd.conf'] as const;

const delegateFields = {
  /** Opsys and charset of a USERID answer the delegate produces. */
  opsys: token,
  charset: token.optional(),
  accept: ConstraintsSchema,
};

/**
 * Work the gateway does on its own host before it writes the reply (docs/wire.md "Delegated answers"):
 * forward the query to a local identd, or read the owner's oidentd user file. When the delegate yields
 * no acceptable answer (timeout, refusal, garbage, no file, a refused name), the answer's `answer` is written.
 */
export const DelegateSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('forward'),
    /** An IP address literal; the gateway forwards only to addresses it allows (--forward-allow). */
    host: address,
    port,
    /** The ports to ask about; absent: the query's own. */
    query: QuerySchema.optional(),
    ...delegateFields,
  }),
  z.strictObject({
    kind: z.literal('userfile'),
    files: z.array(z.enum(USER_FILES)).min(1).max(USER_FILES.length),
    allow: z.array(z.enum(USER_FILE_CAPABILITIES)).max(USER_FILE_CAPABILITIES.length),
    ...delegateFields,
  }),
]);

export const LookupAnswerSchema = z.strictObject({
  v: z.literal(WIRE_VERSION),
  id: z.string().min(1).max(128),
  /** What to write; with a delegate, what to write when the delegate yields nothing (the rule's fallback). */
  answer: AnswerSchema,
  /** Name of the policy rule that decided ("default" for the policy's default). */
  rule: z.string().min(1).max(128),
  delegate: DelegateSchema.optional(),
});

export const BatchAnswerSchema = z.strictObject({
  v: z.literal(WIRE_VERSION),
  answers: z.array(LookupAnswerSchema).min(1).max(MAX_BATCH),
});

/** A gateway asking for the policy it may answer from when the worker fails (docs/wire.md "Last-good policy"). */
export const GatewayPolicyRequestSchema = z.strictObject({
  v: z.literal(WIRE_VERSION),
  /** Fresh per request, so that two polls within a second are two signatures (the replay guard). */
  id: z.string().min(1).max(128),
  gateway: z.string().min(1).max(128),
  /** The version the gateway holds: when it is still current the answer is `unchanged`, without the policy. */
  have: z.string().min(1).max(128).optional(),
});

export const GatewayPolicyAnswerSchema = z.union([
  z.strictObject({ v: z.literal(WIRE_VERSION), version: z.string().min(1).max(128), unchanged: z.literal(true) }),
  /** `policy`: a policy document (docs/policy.md), parsed by the gateway as it would parse a file. */
  z.strictObject({ v: z.literal(WIRE_VERSION), version: z.string().min(1).max(128), policy: z.unknown() }),
]);

/** JSON error body of every non-2xx response. */
export const WireErrorSchema = z.strictObject({
  error: z.strictObject({ code: z.string(), message: z.string() }),
});

export type Query = z.infer<typeof QuerySchema>;
export type Connection = z.infer<typeof ConnectionSchema>;
export type Owner = z.infer<typeof OwnerSchema>;
export type Claim = z.infer<typeof ClaimSchema>;
export type Nat = z.infer<typeof NatSchema>;
export type Container = z.infer<typeof ContainerSchema>;
export type LookupRequest = z.infer<typeof LookupRequestSchema>;
export type BatchRequest = z.infer<typeof BatchRequestSchema>;
export type LookupAnswer = z.infer<typeof LookupAnswerSchema>;
export type BatchAnswer = z.infer<typeof BatchAnswerSchema>;
export type WireError = z.infer<typeof WireErrorSchema>;
export type GatewayPolicyRequest = z.infer<typeof GatewayPolicyRequestSchema>;
export type GatewayPolicyAnswer = z.infer<typeof GatewayPolicyAnswerSchema>;
export type Delegate = z.infer<typeof DelegateSchema>;
export type ForwardDelegate = Extract<Delegate, { kind: 'forward' }>;
export type UserFileDelegate = Extract<Delegate, { kind: 'userfile' }>;
export type UserFileCapability = (typeof USER_FILE_CAPABILITIES)[number];
