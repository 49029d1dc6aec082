/**
 * Failure reports: one onFailure call when an episode starts, counts of the
 * failures that followed at most once per interval, and one onRecover call with
 * the episode's total when the worker answers again.
 */
import { describe, expect, it } from 'vitest';
import { FailureReporter } from '../../../gateway/resolver/failures.js';
import type { FailureCause } from '../../../gateway/resolver/types.js';

interface Report {
  cause: FailureCause;
  detail: string;
  count: number;
}

function reporter(reportIntervalMs: number): { reporter: FailureReporter; reports: Report[]; recoveries: number[] } {
  const reports: Report[] = [];
  const recoveries: number[] = [];
  return {
    reporter: new FailureReporter({
      reportIntervalMs,
      onFailure: (cause, detail, count) => reports.push({ cause, detail, count }),
      onRecover: (failures, downMs) => {
        expect(downMs).toBeGreaterThanOrEqual(0);
        recoveries.push(failures);
      },
    }),
    reports,
    recoveries,
  };
}

describe('failure reporting', () => {
  it('reports the first failure of an episode at once and stays quiet for the rest of the interval', () => {
    const { reporter: r, reports } = reporter(60_000);
    r.failure('refused', 'connect ECONNREFUSED', 2);
    r.failure('refused', 'connect ECONNREFUSED', 1);
    r.failure('timeout', 'no answer', 4);
    expect(reports).toEqual([{ cause: 'refused', detail: 'connect ECONNREFUSED', count: 2 }]);
  });

  it('reports the failures counted since the last report once the interval has passed', () => {
    const { reporter: r, reports } = reporter(0);
    r.failure('refused', 'first', 2);
    r.failure('timeout', 'second', 3);
    r.failure('timeout', 'third', 1);
    expect(reports).toEqual([
      { cause: 'refused', detail: 'first', count: 2 },
      { cause: 'timeout', detail: 'second', count: 3 },
      { cause: 'timeout', detail: 'third', count: 1 },
    ]);
  });

  it('reports recovery once with the total of the episode, then starts a new episode on the next failure', () => {
    const { reporter: r, reports, recoveries } = reporter(60_000);
    r.success();
    expect(recoveries).toEqual([]);
    r.failure('reset', 'socket hang up', 1);
    r.failure('reset', 'socket hang up', 5);
    r.success();
    r.success();
    expect(recoveries).toEqual([6]);
    r.failure('http_status', 'worker answered HTTP 500', 1);
    expect(reports.map((report) => report.cause)).toEqual(['reset', 'http_status']);
  });

  it('survives a listener that throws', () => {
    const r = new FailureReporter({
      onFailure: () => {
        throw new Error('logger broke');
      },
      onRecover: () => {
        throw new Error('logger broke');
      },
    });
    expect(() => r.failure('refused', 'x', 1)).not.toThrow();
    expect(() => r.success()).not.toThrow();
  });
});
