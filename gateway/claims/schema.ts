/**
 * The claims API's messages (docs/claims.md): one zod schema per body, shared by the gateway (which parses what
 * callers send) and the client in identgate/claims (which parses what the gateway answers). Unknown fields are
 * refused; `ident` keeps the RFC 1413 user id rules, `user` the wire's (protocol/wire.ts ClaimSchema).
 *
 * @example
 * const input = ClaimRequestSchema.parse(JSON.parse(body));
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { ClaimSchema } from '../../protocol/wire.js';

export const CLAIMS_ROUTES = {
  claims: '/v1/claims',
  pending: '/v1/pending',
} as const;

/** Largest request body the API reads, in octets. */
export const MAX_CLAIMS_BODY_OCTETS = 4096;

const claimFields = ClaimSchema.unwrap().shape;

export const EndpointSchema = z.strictObject({
  address: z
    .string()
    .max(64)
    .refine((address) => isIP(address.replace(/%.*$/, '')) !== 0, 'must be an IP address'),
  port: z.number().int().min(1).max(65535),
});

export const ClaimRequestSchema = z.strictObject({
  local: EndpointSchema,
  remote: EndpointSchema,
  user: claimFields.user,
  ident: claimFields.ident,
});

export const PendingRequestSchema = z.strictObject({
  remote: EndpointSchema,
  // CLAIMS_DEFAULTS.maxHoldMs (registry.ts): a hold is for the seconds around a connect.
  ttlMs: z.number().int().min(1).max(60_000),
});

export const ClaimInfoSchema = z.strictObject({
  id: z.string(),
  uid: z.number().int(),
  local: EndpointSchema,
  remote: EndpointSchema,
  user: z.string(),
  ident: z.string().optional(),
  /** ISO 8601. */
  createdAt: z.string(),
});

export const ClaimListSchema = z.strictObject({ claims: z.array(ClaimInfoSchema) });

export const HoldInfoSchema = z.strictObject({
  id: z.string(),
  uid: z.number().int(),
  remote: EndpointSchema,
  /** ISO 8601. */
  expiresAt: z.string(),
});

export const ReleasedSchema = z.strictObject({ released: z.number().int().min(0) });

export const ClaimsErrorSchema = z.strictObject({
  error: z.strictObject({ code: z.string(), message: z.string() }),
});

export type ClaimRequest = z.infer<typeof ClaimRequestSchema>;
export type PendingRequest = z.infer<typeof PendingRequestSchema>;
export type ClaimInfo = z.infer<typeof ClaimInfoSchema>;
export type HoldInfo = z.infer<typeof HoldInfoSchema>;
export type ClaimsEndpoint = z.infer<typeof EndpointSchema>;

/** Every error `code` the API answers. */
export type ClaimsErrorCode =
  | 'invalid_json'
  | 'invalid_request'
  | 'body_too_large'
  | 'no_connection'
  | 'not_owner'
  | 'not_found'
  | 'too_many_claims'
  | 'too_many_holds'
  | 'owner_lookup_off'
  | 'peer_credentials_unavailable'
  | 'internal_error';
