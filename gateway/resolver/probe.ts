/**
 * Asks a policy worker whether it is there: GET its /healthz (unsigned, no decision, nothing recorded), for the
 * gateway's check at start and its readiness (GET /readyz on --metrics). One request, bounded by `timeoutMs`.
 *
 * @example
 * const { ok, detail } = await probeWorker(new URL('http://127.0.0.1:8787'), 1_000);
 */
import { request } from 'undici';
import { ROUTES } from '../../protocol/wire.js';
import { errnoMessage } from '../describe.js';
import { userAgent } from '../version.js';

export interface ProbeResult {
  readonly ok: boolean;
  /** One line: what answered, or why nothing usable did. */
  readonly detail: string;
}

/**
 * @example
 * await probeWorker(new URL('http://127.0.0.1:9'), 500) // { ok: false, detail: 'http://127.0.0.1:9: ECONNREFUSED ...' }
 */
export async function probeWorker(upstream: URL, timeoutMs: number): Promise<ProbeResult> {
  const url = new URL(upstream.pathname.replace(/\/+$/, '') + ROUTES.health, upstream.origin);
  const where = url.href;
  try {
    const response = await request(url, {
      method: 'GET',
      headers: { accept: 'application/json', 'user-agent': userAgent() },
      signal: AbortSignal.timeout(timeoutMs),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    const text = await response.body.text();
    if (response.statusCode !== 200) return { ok: false, detail: `${where} answered HTTP ${response.statusCode}` };
    let health: { status?: unknown; configured?: unknown };
    try {
      health = JSON.parse(text) as typeof health;
    } catch {
      return { ok: false, detail: `${where} answered something other than identgate's health JSON` };
    }
    if (health.status !== 'ok') return { ok: false, detail: `${where} is not an identgate worker's health route` };
    if (health.configured === false)
      return {
        ok: false,
        detail: `${where}: the worker has no signing secret, so it refuses every lookup (give it --secret-file, or wrangler secret put IDENTGATE_SECRETS)`,
      };
    return { ok: true, detail: `${where} answered` };
  } catch (error) {
    const reason =
      error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')
        ? `no answer within ${timeoutMs} ms`
        : errnoMessage(error);
    return { ok: false, detail: `${where}: ${reason}` };
  }
}
