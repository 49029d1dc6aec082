/**
 * Structured JSON logs (pino) for the CLI: failures at warn with their cause,
 * one line per query at debug. Secrets never reach a log line: configuration
 * is logged by name, and pino's redaction drops the fields that could hold one.
 *
 * @example
 * const log = createLogger('info');
 * log.warn({ cause: 'refused' }, 'policy worker unreachable');
 */
import { pino, type Logger } from 'pino';
import type { LogLevel } from '../cli/config.js';
import type { PolicyReload } from '../../worker/stores/file.js';

export type { Logger } from 'pino';

export function createLogger(level: LogLevel, destination: NodeJS.WritableStream = process.stderr): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: {
        paths: [
          'secret',
          'secrets',
          'token',
          'adminTokens',
          '*.secret',
          '*.secrets',
          'headers.authorization',
          'headers["x-identgate-signature"]',
        ],
        remove: true,
      },
    },
    pino.destination({ dest: destination === process.stderr ? 2 : 1, sync: false }),
  );
}

/** Routine events of the worker and its stores; every other event is a failure worth a warning. */
const ROUTINE = new Set([
  'policy_loaded',
  'policy_replaced',
  'worker_listening',
  'audit_migrated',
  'audit_pruned',
  'ident_assigned',
  'ident_unassigned',
]);

/**
 * Adapts the worker's structured `log(entry)` callback (entries carry their
 * event name in `msg`) to pino: routine events at info, decisions at
 * `decisionLevel`, the rest at warn — with `msg` written once.
 *
 * @example
 * createApp({ ..., log: workerLog(log, 'debug') });
 */
export function workerLog(log: Logger, decisionLevel: 'info' | 'debug'): (entry: Record<string, unknown>) => void {
  return ({ msg, ...fields }) => {
    const event = String(msg);
    if (event === 'decisions') log[decisionLevel](fields, event);
    else if (ROUTINE.has(event)) log.info(fields, event);
    else log.warn(fields, event);
  };
}

/**
 * The line a SIGHUP leaves: the policy taken, kept unchanged, or refused (at warn, with the reasons; the last good
 * policy goes on answering).
 *
 * @example
 * gateway.reload().then((result) => logPolicyReload(log, result));
 */
export function logPolicyReload(log: Logger, result: PolicyReload | undefined): void {
  if (result === undefined) log.info('SIGHUP: no policy file to reload');
  else if (result.outcome === 'rejected')
    log.warn(
      { keptVersion: result.version, error: result.error },
      `SIGHUP: policy refused, still answering with version ${result.version}: ${result.error}`,
    );
  else log.info({ version: result.version }, `SIGHUP: policy ${result.outcome} (version ${result.version})`);
}
