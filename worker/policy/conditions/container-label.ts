/**
 * `containerLabel`: `{ "label": glob or [globs], ... }`: the inner host is a Docker container (request.container)
 * carrying every label named, each with a value matching one of its globs (`"*"`: any value, even empty).
 */
import { z } from 'zod';
import { compileNames, matchesNames, type NameMatcher } from '../patterns.js';
import { custom, forward, namePattern, oneOrMany, type OneOrMany } from '../zod.js';
import { list } from './address-blocks.js';
import type { ConditionDefinition } from './condition.js';

const MAX_LABELS = 16;
const labelValues = oneOrMany(namePattern, 'label value');

export const containerLabel: ConditionDefinition<
  'containerLabel',
  Record<string, OneOrMany<string>>,
  readonly (readonly [string, NameMatcher])[]
> = {
  name: 'containerLabel',
  schema: custom<Record<string, OneOrMany<string>>>((value, ctx) => {
    if (value === null || typeof value !== 'object' || Array.isArray(value))
      return void ctx.addIssue({ code: 'custom', message: 'must be an object of label names to globs' });
    const keys = Object.keys(value);
    if (keys.length === 0 || keys.length > MAX_LABELS)
      return void ctx.addIssue({ code: 'custom', message: `must name 1..${MAX_LABELS} labels` });
    for (const key of keys) {
      if (!forward(ctx, z.string().min(1).max(128).safeParse(key), [key])) continue;
      forward(ctx, labelValues.safeParse((value as Record<string, unknown>)[key]), [key]);
    }
  }),
  compile: (value) => Object.entries(value).map(([key, globs]) => [key, compileNames(list(globs))] as const),
  holds: (labels, request) => {
    const container = request.container;
    if (container == null) return false;
    for (const [key, matcher] of labels) {
      const label = container.labels[key];
      if (label === undefined || !matchesNames(matcher, label)) return false;
    }
    return true;
  },
};
