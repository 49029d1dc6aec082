/** `{ "userId": "guest" }`: one fixed user id, checked against the reply rules at parse time. */
import { z } from 'zod';
import { constant, userIdAnswer, type ActionDefinition } from './action.js';

export interface FixedAction {
  userId: string;
}

export const userId: ActionDefinition<FixedAction> = {
  key: 'userId',
  schema: z.strictObject({ userId: z.string().min(1, 'must not be empty') }),
  fixedUserIds: (action) => [{ userId: action.userId, path: ['userId'] }],
  compile: (action, { opsys, charset }) => constant(userIdAnswer(opsys ?? 'OTHER', charset, action.userId)),
};
