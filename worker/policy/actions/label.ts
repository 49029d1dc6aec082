/**
 * `{ "label": "identgate.ident", "ifMissing"?: error }`: the value of this label of the inner host's Docker
 * container (request.container, docs/nat.md), opsys OTHER; `ifMissing` (default NO-USER) when there is no container
 * or it has no such label. A value that cannot be written as a user id is UNKNOWN-ERROR, as for owner names.
 */
import { z } from 'zod';
import type { ErrorToken } from '../../../protocol/tokens.js';
import { errorToken } from '../zod.js';
import { dynamicUserId, errorAnswer, type ActionDefinition } from './action.js';

export interface LabelAction {
  label: string;
  ifMissing?: ErrorToken;
}

export const label: ActionDefinition<LabelAction> = {
  key: 'label',
  schema: z.strictObject({
    label: z.string().min(1, 'must name a label').max(128, 'must be at most 128 characters'),
    ifMissing: errorToken.optional(),
  }),
  compile(action, { opsys = 'OTHER', charset }) {
    const ifMissing = errorAnswer(action.ifMissing ?? 'NO-USER');
    return {
      constant: null,
      answer: (request) => {
        const value = request.container?.labels[action.label];
        return value === undefined || value === '' ? ifMissing : dynamicUserId(opsys, charset, value);
      },
    };
  },
};
