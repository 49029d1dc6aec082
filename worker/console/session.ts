/**
 * Console sign-in: an admin token buys a signed, HttpOnly, SameSite=Strict session cookie with an expiry and a
 * per-session CSRF token; wrong tokens are throttled per client address.
 */
import type { Context } from 'hono';
import { deleteCookie, getSignedCookie, setSignedCookie } from 'hono/cookie';
import { timingSafeEqual } from 'hono/utils/buffer';

export const SESSION_COOKIE = 'identgate_session';
export const CONSOLE_DEFAULTS = { sessionTtlMs: 8 * 60 * 60 * 1000, failuresBeforeThrottle: 5, throttleMs: 30_000 };

export interface Session {
  readonly expiresMs: number;
  /** Sent back in every state-changing form; a cross-site page cannot read it. */
  readonly csrf: string;
}

function randomHex(bytes: number): string {
  return [...crypto.getRandomValues(new Uint8Array(bytes))].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** The cookie key follows the admin tokens: changing them signs every session out. */
async function cookieSecret(tokens: readonly string[]): Promise<string> {
  const text = new TextEncoder().encode(`identgate console session\0${[...tokens].sort().join('\0')}`);
  const digest = await crypto.subtle.digest('SHA-256', text);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

export async function tokenMatches(tokens: readonly string[], token: string): Promise<boolean> {
  let found = false;
  // Every token is compared, so the time taken says nothing about which one matched.
  for (const candidate of tokens) found = (await timingSafeEqual(candidate, token)) || found;
  return found;
}

export async function readSession(c: Context, tokens: readonly string[], nowMs: number): Promise<Session | undefined> {
  if (tokens.length === 0) return undefined;
  const value = await getSignedCookie(c, await cookieSecret(tokens), SESSION_COOKIE);
  if (!value) return undefined;
  const [expires, csrf] = value.split('.');
  const expiresMs = Number(expires);
  if (!Number.isFinite(expiresMs) || expiresMs <= nowMs || !csrf) return undefined;
  return { expiresMs, csrf };
}

export async function startSession(c: Context, tokens: readonly string[], nowMs: number, ttlMs: number) {
  const session: Session = { expiresMs: nowMs + ttlMs, csrf: randomHex(16) };
  await setSignedCookie(c, SESSION_COOKIE, `${session.expiresMs}.${session.csrf}`, await cookieSecret(tokens), {
    path: '/admin',
    httpOnly: true,
    sameSite: 'Strict',
    secure: new URL(c.req.url).protocol === 'https:',
    maxAge: Math.floor(ttlMs / 1000),
  });
  return session;
}

export function endSession(c: Context): void {
  deleteCookie(c, SESSION_COOKIE, { path: '/admin' });
}

/** Wrong tokens per client address: after a few, sign-in is refused for a while (doubling each time). */
export function createThrottle(
  failuresBeforeThrottle = CONSOLE_DEFAULTS.failuresBeforeThrottle,
  throttleMs = CONSOLE_DEFAULTS.throttleMs,
) {
  const clients = new Map<string, { failures: number; blockedUntil: number }>();
  return {
    /** Milliseconds until this client may try again; 0 when it may now. */
    waitMs(client: string, nowMs: number): number {
      const entry = clients.get(client);
      return entry ? Math.max(0, entry.blockedUntil - nowMs) : 0;
    },
    fail(client: string, nowMs: number): void {
      const entry = clients.get(client) ?? { failures: 0, blockedUntil: 0 };
      entry.failures++;
      if (entry.failures >= failuresBeforeThrottle) {
        entry.blockedUntil = nowMs + throttleMs * 2 ** Math.min(entry.failures - failuresBeforeThrottle, 10);
      }
      clients.delete(client);
      clients.set(client, entry);
      if (clients.size > 10_000) clients.delete(clients.keys().next().value!);
    },
    succeed(client: string): void {
      clients.delete(client);
    },
  };
}

/** The client's address: Cloudflare's header on Workers, the socket under @hono/node-server, else one bucket. */
export function clientAddress(c: Context): string {
  const env = c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined;
  return c.req.header('cf-connecting-ip') ?? env?.incoming?.socket?.remoteAddress ?? 'local';
}
