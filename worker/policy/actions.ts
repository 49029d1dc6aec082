/**
 * Rule actions, compiled into answerers: functions from a request to an
 * IdentAnswer that never break an RFC 1413 reply rule. Constant answers (fixed
 * user ids, errors) are built and checked once, at compile time; answers built
 * from request data (the owner's name) are checked as they are made, and one
 * that cannot be written becomes UNKNOWN-ERROR, as RFC 1413 servers do. Opsys
 * follows RFC 1413 §6: UNIX for an owner's login name, OTHER for any other kind
 * of identifier, unless the rule says otherwise.
 *
 * @example
 * const answerer = compileAction({ action: { reveal: 'name' } }, undefined);
 * answerer.answer(request, Math.random) // { type: 'USERID', opsys: 'UNIX', userId: 'alice' }
 */
import type { ErrorToken } from '../../protocol/tokens.js';
import { replyRuleViolation, type IdentAnswer } from '../../protocol/reply.js';
import type { LookupRequest } from '../../protocol/wire.js';
import {
  DEFAULT_PSEUDONYM_LENGTH,
  DEFAULT_PSEUDONYM_PREFIX,
  DEFAULT_RANDOM_ALPHABET,
  type PolicyOutcome,
} from './schema.js';

export interface Answerer {
  /** The answer when it does not depend on the request (errors, fixed ids); else null. */
  readonly constant: IdentAnswer | null;
  answer(request: LookupRequest, random: () => number): IdentAnswer;
}

const UNKNOWN_ERROR: IdentAnswer = Object.freeze({ type: 'ERROR', error: 'UNKNOWN-ERROR' });
const USER_ID_MAX_OCTETS = 512;
const encoder = new TextEncoder();

function errorAnswer(error: ErrorToken): IdentAnswer {
  return Object.freeze({ type: 'ERROR', error });
}

function userIdAnswer(opsys: string, charset: string | undefined, userId: string): IdentAnswer {
  return charset === undefined ? { type: 'USERID', opsys, userId } : { type: 'USERID', opsys, charset, userId };
}

function constant(answer: IdentAnswer): Answerer {
  const violation = replyRuleViolation(answer);
  if (violation) throw new TypeError(`unparsed policy: ${violation}`);
  const frozen = Object.freeze(answer);
  return { constant: frozen, answer: () => frozen };
}

/**
 * Answers with a user id taken from request data: checked here, on the fast
 * path by a scan of its characters. A non-ASCII id gets charset UTF-8 unless
 * the rule set a charset (which must then allow it).
 */
function dynamicUserId(opsys: string, charset: string | undefined, userId: string): IdentAnswer {
  let ascii = true;
  for (let i = 0; i < userId.length; i++) {
    const c = userId.charCodeAt(i);
    if (c === 0 || c === 10 || c === 13) return UNKNOWN_ERROR;
    if (c > 0x7f) ascii = false;
  }
  const first = userId.charCodeAt(0);
  if (userId.length === 0 || first === 0x20 || first === 0x09) return UNKNOWN_ERROR;
  if (ascii) return userId.length > USER_ID_MAX_OCTETS ? UNKNOWN_ERROR : userIdAnswer(opsys, charset, userId);
  const answer = userIdAnswer(opsys, charset ?? 'UTF-8', userId);
  if (encoder.encode(userId).length > USER_ID_MAX_OCTETS || replyRuleViolation(answer)) return UNKNOWN_ERROR;
  return answer;
}

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

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

/** What a pseudonym is computed over: the gateway and the owner's uid, with a version label. */
export function pseudonymMessage(gateway: string, uid: number): Uint8Array {
  return encoder.encode(`identgate-pseudonym-v1\0${gateway}\0${uid}`);
}

/**
 * Compiles one outcome (a rule's or the default's action with its opsys and
 * charset). `mac` is the policy key's HMAC-SHA256, required for pseudonyms.
 *
 * @example
 * compileAction({ action: { error: 'HIDDEN-USER' } }, undefined).constant // { type: 'ERROR', error: 'HIDDEN-USER' }
 */
export function compileAction(
  outcome: PolicyOutcome,
  mac: ((message: Uint8Array) => Uint8Array) | undefined,
): Answerer {
  const action = outcome.action;
  const charset = outcome.charset;
  const opsys = outcome.opsys ?? ('reveal' in action && action.reveal === 'name' ? 'UNIX' : 'OTHER');
  const otherOpsys = outcome.opsys ?? 'OTHER';

  if ('error' in action) return constant(errorAnswer(action.error));
  if ('userId' in action) return constant(userIdAnswer(opsys, charset, action.userId));

  if ('random' in action) {
    const spec = action.random;
    if ('from' in spec) {
      const answers = spec.from.map((userId) => constant(userIdAnswer(opsys, charset, userId)).constant!);
      const last = answers.length - 1;
      return {
        constant: null,
        answer: (_request, random) => answers[Math.min(last, Math.max(0, Math.floor(random() * answers.length)))]!,
      };
    }
    const alphabet = spec.alphabet ?? DEFAULT_RANDOM_ALPHABET;
    const size = alphabet.length;
    const chars = spec.chars;
    return {
      constant: null,
      answer: (_request, random) => {
        let userId = '';
        for (let i = 0; i < chars; i++)
          userId += alphabet[Math.min(size - 1, Math.max(0, Math.floor(random() * size)))];
        return userIdAnswer(opsys, charset, userId);
      },
    };
  }

  const ifUnknown = errorAnswer(action.ifUnknown ?? 'NO-USER');

  if ('pseudonym' in action) {
    if (!mac) throw new TypeError('unparsed policy: a pseudonym rule needs the policy key');
    const length = action.pseudonym.length ?? DEFAULT_PSEUDONYM_LENGTH;
    const prefix = action.pseudonym.prefix ?? DEFAULT_PSEUDONYM_PREFIX;
    return {
      constant: null,
      answer: (request) => {
        const owner = request.owner;
        if (owner === null) return ifUnknown;
        return userIdAnswer(opsys, charset, prefix + base32(mac(pseudonymMessage(request.gateway, owner.uid)), length));
      },
    };
  }

  if (action.reveal === 'uid') {
    return {
      constant: null,
      answer: (request) =>
        request.owner === null ? ifUnknown : userIdAnswer(opsys, charset, String(request.owner.uid)),
    };
  }

  const ifNoName = action.ifNoName ?? 'uid';
  const noName = ifNoName === 'uid' ? null : errorAnswer(ifNoName);
  return {
    constant: null,
    answer: (request) => {
      const owner = request.owner;
      if (owner === null) return ifUnknown;
      if (owner.userName !== null) return dynamicUserId(opsys, charset, owner.userName);
      return noName ?? userIdAnswer(otherOpsys, charset, String(owner.uid));
    },
  };
}
