/**
 * A match condition the rule index does not know: its field in `match`, its schema, a compile step
 * per rule and a pure test on the request. One file per condition; index.ts lists them.
 */
import type { z } from 'zod';
import type { LookupRequest } from '../../../protocol/wire.js';

export interface ConditionDefinition<N extends string = string, V = unknown, C = unknown> {
  /** The field in a rule's `match`, e.g. `claimUser`. */
  readonly name: N;
  /** Parses the value as written; refinements name their fields by path. */
  readonly schema: z.ZodType<V>;
  /** Runs once per rule and policy version, on a parsed value. */
  compile(value: V): C;
  /** Whether the condition holds for a request: pure and synchronous (it runs for every candidate rule). */
  holds(compiled: C, request: LookupRequest): boolean;
}

/** The `match` fields a list of definitions adds, each optional. */
export type MatchOf<D extends readonly ConditionDefinition<string, any, any>[]> = {
  [K in D[number] as K['name']]?: K extends ConditionDefinition<string, infer V, any> ? V : never;
};
