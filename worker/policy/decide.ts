/**
 * Decisions: the first rule whose conditions hold answers, else the default (decide, via the rule
 * index), and why each earlier rule did not (explain, rule by rule). Pure and synchronous.
 */
import type { IdentAnswer } from '../../protocol/reply.js';
import type { Delegate, LookupRequest } from '../../protocol/wire.js';
import type { CompiledPolicy, CompiledRule } from './compile.js';
import { CONDITION_NAMES, failedCondition, type Condition } from './match.js';
import { firstMatch } from './rule-index.js';
import type { PolicyMatch } from './schema.js';
import type { AssignedIdents } from './actions/action.js';

export interface Decision {
  readonly answer: IdentAnswer;
  /** Name of the deciding rule; "default" for the policy default. */
  readonly rule: string;
  /** Set when the gateway is to try this first (docs/wire.md "Delegated answers"); `answer` is then the fallback. */
  readonly delegate?: Delegate;
}

let pool: Uint32Array | undefined;
let poolNext = 0;

/**
 * The default random source for random rules: WebCrypto, drawn 256 values at
 * a time. Random user ids hide who a connection belongs to, so they should
 * not be predictable from earlier answers.
 */
export function cryptoRandom(): number {
  if (pool === undefined || poolNext === pool.length) {
    pool ??= new Uint32Array(256);
    crypto.getRandomValues(pool);
    poolNext = 0;
  }
  return pool[poolNext++]! / 0x100000000;
}

const constantDecisions = new WeakMap<CompiledRule, Decision>();

function decisionOf(
  rule: CompiledRule,
  request: LookupRequest,
  random: () => number,
  assigned: AssignedIdents | undefined,
): Decision {
  const constant = rule.answerer.constant;
  if (rule.answerer.delegateFor !== undefined) {
    const answer = constant ?? rule.answerer.answer(request, random);
    const delegate = rule.answerer.delegateFor(request);
    return delegate === undefined ? { answer, rule: rule.name } : { answer, rule: rule.name, delegate };
  }
  if (constant !== null) {
    let decision = constantDecisions.get(rule);
    if (decision === undefined) {
      const delegate = rule.answerer.delegate;
      decision = Object.freeze(
        delegate === undefined
          ? { answer: constant, rule: rule.name }
          : { answer: constant, rule: rule.name, delegate },
      );
      constantDecisions.set(rule, decision);
    }
    return decision;
  }
  const answer = rule.answerer.answer(request, random, assigned);
  const delegate = rule.answerer.delegate;
  return delegate === undefined ? { answer, rule: rule.name } : { answer, rule: rule.name, delegate };
}

function decidingRule(compiled: CompiledPolicy, request: LookupRequest): CompiledRule {
  const facts = compiled.facts;
  facts.load(request);
  const ruleIndex = firstMatch(compiled.index, facts);
  return ruleIndex === -1 ? compiled.fallback : compiled.rules[ruleIndex]!;
}

/**
 * Decides the answer to a lookup request: first matching rule, else the default.
 * Always synchronous (typed so that callers may also `await` it). `random`
 * (values in [0, 1)) is used by random rules only, `assigned` by the assigned action only.
 *
 * @example
 * decide(compilePolicy(DEFAULT_POLICY), request)
 * // { answer: { type: 'USERID', opsys: 'UNIX', userId: 'alice' }, rule: 'default' }
 */
export function decide(
  compiled: CompiledPolicy,
  request: LookupRequest,
  random: () => number = cryptoRandom,
  assigned?: AssignedIdents,
): Decision {
  return decisionOf(decidingRule(compiled, request), request, random, assigned);
}

export interface SkippedRule {
  readonly rule: string;
  readonly ruleIndex: number;
  /** The first condition (in evaluation order) that did not hold. */
  readonly failed: Condition;
}

export interface Explanation {
  /** Name of the rule that answers ("default" for the default). */
  readonly rule: string;
  /** Its position in policy.rules, null for the default. */
  readonly ruleIndex: number | null;
  readonly answer: IdentAnswer;
  /** The deciding rule's conditions, as written (all of them held); {} for the default. */
  readonly matched: PolicyMatch;
  /** Every earlier rule, in order, with the condition that ruled it out (the first 1000). */
  readonly skipped: readonly SkippedRule[];
  /** How many rules were skipped in all. */
  readonly skippedCount: number;
  /** What the gateway would try first (forward, userFile); `answer` is then the fallback. */
  readonly delegate?: Delegate;
}

const MAX_SKIPPED_LISTED = 1000;

/**
 * Explains a decision for the admin explain route: the deciding rule, its
 * answer, and why each earlier rule did not match. Random and pseudonym
 * answers are computed as decide() would.
 *
 * @example
 * explain(compiled, request)
 * // { rule: 'lan', ruleIndex: 1, answer: {...}, matched: { clientAddress: '192.0.2.0/24' },
 * //   skipped: [{ rule: 'hide-root', ruleIndex: 0, failed: 'ownerUid' }], skippedCount: 1 }
 */
export function explain(
  compiled: CompiledPolicy,
  request: LookupRequest,
  random: () => number = cryptoRandom,
  assigned?: AssignedIdents,
): Explanation {
  const facts = compiled.facts;
  facts.load(request);
  const skipped: SkippedRule[] = [];
  let deciding = compiled.fallback;
  let skippedCount = 0;
  for (const rule of compiled.rules) {
    const failed = failedCondition(rule.match, facts);
    if (failed === 0) {
      deciding = rule;
      break;
    }
    skippedCount++;
    if (skipped.length < MAX_SKIPPED_LISTED)
      skipped.push({ rule: rule.name, ruleIndex: rule.index!, failed: CONDITION_NAMES[failed] as Condition });
  }
  const { answer, delegate } = decisionOf(deciding, request, random, assigned);
  const matched = deciding.index === null ? {} : (compiled.policy.rules[deciding.index]!.match ?? {});
  return {
    rule: deciding.name,
    ruleIndex: deciding.index,
    answer,
    ...(delegate !== undefined && { delegate }),
    matched,
    skipped,
    skippedCount,
  };
}
