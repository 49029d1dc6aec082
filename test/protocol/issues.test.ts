import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { describeIssues, issuesOf } from '../../protocol/issues.js';
import { BatchRequestSchema } from '../../protocol/wire.js';

describe('zod findings', () => {
  it('name list positions in brackets and fields with dots', () => {
    const result = BatchRequestSchema.safeParse({ v: 1, requests: [{}] });
    expect(result.success).toBe(false);
    expect(describeIssues(result.error!)).toMatch(/^requests\[0\]\.\w+: /);
  });

  it('report each unknown field on its own path', () => {
    const result = z.strictObject({ a: z.strictObject({}) }).safeParse({ a: { b: 1, c: 2 } });
    expect(issuesOf(result.error!)).toEqual([
      { path: 'a.b', message: 'unknown field' },
      { path: 'a.c', message: 'unknown field' },
    ]);
  });

  it('say (root) for the value itself and stop at the limit', () => {
    const result = z.array(z.number()).min(1).safeParse('x');
    expect(describeIssues(result.error!)).toMatch(/^\(root\): /);
    const many = z.array(z.number()).safeParse(['a', 'b', 'c', 'd']);
    expect(issuesOf(many.error!, 2).map((issue) => issue.path)).toEqual(['[0]', '[1]']);
  });
});
