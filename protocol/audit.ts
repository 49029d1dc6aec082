/**
 * The admin API over the audit database, version 1: the query of GET /v1/audit and /v1/assignments, the body
 * of PUT /v1/assignments and every answer's JSON, one zod schema each, shared by the worker, CLI and consoles.
 * Examples of each: docs/wire.md.
 *
 * @example
 * const filter = AuditQuerySchema.parse({ userId: 'u7algntdlwuka', from: '2026-12-04T12:00:00Z' });
 * const page = AuditPageSchema.parse(await response.json()); // { records: [...], next: null }
 */
import { z } from 'zod';
import { userIdViolation } from './reply.js';
import { AnswerSchema, ClaimSchema, ConnectionSchema, OwnerSchema, QuerySchema } from './wire.js';

/** Most records or assignments one page holds. */
export const MAX_PAGE = 1000;
export const DEFAULT_PAGE = 100;

const name = z.string().min(1).max(128);
const userName = z.string().min(1).max(256);

// Query strings carry text: numbers and times are parsed here, once.
const portParam = z
  .string()
  .regex(/^\d{1,5}$/, 'must be a port number')
  .transform(Number)
  .pipe(z.number().int().min(1, 'must be 1..65535').max(65535, 'must be 1..65535'));
const uidParam = z
  .string()
  .regex(/^\d{1,10}$/, 'must be a uid (a number)')
  .transform(Number)
  .pipe(z.number().int().max(0xffffffff, 'must be at most 4294967295'));
const timeParam = z
  .string()
  .regex(
    /^\d{4}-\d{2}-\d{2}(?:[T ][0-9:.]+(?:Z|[+-]\d{2}:?\d{2})?)?$/,
    'must be an ISO 8601 time, e.g. 2026-12-04T12:03:00Z',
  )
  .transform((text, ctx) => {
    const at = Date.parse(text);
    if (Number.isNaN(at)) ctx.addIssue({ code: 'custom', message: 'is not a valid time' });
    return at;
  });
const limitParam = z
  .string()
  .regex(/^\d{1,4}$/, `must be 1..${MAX_PAGE}`)
  .transform(Number)
  .pipe(z.number().int().min(1, `must be 1..${MAX_PAGE}`).max(MAX_PAGE, `must be 1..${MAX_PAGE}`));
const cursorParam = z.string().min(1).max(512);

/** GET /v1/audit?…: every filter optional; `from` inclusive, `to` exclusive; newest first. */
export const AuditQuerySchema = z.strictObject({
  userId: z.string().min(1).max(512).optional(),
  remoteAddress: z.string().min(1).max(64).optional(),
  serverPort: portParam.optional(),
  clientPort: portParam.optional(),
  gateway: name.optional(),
  ownerUid: uidParam.optional(),
  claimUser: userName.optional(),
  from: timeParam.optional(),
  to: timeParam.optional(),
  limit: limitParam.optional(),
  cursor: cursorParam.optional(),
});

/** One decision as the audit trail holds it. */
export const AuditRecordSchema = z.strictObject({
  id: z.number().int(),
  /** ISO 8601, UTC, milliseconds. */
  at: z.string(),
  gateway: name,
  /** The key that signed the request: "k<index>:<first 8 hex of its SHA-256>"; null when unsigned (embedded). */
  signingKey: z.string().nullable(),
  requestId: z.string(),
  query: QuerySchema,
  connection: ConnectionSchema,
  owner: OwnerSchema,
  claim: ClaimSchema,
  answer: AnswerSchema,
  rule: z.string(),
  policyVersion: z.string(),
});

export const AuditPageSchema = z.strictObject({
  records: z.array(AuditRecordSchema),
  /** Pass as `cursor` for the next page; null on the last one. */
  next: z.string().nullable(),
});

const ident = z.string().superRefine((value, ctx) => {
  const violation = userIdViolation(value);
  if (violation) ctx.addIssue({ code: 'custom', message: violation.replace(/^user id/, 'ident') });
});

/** Whose ident: an owner's uid on a gateway, or a claim's user on a gateway. */
export const AssignmentScopeSchema = z.union([
  z.strictObject({ gateway: name, ownerUid: z.number().int().min(0).max(0xffffffff) }),
  z.strictObject({ gateway: name, claimUser: userName }),
]);

/** PUT /v1/assignments. */
export const AssignmentPutSchema = z.strictObject({ scope: AssignmentScopeSchema, ident });

export const AssignmentSchema = z.strictObject({
  scope: AssignmentScopeSchema,
  ident: z.string(),
  /** ISO 8601. */
  createdAt: z.string(),
});

/** GET /v1/assignments?…: filters optional, ordered by ident. */
export const AssignmentQuerySchema = z.strictObject({
  gateway: name.optional(),
  ownerUid: uidParam.optional(),
  claimUser: userName.optional(),
  ident: z.string().min(1).max(512).optional(),
  limit: limitParam.optional(),
  cursor: cursorParam.optional(),
});

/** DELETE /v1/assignments?ident=… or ?gateway=…&ownerUid=… or ?gateway=…&claimUser=… */
export const AssignmentDeleteSchema = z.union([
  z.strictObject({ ident: z.string().min(1).max(512) }),
  z.strictObject({ gateway: name, ownerUid: uidParam }),
  z.strictObject({ gateway: name, claimUser: userName }),
]);

export const AssignmentPageSchema = z.strictObject({
  assignments: z.array(AssignmentSchema),
  next: z.string().nullable(),
});

/** A gateway the worker has heard from. */
export const GatewaySchema = z.strictObject({
  name,
  signingKey: z.string().nullable(),
  /** The gateway's identgate version (from its User-Agent); null when it did not say. */
  version: z.string().nullable(),
  firstSeen: z.string(),
  lastSeen: z.string(),
  /** Decisions recorded for it (retention does not lower this). */
  queries: z.number().int(),
});

export const GatewaysSchema = z.strictObject({ gateways: z.array(GatewaySchema) });

export type AuditQuery = z.infer<typeof AuditQuerySchema>;
export type AuditRecordJson = z.infer<typeof AuditRecordSchema>;
export type AuditPage = z.infer<typeof AuditPageSchema>;
export type AssignmentScope = z.infer<typeof AssignmentScopeSchema>;
export type AssignmentJson = z.infer<typeof AssignmentSchema>;
