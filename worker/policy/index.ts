/**
 * The policy engine: a policy document (docs/policy.md) is parsed once into a
 * typed Policy, compiled once per version, and then decides every lookup as a
 * pure, synchronous function. No node: imports; it runs unchanged in workerd.
 *
 * @example
 * import { compilePolicy, decide, parsePolicy } from './policy/index.js';
 * const compiled = compilePolicy(parsePolicy(JSON.parse(text)));
 * const { answer, rule } = decide(compiled, lookupRequest);
 */
export { PolicyError, type PolicyIssue } from './errors.js';
export {
  DEFAULT_POLICY,
  parsePolicy,
  PolicySchema,
  redactPolicy,
  type Policy,
  type PolicyAction,
  type PolicyMatch,
  type PolicyOutcome,
  type PolicyRule,
} from './schema.js';
export { compilePolicy, type CompiledPolicy } from './compile.js';
export { decide, explain, type Decision, type Explanation, type SkippedRule } from './decide.js';
export type { Condition } from './match.js';
