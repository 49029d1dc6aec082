/**
 * Zod findings as people write them: one path syntax (`rules[2].match.clientAddress`,
 * `requests[3].id`) for the wire errors, the gateway's reports and the policy parser.
 */
import type { z } from 'zod';

/** One finding: where (`rules[2].match.serverPort`, `(root)` for the value itself) and what. */
export interface Issue {
  readonly path: string;
  readonly message: string;
}

/** Formats a zod path: names joined by dots, list positions in brackets. */
function formatPath(path: readonly PropertyKey[]): string {
  let text = '';
  for (const segment of path) {
    if (typeof segment === 'number') text += `[${segment}]`;
    else text += text === '' ? String(segment) : `.${String(segment)}`;
  }
  return text === '' ? '(root)' : text;
}

/**
 * The first `limit` findings of a failed parse, an unknown field each on its own path.
 *
 * @example
 * issuesOf(PolicySchema.safeParse(json).error!) // [{ path: 'rules[0].match.colour', message: 'unknown field' }]
 */
export function issuesOf(error: z.ZodError, limit = 10): Issue[] {
  const issues: Issue[] = [];
  for (const issue of error.issues) {
    const unknownKeys = issue.code === 'unrecognized_keys' ? issue.keys : [];
    if (unknownKeys.length === 0) issues.push({ path: formatPath(issue.path), message: issue.message });
    for (const key of unknownKeys) issues.push({ path: formatPath([...issue.path, key]), message: 'unknown field' });
    if (issues.length >= limit) break;
  }
  return issues.slice(0, limit);
}

/**
 * The findings of a failed parse as one line: `query.serverPort: Too small ...; id: ...`.
 *
 * @example
 * describeIssues(LookupRequestSchema.safeParse(body).error!) // 'requests[3].id: Invalid input: expected string'
 */
export function describeIssues(error: z.ZodError, limit = 5): string {
  return issuesOf(error, limit)
    .map((issue) => `${issue.path}: ${issue.message}`)
    .join('; ');
}
