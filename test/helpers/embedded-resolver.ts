/**
 * The embedded resolver as the resolver tests use it: one per test, closed
 * after it, with the failure causes it reported, and the check that a query
 * got the fallback within the deadline.
 *
 * @example
 * const { resolver, causes } = embeddedWithReports(app); // closed after the test
 * await expectFallback(resolver, 'q1');
 */
import { afterEach, expect } from 'vitest';
import { createEmbeddedResolver, type FetchApp } from '../../gateway/resolver/embedded.js';
import type { FailureCause, Resolver } from '../../gateway/resolver/types.js';
import { lookupRequest } from './wire.js';

export const DEADLINE_MS = 300;
export const FALLBACK = { type: 'ERROR', error: 'UNKNOWN-ERROR' } as const;

let current: Resolver | undefined;

afterEach(async () => {
  await current?.close();
  current = undefined;
});

/** Closes `resolver` after the test. */
export function closedAfterTest(resolver: Resolver): Resolver {
  current = resolver;
  return resolver;
}

/** An embedded resolver over `app` (closed after the test) and the causes of the failures it reports. */
export function embeddedWithReports(app: FetchApp): { resolver: Resolver; causes: FailureCause[] } {
  const causes: FailureCause[] = [];
  const resolver = closedAfterTest(
    createEmbeddedResolver({ app, deadlineMs: DEADLINE_MS, onFailure: (cause) => causes.push(cause) }),
  );
  return { resolver, causes };
}

/** Asserts that query `id` gets the fallback answer within the deadline (plus scheduling slack). */
export async function expectFallback(resolver: Resolver, id: string): Promise<void> {
  const started = performance.now();
  expect(await resolver.resolve(lookupRequest(id))).toEqual({ v: 1, id, answer: FALLBACK, rule: '(fallback)' });
  expect(performance.now() - started).toBeLessThan(DEADLINE_MS + 300);
}
