/**
 * Retention: audit records older than a number of days (default 30) are deleted — by the
 * `scheduled` handler on Workers (the cron trigger in wrangler.toml), by a timer on Node.
 *
 * @example
 * await pruneAudit(store, 30, Date.now(), log); // { msg: 'audit_pruned', deleted: 1200, before: '…' }
 */
import type { AuditStore } from '../stores/audit.js';

export const AUDIT_RETENTION_DAYS = 30;
const DAY_MS = 86_400_000;

/**
 * Parses a retention setting: a whole number of days, 1 to 36500; undefined or '' is the default.
 * Throws RangeError with a one-line message otherwise.
 *
 * @example
 * retentionDaysOf('90') // 90
 */
export function retentionDaysOf(value: string | undefined): number {
  if (value === undefined || value.trim() === '') return AUDIT_RETENTION_DAYS;
  const days = Number(value);
  if (!/^\d+$/.test(value.trim()) || days < 1 || days > 36_500)
    throw new RangeError(`audit retention ${JSON.stringify(value)}: expected a whole number of days, 1 to 36500`);
  return days;
}

/** Deletes what is older than `days` and logs how many; resolves the count (a failure is logged and resolves 0). */
export async function pruneAudit(
  store: Pick<AuditStore, 'prune'>,
  days: number,
  now: number,
  log: (entry: Record<string, unknown>) => void,
): Promise<number> {
  const before = now - days * DAY_MS;
  try {
    const deleted = await store.prune(before);
    log({ msg: 'audit_pruned', deleted, before: new Date(before).toISOString(), retentionDays: days });
    return deleted;
  } catch (error) {
    log({ msg: 'audit_prune_failed', error: error instanceof Error ? error.message : String(error) });
    return 0;
  }
}
