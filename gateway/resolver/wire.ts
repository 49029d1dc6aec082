/**
 * The resolvers' side of the wire contract (docs/wire.md): request bodies, answers read with the size cap and checked
 * (schema, ids and order, the RFC 1413 reply rules), and the two transports a dispatcher drives.
 */
import { describeIssues } from '../../protocol/issues.js';
import { replyRuleViolation, type IdentAnswer } from '../../protocol/reply.js';
import {
  BatchAnswerSchema,
  LookupAnswerSchema,
  MAX_BODY_OCTETS,
  ROUTES,
  WIRE_VERSION,
  WireErrorSchema,
  type LookupAnswer,
  type LookupRequest,
} from '../../protocol/wire.js';
import type { z } from 'zod';
import {
  FALLBACK_RULE,
  ResolverFailure,
  type Exchange,
  type ExchangeReply,
  type FailureCause,
  type InProcessLookup,
  type PolicyTransport,
} from './types.js';

/**
 * The fallback LookupAnswer for one request.
 *
 * @example
 * fallbackAnswer(request, DEFAULT_FALLBACK)
 * // { v: 1, id: request.id, answer: { type: 'ERROR', error: 'UNKNOWN-ERROR' }, rule: '(fallback)' }
 */
export function fallbackAnswer(request: Pick<LookupRequest, 'id'>, fallback: IdentAnswer): LookupAnswer {
  return { v: WIRE_VERSION, id: request.id, answer: fallback, rule: FALLBACK_RULE };
}

/**
 * The route and JSON body for a group of requests: ROUTES.lookup for one, ROUTES.batch for several.
 *
 * @example
 * buildExchange([request]) // { path: '/v1/ident', body: '{"v":1,"id":...}' }
 */
export function buildExchange(requests: readonly LookupRequest[]): { path: string; body: string } {
  if (requests.length === 1) return { path: ROUTES.lookup, body: JSON.stringify(requests[0]) };
  return { path: ROUTES.batch, body: JSON.stringify({ v: WIRE_VERSION, requests }) };
}

function isRuleIssue(error: z.ZodError): boolean {
  // Token and reply-rule refinements (protocol/wire.ts AnswerSchema) raise "custom"
  // issues; every structural problem raises another code.
  return error.issues.length > 0 && error.issues.every((issue) => issue.code === 'custom');
}

/**
 * Turns the worker's reply to `requests` into one answer per request, in order,
 * or throws ResolverFailure naming what was wrong.
 *
 * @example
 * const answers = parseExchangeReply({ status: 200, text }, [request]); // [LookupAnswer]
 */
export function parseExchangeReply(reply: ExchangeReply, requests: readonly LookupRequest[]): LookupAnswer[] {
  const json = parseReplyJson(reply);
  const batch = requests.length > 1;
  const parsed = batch ? BatchAnswerSchema.safeParse(json) : LookupAnswerSchema.safeParse(json);
  if (!parsed.success) {
    const reason: FailureCause = isRuleIssue(parsed.error) ? 'invalid_answer' : 'schema_mismatch';
    const what =
      reason === 'invalid_answer'
        ? 'breaks an RFC 1413 reply rule'
        : `is not a ${batch ? 'BatchAnswer' : 'LookupAnswer'}`;
    throw new ResolverFailure(reason, `worker answer ${what}: ${describeIssues(parsed.error)}`);
  }
  const answers = batch ? (parsed.data as z.infer<typeof BatchAnswerSchema>).answers : [parsed.data as LookupAnswer];
  checkIds(answers, requests);
  return answers;
}

/**
 * The JSON of a 2xx reply; throws ResolverFailure for another status (401/403: 'auth') or a body that is not JSON.
 *
 * @example
 * parseReplyJson({ status: 200, text: '{"v":1}' }) // { v: 1 }
 */
export function parseReplyJson(reply: ExchangeReply): unknown {
  if (reply.status < 200 || reply.status > 299) {
    const reason: FailureCause = reply.status === 401 || reply.status === 403 ? 'auth' : 'http_status';
    throw new ResolverFailure(reason, `worker answered HTTP ${reply.status}${describeWireError(reply.text)}`, {
      status: reply.status,
    });
  }
  try {
    return JSON.parse(reply.text);
  } catch (error) {
    throw new ResolverFailure('invalid_json', `worker answer is not JSON: ${(error as Error).message}`);
  }
}

function checkIds(answers: readonly LookupAnswer[], requests: readonly LookupRequest[]): void {
  if (answers.length !== requests.length) {
    throw new ResolverFailure('id_mismatch', `worker sent ${answers.length} answers for ${requests.length} requests`);
  }
  for (let i = 0; i < answers.length; i++) {
    const expected = requests[i]!.id;
    const received = String(answers[i]!.id);
    if (received !== expected) {
      throw new ResolverFailure(
        'id_mismatch',
        `answer ${i} has id "${received.slice(0, 64)}" but request ${i} has id "${expected}"`,
      );
    }
  }
}

/**
 * Checks typed answers from an app in this process: one per request, with its
 * id, in order, each obeying the RFC 1413 reply rules. Their shape is the app's
 * own types' promise, so the wire schema is not run again. Throws ResolverFailure.
 *
 * @example
 * checkInProcessAnswers(await app.inProcess.lookup(requests), requests);
 */
export function checkInProcessAnswers(answers: readonly LookupAnswer[], requests: readonly LookupRequest[]): void {
  checkIds(answers, requests);
  for (let i = 0; i < answers.length; i++) {
    const violation = replyRuleViolation(answers[i]!.answer);
    if (violation)
      throw new ResolverFailure('invalid_answer', `app answer ${i} breaks an RFC 1413 reply rule: ${violation}`);
  }
}

function describeWireError(text: string): string {
  try {
    const parsed = WireErrorSchema.safeParse(JSON.parse(text));
    if (parsed.success) return `: ${parsed.data.error.code}: ${parsed.data.error.message.slice(0, 200)}`;
  } catch {
    // Not a WireError body; the status says enough.
  }
  return '';
}

/**
 * Reads a body (Node Readable or web ReadableStream, both async-iterable) as
 * UTF-8, giving up as soon as it exceeds `maxOctets` or `signal` aborts.
 *
 * @example
 * const text = await readCapped(response.body, MAX_BODY_OCTETS);
 */
export async function readCapped(
  body: AsyncIterable<Uint8Array> | null,
  maxOctets = MAX_BODY_OCTETS,
  signal?: AbortSignal,
): Promise<string> {
  if (!body) return '';
  const chunks: Uint8Array[] = [];
  let octets = 0;
  for await (const chunk of body) {
    signal?.throwIfAborted();
    octets += chunk.byteLength;
    // Leaving the loop early makes for-await call return(), which destroys the stream.
    if (octets > maxOctets) throw tooLarge(maxOctets);
    chunks.push(chunk);
  }
  if (chunks.length === 1)
    return Buffer.from(chunks[0]!.buffer, chunks[0]!.byteOffset, chunks[0]!.byteLength).toString('utf8');
  return Buffer.concat(chunks, octets).toString('utf8');
}

/** The ResolverFailure for a body over the cap. */
export function tooLarge(maxOctets = MAX_BODY_OCTETS): ResolverFailure {
  return new ResolverFailure('body_too_large', `worker answer is larger than ${maxOctets} octets`);
}

/**
 * A transport that sends JSON text over a route (HTTP, or an app's fetch) and schema-checks what comes back.
 *
 * @example
 * const transport = exchangeTransport(async (path, body, signal) => ({ status: 200, text: await send(path, body, signal) }), mapHttpError);
 */
export function exchangeTransport(exchange: Exchange, mapError: (error: unknown) => ResolverFailure): PolicyTransport {
  return {
    abortable: true,
    mapError,
    async ask(requests, signal) {
      const { path, body } = buildExchange(requests);
      return parseExchangeReply(await exchange(path, body, signal!), requests);
    },
  };
}

/**
 * A transport over a policy app in this process: typed answers, checked only for what the types do not promise.
 * Nothing in-process can be interrupted, so no AbortSignal is made for it.
 *
 * @example
 * const transport = inProcessTransport((requests) => app.inProcess.lookup(requests), mapAppError, app.inProcess.lookupNow);
 */
export function inProcessTransport(
  lookup: InProcessLookup,
  mapError: (error: unknown) => ResolverFailure,
  lookupNow?: (requests: readonly LookupRequest[]) => readonly LookupAnswer[] | undefined,
): PolicyTransport {
  return {
    abortable: false,
    mapError,
    async ask(requests) {
      const answers = await lookup(requests);
      checkInProcessAnswers(answers, requests);
      return answers;
    },
    askNow: lookupNow
      ? (requests) => {
          const answers = lookupNow(requests);
          if (answers !== undefined) checkInProcessAnswers(answers, requests);
          return answers;
        }
      : undefined,
  };
}
