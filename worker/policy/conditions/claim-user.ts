/**
 * `"claimUser": "alice" | ["znc-*", ...]`: the claiming app's user for the connection, exact or glob
 * (`*`, `?`, as ownerName). Never holds for a connection nobody claimed.
 */
import { compileNames, matchesNames, type NameMatcher } from '../patterns.js';
import { oneOrMany, type OneOrMany } from '../zod.js';
import { z } from 'zod';
import type { ConditionDefinition } from './condition.js';

const userPattern = z.string().min(1, 'must not be empty').max(256, 'must be at most 256 characters');

export const claimUser: ConditionDefinition<'claimUser', OneOrMany<string>, NameMatcher> = {
  name: 'claimUser',
  schema: oneOrMany(userPattern, 'user name'),
  compile: (patterns) => compileNames(Array.isArray(patterns) ? patterns : [patterns]),
  holds: (names, request) => {
    const claim = request.claim;
    return claim !== undefined && claim !== null && matchesNames(names, claim.user);
  },
};
