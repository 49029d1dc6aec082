/**
 * `{ "pseudonym": { "length"?, "prefix"?, "of"? } }`: a stable id keyed by the policy key: HMAC of the gateway and the
 * owner's uid, or (`"of": "innerAddress"`) of the inner host behind this NAT router (request.nat, docs/nat.md).
 */
import { z } from 'zod';
import type { ErrorToken } from '../../../protocol/tokens.js';
import { errorToken, printable } from '../zod.js';
import { errorAnswer, userIdAnswer, type ActionDefinition } from './action.js';

export const DEFAULT_PSEUDONYM_LENGTH = 12;
export const DEFAULT_PSEUDONYM_PREFIX = 'u';
/** 256 bits of HMAC make 51 base32 characters. */
export const MAX_PSEUDONYM_LENGTH = 51;
export const MIN_PSEUDONYM_LENGTH = 6;

export interface PseudonymAction {
  /** perClaimUser: a claimed connection's pseudonym is keyed by the claim's user too (a bouncer's users differ). */
  pseudonym: { length?: number; prefix?: string; perClaimUser?: boolean; of?: 'uid' | 'innerAddress' };
  ifUnknown?: ErrorToken;
}

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';
const encoder = new TextEncoder();

/** The first `length` base32 characters (lowercase, RFC 4648 alphabet) of `digest`. */
export function base32(digest: Uint8Array, length: number): string {
  let text = '';
  let buffer = 0;
  let bits = 0;
  for (let i = 0; i < digest.length && text.length < length; i++) {
    buffer = ((buffer << 8) | digest[i]!) & 0xffff;
    bits += 8;
    while (bits >= 5 && text.length < length) {
      text += BASE32[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return text;
}

/**
 * What a pseudonym is computed over: the gateway and the owner's uid, with a version label; with a
 * claim user (perClaimUser), that too, under its own label so no unclaimed pseudonym can equal it.
 */
export function pseudonymMessage(gateway: string, uid: number, claimUser?: string): Uint8Array {
  if (claimUser !== undefined) return encoder.encode(`identgate-pseudonym-claim-v1\0${gateway}\0${uid}\0${claimUser}`);
  return encoder.encode(`identgate-pseudonym-v1\0${gateway}\0${uid}`);
}

/** What an inner host's pseudonym is computed over: the gateway and the inner address as the gateway wrote it. */
export function innerPseudonymMessage(gateway: string, innerAddress: string): Uint8Array {
  return encoder.encode(`identgate-pseudonym-inner-v1\0${gateway}\0${innerAddress}`);
}

export const pseudonym: ActionDefinition<PseudonymAction> = {
  key: 'pseudonym',
  schema: z.strictObject({
    pseudonym: z.strictObject({
      length: z.number().int().min(MIN_PSEUDONYM_LENGTH).max(MAX_PSEUDONYM_LENGTH).optional(),
      prefix: z
        .string()
        .max(32)
        .refine((prefix) => printable.test(prefix), 'must be printable ASCII without white space')
        .optional(),
      perClaimUser: z.boolean().optional(),
      of: z.enum(['uid', 'innerAddress'], 'must be "uid" or "innerAddress"').optional(),
    }),
    ifUnknown: errorToken.optional(),
  }),
  needsKey: 'a pseudonym',
  compile(action, { opsys = 'OTHER', charset, mac }) {
    if (!mac) throw new TypeError('unparsed policy: a pseudonym rule needs the policy key');
    const ifUnknown = errorAnswer(action.ifUnknown ?? 'NO-USER');
    const length = action.pseudonym.length ?? DEFAULT_PSEUDONYM_LENGTH;
    const prefix = action.pseudonym.prefix ?? DEFAULT_PSEUDONYM_PREFIX;
    if (action.pseudonym.of === 'innerAddress') {
      return {
        constant: null,
        answer: (request) => {
          const nat = request.nat;
          if (nat == null) return ifUnknown;
          const digest = mac(innerPseudonymMessage(request.gateway, nat.innerAddress));
          return userIdAnswer(opsys, charset, prefix + base32(digest, length));
        },
      };
    }
    const perClaimUser = action.pseudonym.perClaimUser === true;
    return {
      constant: null,
      answer: (request) => {
        const owner = request.owner;
        if (owner === null) return ifUnknown;
        const claimUser = perClaimUser ? (request.claim?.user ?? undefined) : undefined;
        const message = pseudonymMessage(request.gateway, owner.uid, claimUser);
        return userIdAnswer(opsys, charset, prefix + base32(mac(message), length));
      },
    };
  },
};
