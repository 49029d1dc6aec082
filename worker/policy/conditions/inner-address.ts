/** `innerAddress`: the inner host of a translated connection (request.nat, docs/nat.md) lies in one of these CIDRs. */
import { cidr, oneOrMany, type OneOrMany } from '../zod.js';
import { compileBlocks, inBlocks, list, type AddressBlocks } from './address-blocks.js';
import type { ConditionDefinition } from './condition.js';

export const innerAddress: ConditionDefinition<'innerAddress', OneOrMany<string>, AddressBlocks> = {
  name: 'innerAddress',
  schema: oneOrMany(cidr, 'CIDR'),
  compile: (value) => compileBlocks(list(value)),
  holds: (blocks, request) => request.nat != null && inBlocks(blocks, request.nat.innerAddress),
};
