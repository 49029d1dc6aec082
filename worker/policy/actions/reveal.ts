/** `{ "reveal": "name" | "uid" }`: the owner's login name (opsys UNIX) or numeric uid (OTHER). */
import { z } from 'zod';
import type { ErrorToken } from '../../../protocol/tokens.js';
import { errorToken } from '../zod.js';
import { dynamicUserId, errorAnswer, userIdAnswer, type ActionDefinition } from './action.js';

export interface RevealNameAction {
  reveal: 'name';
  /** When the owner has no user name: answer the numeric uid (default) or this error. */
  ifNoName?: 'uid' | ErrorToken;
  /** When the owner is unknown (default NO-USER). */
  ifUnknown?: ErrorToken;
}
export interface RevealUidAction {
  reveal: 'uid';
  ifUnknown?: ErrorToken;
}
export type RevealAction = RevealNameAction | RevealUidAction;

export const reveal: ActionDefinition<RevealAction> = {
  key: 'reveal',
  schema: z
    .strictObject({
      reveal: z.enum(['name', 'uid'], 'must be "name" or "uid"'),
      ifNoName: z.union([z.literal('uid'), errorToken], 'must be "uid" or an error token').optional(),
      ifUnknown: errorToken.optional(),
    })
    .superRefine((action, ctx) => {
      if (action.reveal === 'uid' && action.ifNoName !== undefined) {
        const message = 'only { "reveal": "name" } has ifNoName (a uid is always known)';
        ctx.addIssue({ code: 'custom', message, path: ['ifNoName'] });
      }
    }) as z.ZodType<RevealAction>,
  compile(action, { opsys, charset }) {
    const ifUnknown = errorAnswer(action.ifUnknown ?? 'NO-USER');
    const uidOpsys = opsys ?? 'OTHER';
    if (action.reveal === 'uid') {
      return {
        constant: null,
        answer: (request) =>
          request.owner === null ? ifUnknown : userIdAnswer(uidOpsys, charset, String(request.owner.uid)),
      };
    }
    const nameOpsys = opsys ?? 'UNIX';
    const ifNoName = action.ifNoName ?? 'uid';
    const noName = ifNoName === 'uid' ? null : errorAnswer(ifNoName);
    return {
      constant: null,
      answer: (request) => {
        const owner = request.owner;
        if (owner === null) return ifUnknown;
        if (owner.userName !== null) return dynamicUserId(nameOpsys, charset, owner.userName);
        return noName ?? userIdAnswer(uidOpsys, charset, String(owner.uid));
      },
    };
  },
};
