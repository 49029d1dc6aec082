/**
 * The worker's HTTP edge: the rejection every route throws (a Hono HTTPException with a wire code),
 * the `{ error: { code, message } }` body of docs/wire.md, the body limit and JSON parsing.
 */
import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import type { z } from 'zod';
import { describeIssues } from '../protocol/issues.js';
import { MAX_BODY_OCTETS } from '../protocol/wire.js';

export type RejectionStatus = 400 | 401 | 404 | 405 | 409 | 413 | 503;

/** A wire error answer: `{ error: { code, message } }` with its status and headers. */
export function errorResponse(
  status: number,
  code: string,
  message: string,
  headers?: Record<string, string>,
): Response {
  return Response.json({ error: { code, message } }, { status, headers });
}

/**
 * A request the worker refuses, with the stable code docs/wire.md lists; onError answers it.
 *
 * @example
 * throw new RequestRejected(400, 'invalid_request', 'a batch holds 1 to 64 requests, got 0');
 */
export class RequestRejected extends HTTPException {
  declare readonly status: RejectionStatus;
  readonly code: string;
  constructor(status: RejectionStatus, code: string, message: string) {
    super(status, { message, res: errorResponse(status, code, message) });
    this.name = 'RequestRejected';
    this.code = code;
  }
}

/** Hono's bodyLimit at MAX_BODY_OCTETS: refused by Content-Length first, then by what arrives. */
export const limitBody: MiddlewareHandler = bodyLimit({
  maxSize: MAX_BODY_OCTETS,
  onError: () => {
    throw new RequestRejected(413, 'body_too_large', `request body is larger than ${MAX_BODY_OCTETS} octets`);
  },
});

export function parseJson(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new RequestRejected(400, 'invalid_json', `request body is not JSON: ${reason}`);
  }
}

/** The request body as JSON (Hono caches the text, so a middleware may have read it already). */
export async function readJson(c: Context): Promise<unknown> {
  return parseJson(await c.req.text());
}

/** Parses with a wire schema; a mismatch is 400 invalid_request naming the field. */
export function parseWith<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (!result.success) throw new RequestRejected(400, 'invalid_request', describeIssues(result.error));
  return result.data;
}
