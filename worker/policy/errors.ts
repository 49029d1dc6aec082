/**
 * The one error the policy engine throws: PolicyError, code ERR_POLICY_INVALID,
 * raised when a policy document does not parse. Its message names every bad
 * field by path (`rules[2].match.clientAddress: not a CIDR: 10.0.0.0/33`) so an
 * operator can fix the file without reading code; `issues` carries the same
 * findings as data for the admin API.
 *
 * @example
 * try { parsePolicy(json) } catch (error) {
 *   if (error instanceof PolicyError) console.error(error.message) // one line, names the path
 * }
 */
import type { Issue } from '../../protocol/issues.js';
import { IdentgateError } from '../../protocol/errors.js';

/** One problem in a policy document: where (`rules[2].match.serverPort`) and what. */
export type PolicyIssue = Issue;

export class PolicyError extends IdentgateError {
  readonly code = 'ERR_POLICY_INVALID';
  override readonly userError = true;
  readonly issues: readonly PolicyIssue[];
  constructor(issues: readonly PolicyIssue[]) {
    super(issues.map((issue) => `${issue.path}: ${issue.message}`).join('; ') || 'invalid policy');
    this.name = 'PolicyError';
    this.issues = issues;
  }
}
