/**
 * The extension point for match conditions (worker/policy/conditions/): a condition module the way
 * a new one is written, put in the list in place of the real one, is parsed, decided and explained.
 */
import { describe, expect, it, vi } from 'vitest';
import { compilePolicy, decide, explain, parsePolicy, PolicyError } from '../../worker/policy/index.js';
import { request } from './policy-helpers.js';

vi.mock('../../worker/policy/conditions/index.js', async () => {
  const { z } = await import('zod');
  // Holds when the querier's port parity is the one asked for.
  const clientPortParity = {
    name: 'clientPortParity',
    schema: z.enum(['even', 'odd'], 'must be "even" or "odd"'),
    compile: (parity: 'even' | 'odd') => (parity === 'even' ? 0 : 1),
    holds: (remainder: number, lookup: { query: { clientPort: number } }) => lookup.query.clientPort % 2 === remainder,
  };
  return { CONDITIONS: [clientPortParity] };
});

const policy = () =>
  compilePolicy(
    parsePolicy({
      version: 1,
      rules: [
        {
          name: 'lan-even',
          match: { clientAddress: '192.0.2.0/24', clientPortParity: 'even' },
          action: { error: 'HIDDEN-USER' },
        },
        { name: 'lan', match: { clientAddress: '192.0.2.0/24' }, action: { userId: 'lan' } },
      ],
      default: { action: { error: 'NO-USER' } },
    }),
  );

describe('a condition from conditions/', () => {
  it('is parsed, a bad value named by its path', () => {
    const bad = {
      version: 1,
      rules: [{ name: 'r', match: { clientPortParity: 'both' }, action: { error: 'NO-USER' } }],
      default: { action: { error: 'NO-USER' } },
    };
    expect(() => parsePolicy(bad)).toThrow(PolicyError);
    expect(() => parsePolicy(bad)).toThrow('rules[0].match.clientPortParity: must be "even" or "odd"');
  });

  it('decides with the built-in conditions: a rule whose indexed conditions hold but whose own does not is passed over', () => {
    expect(decide(policy(), request({ clientPort: 24 })).rule).toBe('lan-even');
    expect(decide(policy(), request({ clientPort: 23 })).rule).toBe('lan');
    expect(decide(policy(), request({ clientPort: 24, clientAddress: '203.0.113.1' })).rule).toBe('default');
  });

  it('is named by explain as the condition that failed', () => {
    const explanation = explain(policy(), request({ clientPort: 23 }));
    expect(explanation.rule).toBe('lan');
    expect(explanation.skipped).toEqual([{ rule: 'lan-even', ruleIndex: 0, failed: 'clientPortParity' }]);
  });
});
