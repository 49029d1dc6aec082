/**
 * What a policy action is: the field that names it, its schema, what it needs from the rest of
 * the policy, and its compile step into an Answerer. One file per action; index.ts lists them.
 */
import type { z } from 'zod';
import { replyRuleViolation, type IdentAnswer } from '../../../protocol/reply.js';
import type { ErrorToken } from '../../../protocol/tokens.js';
import type { Delegate, LookupRequest } from '../../../protocol/wire.js';

/** The admin-assigned idents at the decision point (worker/audit/assignments.ts): a hash lookup, no I/O. */
export interface AssignedIdents {
  identFor(gateway: string, ownerUid: number | null, claimUser: string | null): string | undefined;
}

/** A compiled action: answers a request, never breaking an RFC 1413 reply rule. */
export interface Answerer {
  /** The answer when it does not depend on the request (errors, fixed ids); else null. */
  readonly constant: IdentAnswer | null;
  /** `assigned` is there when the worker has a database (only the assigned action reads it). */
  answer(request: LookupRequest, random: () => number, assigned?: AssignedIdents): IdentAnswer;
  /**
   * Work the gateway does on its own host before writing (docs/wire.md "Delegated answers"); `answer`
   * is then what it writes when the delegate yields nothing acceptable (the rule's fallback).
   */
  readonly delegate?: Delegate;
  /** A delegate that depends on the request (a forward to the inner host of request.nat); undefined: none. */
  delegateFor?(request: LookupRequest): Delegate | undefined;
}

export interface CompileContext {
  /** The outcome's opsys; undefined leaves it to the action (RFC 1413 §6: UNIX for login names, else OTHER). */
  readonly opsys: string | undefined;
  /** The outcome's charset; undefined means US-ASCII. */
  readonly charset: string | undefined;
  /** HMAC-SHA256 under the policy key; undefined when the policy has no key. */
  readonly mac: ((message: Uint8Array) => Uint8Array) | undefined;
  /** Compiles an action nested in this one (a fallback) with the same opsys, charset and key. */
  readonly compileNested: (action: object) => Answerer;
}

/** A fixed user id inside an action and its path there, e.g. `['random', 'from', 2]`. */
export interface FixedUserId {
  readonly userId: unknown;
  readonly path: PropertyKey[];
}

export interface ActionDefinition<A extends object> {
  /** The field that names the action in the policy document: `{ "reveal": ... }`. */
  readonly key: string;
  /** Parses the whole action object; refinements name their fields by path. */
  readonly schema: z.ZodType<A>;
  /** Answers only errors: the rule may not set opsys or charset. */
  readonly answersError?: boolean;
  /** Set when the action needs the policy key; names the action in the error for a policy without one. */
  readonly needsKey?: string;
  /** The user ids it answers as written, checked at parse time against the rule's opsys and charset (unparsed). */
  fixedUserIds?(action: Record<string, unknown>): FixedUserId[];
  /** Actions nested in this one (a delegate's fallback), for the parse-time checks; not parsed yet. */
  nested?(action: Record<string, unknown>): { readonly action: unknown; readonly path: PropertyKey[] }[];
  /** The answer is delegated to the gateway (forward, userFile): it may not be nested in another. */
  readonly delegates?: boolean;
  /** Builds the answerer; runs once per policy version, on a parsed action. */
  compile(action: A, context: CompileContext): Answerer;
}

/** The action type a definition parses. */
export type ActionOf<D> = D extends ActionDefinition<infer A> ? A : never;

export const UNKNOWN_ERROR: IdentAnswer = Object.freeze({ type: 'ERROR', error: 'UNKNOWN-ERROR' });
const USER_ID_MAX_OCTETS = 512;
const encoder = new TextEncoder();

export function errorAnswer(error: ErrorToken): IdentAnswer {
  return Object.freeze({ type: 'ERROR', error });
}

export function userIdAnswer(opsys: string, charset: string | undefined, userId: string): IdentAnswer {
  return charset === undefined ? { type: 'USERID', opsys, userId } : { type: 'USERID', opsys, charset, userId };
}

/** An answerer with one answer, checked now: a policy that passed parsePolicy cannot fail here. */
export function constant(answer: IdentAnswer): Answerer {
  const violation = replyRuleViolation(answer);
  if (violation) throw new TypeError(`unparsed policy: ${violation}`);
  const frozen = Object.freeze(answer);
  return { constant: frozen, answer: () => frozen };
}

/**
 * An answer with a user id taken from request data, checked here (on the fast path by a scan of its
 * characters): one that cannot be written is UNKNOWN-ERROR, as RFC 1413 servers answer. A non-ASCII
 * id gets charset UTF-8 unless the rule set a charset (which must then allow it).
 */
export function dynamicUserId(opsys: string, charset: string | undefined, userId: string): IdentAnswer {
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
