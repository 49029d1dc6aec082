/**
 * Compiling a parsed policy, once per version and synchronously: compiled matches, answerers, the
 * pseudonym HMAC and the rule index (rule-index.ts).
 */
import { compileAction, type Answerer } from './actions/index.js';
import { createHmacSha256 } from './hmac.js';
import { compileMatch, Facts, NameTable, type CompiledMatch } from './match.js';
import { buildRuleIndex, type RuleIndex } from './rule-index.js';
import type { Policy } from './schema.js';

export interface CompiledRule {
  readonly name: string;
  /** Position in policy.rules, or null for the default. */
  readonly index: number | null;
  readonly match: CompiledMatch;
  readonly answerer: Answerer;
}

/** A policy ready for decisions. Opaque: pass it to decide() and explain(). */
export interface CompiledPolicy {
  readonly policy: Policy;
  readonly rules: readonly CompiledRule[];
  readonly fallback: CompiledRule;
  /** Scratch space for one decision at a time (decisions are synchronous). */
  readonly facts: Facts;
  /** Finds the first matching rule without trying rules one by one (rule-index.ts). */
  readonly index: RuleIndex;
}

/**
 * Compiles a parsed policy. Throws TypeError only for a policy that did not
 * come from parsePolicy (a bug, not an input error).
 *
 * @example
 * const compiled = compilePolicy(DEFAULT_POLICY);
 */
export function compilePolicy(policy: Policy): CompiledPolicy {
  const gateways = new NameTable();
  const ownerNames = new NameTable();
  const mac = policy.key === undefined ? undefined : createHmacSha256(new TextEncoder().encode(policy.key));
  const rules = policy.rules.map(
    (rule, index): CompiledRule => ({
      name: rule.name,
      index,
      match: compileMatch(rule.match, gateways, ownerNames),
      answerer: compileAction(rule, mac),
    }),
  );
  const fallback: CompiledRule = {
    name: 'default',
    index: null,
    match: compileMatch(undefined, gateways, ownerNames),
    answerer: compileAction(policy.default, mac),
  };
  const index = buildRuleIndex(
    rules.map((rule) => rule.match),
    gateways,
    ownerNames,
  );
  return Object.freeze({ policy, rules, fallback, facts: new Facts(gateways, ownerNames), index });
}
