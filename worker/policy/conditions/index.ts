/**
 * The match conditions beyond the indexed built-ins of match.ts. A new condition is one file here
 * (a ConditionDefinition) and one entry in CONDITIONS; docs/policy.md "Extending the format".
 */
import { claimUser } from './claim-user.js';
import { claimed } from './claimed.js';
import type { ConditionDefinition } from './condition.js';
import { containerLabel } from './container-label.js';
import { containerName } from './container-name.js';
import { innerAddress } from './inner-address.js';
import { innerPort } from './inner-port.js';

/** Tested after the built-ins, in this order; a policy using any is decided with per-rule confirmation. */
export const CONDITIONS = [
  claimed,
  claimUser,
  innerAddress,
  innerPort,
  containerName,
  containerLabel,
] as const satisfies readonly ConditionDefinition<string, any, any>[];
