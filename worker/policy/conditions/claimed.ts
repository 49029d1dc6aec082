/** `"claimed": true | false`: whether a local app claimed the queried connection (docs/claims.md). */
import { z } from 'zod';
import type { ConditionDefinition } from './condition.js';

export const claimed: ConditionDefinition<'claimed', boolean, boolean> = {
  name: 'claimed',
  schema: z.boolean('must be true or false'),
  compile: (wanted) => wanted,
  holds: (wanted, request) => (request.claim !== undefined && request.claim !== null) === wanted,
};
