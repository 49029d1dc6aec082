/** `innerPort`: the inner host's own port of a translated connection (request.nat) is one of these ports or ranges. */
import { compileRanges, inRanges, parseRange } from '../patterns.js';
import { oneOrMany, range, type OneOrMany } from '../zod.js';
import { list } from './address-blocks.js';
import type { ConditionDefinition } from './condition.js';

export const innerPort: ConditionDefinition<'innerPort', OneOrMany<number | string>, Float64Array> = {
  name: 'innerPort',
  schema: oneOrMany(range(1, 65535, 'port'), 'port'),
  compile: (value) =>
    compileRanges(
      list(value).map((spec) => {
        const parsed = parseRange(spec, 1, 65535);
        if (typeof parsed === 'string') throw new TypeError(`unparsed policy: ${parsed}`);
        return parsed;
      }),
    ),
  holds: (ranges, request) => request.nat != null && inRanges(ranges, request.nat.innerPort),
};
