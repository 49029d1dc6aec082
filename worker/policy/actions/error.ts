/** `{ "error": "HIDDEN-USER" }`: an RFC 1413 error reply (no opsys, no charset). */
import { z } from 'zod';
import type { ErrorToken } from '../../../protocol/tokens.js';
import { errorToken } from '../zod.js';
import { constant, errorAnswer, type ActionDefinition } from './action.js';

export interface ErrorAction {
  error: ErrorToken;
}

export const error: ActionDefinition<ErrorAction> = {
  key: 'error',
  schema: z.strictObject({ error: errorToken }),
  answersError: true,
  compile: (action) => constant(errorAnswer(action.error)),
};
