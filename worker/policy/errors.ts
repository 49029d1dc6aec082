/**
 * PolicyError (ERR_POLICY_INVALID), the one error the policy engine throws: a document that does
 * not parse, every bad field named by path in its message and listed in `issues`.
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
