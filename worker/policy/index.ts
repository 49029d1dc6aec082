/**
 * The policy engine (docs/policy.md): a document parsed once, compiled once per version, then
 * deciding every lookup as a pure, synchronous function. No node: imports.
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
