/**
 * How addresses and system errors read in identgate's messages: `[::1]:113`, `ECONNREFUSED connect ...`.
 */

/**
 * `[::1]:113` for IPv6 literals, `host:113` otherwise.
 *
 * @example
 * hostPort('::1', 113) // '[::1]:113'
 */
export function hostPort(hostname: string, port: number): string {
  return hostname.includes(':') ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

/** The errno-style code of an error; a happy-eyeballs connect fails with an AggregateError of one per address. */
export function errnoCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  if (error instanceof AggregateError) return errnoCode(error.errors[0]);
  return undefined;
}

/**
 * An error's message with its errno code in front when the message does not already name it.
 *
 * @example
 * errnoMessage(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })) // 'ECONNRESET socket hang up'
 */
export function errnoMessage(error: unknown): string {
  if (error === undefined) return '';
  const code = errnoCode(error);
  const message = error instanceof Error && error.message ? error.message : String(code ?? error);
  return code && !message.includes(code) ? `${code} ${message}` : message;
}
