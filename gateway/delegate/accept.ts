/**
 * The gateway's half of a rule's accept: unless localNames is true, a name that is another local account's (per
 * /etc/passwd) is refused, as oidentd refuses it without spoof_all; the owner's own name is fine.
 *
 * @example
 * await acceptName(compileConstraints({ maxLength: 16, localNames: false }), 'root', 1000, passwd) // 'is the name of another local account (uid 0)'
 *
 */
import { identViolation, type CompiledConstraints } from '../../protocol/constraints.js';
import type { PasswdNames } from '../owner/passwd.js';

/** Why `name` may not be answered for the owner `ownerUid` (null: unknown), or undefined when it may. */
export async function acceptName(
  constraints: CompiledConstraints,
  name: string,
  ownerUid: number | null,
  passwd: Pick<PasswdNames, 'uidOf'>,
): Promise<string | undefined> {
  const violation = identViolation(constraints, name);
  if (violation) return violation;
  if (constraints.source.localNames) return undefined;
  const uid = await passwd.uidOf(name);
  if (uid !== null && uid !== ownerUid) return `is the name of another local account (uid ${uid})`;
  return undefined;
}
