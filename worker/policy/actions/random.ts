/** `{ "random": { "from": [...] } | { "chars": N, "alphabet"? } }`: a user id drawn per answer. */
import { z } from 'zod';
import { oneKeyOf, printable } from '../zod.js';
import { constant, userIdAnswer, type ActionDefinition } from './action.js';

/** Longest user id a random rule may generate (RFC 1413 §6: 512 octets). */
export const MAX_RANDOM_CHARS = 512;
export const DEFAULT_RANDOM_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

export interface RandomAction {
  random: { from: string[] } | { chars: number; alphabet?: string };
}

export const random: ActionDefinition<RandomAction> = {
  key: 'random',
  schema: z.strictObject({
    random: oneKeyOf<RandomAction['random']>('random', {
      from: z.strictObject({ from: z.array(z.string()).min(1, 'must list at least one user id').max(10_000) }),
      chars: z.strictObject({
        chars: z.number().int().min(1).max(MAX_RANDOM_CHARS),
        alphabet: z
          .string()
          .min(2, 'must have at least 2 characters')
          .max(256)
          .refine((alphabet) => printable.test(alphabet), 'must be printable ASCII without white space')
          .refine((alphabet) => new Set(alphabet).size === alphabet.length, 'must not repeat a character')
          .optional(),
      }),
    }),
  }),
  fixedUserIds(action) {
    const from = (action.random as { from?: unknown } | undefined)?.from;
    return Array.isArray(from) ? from.map((userId, index) => ({ userId, path: ['random', 'from', index] })) : [];
  },
  compile(action, { opsys = 'OTHER', charset }) {
    const spec = action.random;
    if ('from' in spec) {
      const answers = spec.from.map((userId) => constant(userIdAnswer(opsys, charset, userId)).constant!);
      const last = answers.length - 1;
      return {
        constant: null,
        answer: (_request, random) => answers[Math.min(last, Math.max(0, Math.floor(random() * answers.length)))]!,
      };
    }
    const alphabet = spec.alphabet ?? DEFAULT_RANDOM_ALPHABET;
    const size = alphabet.length;
    const chars = spec.chars;
    return {
      constant: null,
      answer: (_request, random) => {
        let userId = '';
        for (let i = 0; i < chars; i++)
          userId += alphabet[Math.min(size - 1, Math.max(0, Math.floor(random() * size)))];
        return userIdAnswer(opsys, charset, userId);
      },
    };
  },
};
