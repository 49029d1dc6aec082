/** `containerName`: the inner host is a Docker container (request.container) whose name matches one of these globs. */
import { compileNames, matchesNames, type NameMatcher } from '../patterns.js';
import { namePattern, oneOrMany, type OneOrMany } from '../zod.js';
import { list } from './address-blocks.js';
import type { ConditionDefinition } from './condition.js';

export const containerName: ConditionDefinition<'containerName', OneOrMany<string>, NameMatcher> = {
  name: 'containerName',
  schema: oneOrMany(namePattern, 'container name'),
  compile: (value) => compileNames(list(value)),
  holds: (matcher, request) => request.container != null && matchesNames(matcher, request.container.name),
};
