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
import type { LogLevel } from './config.js';

export type { Logger } from 'pino';

export function createLogger(level: LogLevel, destination: NodeJS.WritableStream = process.stderr): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: ['secret', 'secrets', 'token', 'adminTokens', '*.secret', '*.secrets', 'headers.authorization', 'headers["x-identgate-signature"]'], remove: true },
    },
    pino.destination({ dest: destination === process.stderr ? 2 : 1, sync: false }),
  );
}
