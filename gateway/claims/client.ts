/**
 * The typed client of the gateway's claims API (`identgate/claims`): an app that makes TCP connections for many
 * people (a bouncer, a web client, a bridge) says which of its users each connection belongs to. Every call is one
 * HTTP request over the gateway's Unix socket; the gateway knows the caller's uid from the kernel.
 *
 * @example
 * import { createClaimsClient, endpointsOf } from 'identgate/claims';
 * const claims = createClaimsClient();                        // /run/identgate/claims.sock
 * await claims.pending({ remote: { address: '203.0.113.5', port: 6697 }, ttlMs: 5000 });
 * const socket = net.connect(6697, '203.0.113.5', async () => {
 *   const { id } = await claims.claim({ ...endpointsOf(socket), user: 'alice', ident: 'alice' });
 * });
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import type { z } from 'zod';
import { IdentgateError } from '../../protocol/errors.js';
import {
  ClaimInfoSchema,
  ClaimListSchema,
  CLAIMS_ROUTES,
  ClaimsErrorSchema,
  HoldInfoSchema,
  ReleasedSchema,
  type ClaimInfo,
  type ClaimRequest,
  type ClaimsEndpoint,
  type ClaimsErrorCode,
  type HoldInfo,
  type PendingRequest,
} from './schema.js';

export type { ClaimInfo, ClaimRequest, ClaimsEndpoint, ClaimsErrorCode, HoldInfo, PendingRequest } from './schema.js';

/** Where a gateway running as a systemd service (RuntimeDirectory=identgate) listens. */
export const DEFAULT_CLAIMS_SOCKET = '/run/identgate/claims.sock';

export interface ClaimsClientOptions {
  /** The gateway's claims socket; DEFAULT_CLAIMS_SOCKET. */
  socketPath?: string;
  /** Bound on one call; 5000 ms. */
  timeoutMs?: number;
}

/**
 * A call the gateway refused (`status` and `reason` as in docs/claims.md), or one that did not reach it
 * (`status` 0, `reason` 'unreachable', 'timeout' or 'bad_answer'). The message is one line for people.
 */
export class ClaimsApiError extends IdentgateError {
  readonly code = 'ERR_CLAIMS_API';
  override readonly userError = true;
  constructor(
    readonly status: number,
    readonly reason: ClaimsErrorCode | 'unreachable' | 'timeout' | 'bad_answer',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface ClaimsClient {
  /** Claims the connection local -> remote for `user` (and asks for `ident`). */
  claim(request: ClaimRequest): Promise<ClaimInfo>;
  /** Ends one of your claims. */
  release(id: string): Promise<void>;
  /** Ends all of your claims (an app restarting); how many there were. */
  releaseAll(): Promise<number>;
  /** Holds queries about your not-yet-claimed connections to `remote` for `ttlMs`, waiting for their claims. */
  pending(request: PendingRequest): Promise<HoldInfo>;
  /** Your live claims. */
  list(): Promise<ClaimInfo[]>;
}

/** A connected socket's two ends, as `claim` takes them. */
export function endpointsOf(socket: Socket): { local: ClaimsEndpoint; remote: ClaimsEndpoint } {
  if (socket.localAddress === undefined || socket.remoteAddress === undefined)
    throw new TypeError('endpointsOf: the socket is not connected');
  return {
    local: { address: socket.localAddress, port: socket.localPort! },
    remote: { address: socket.remoteAddress, port: socket.remotePort! },
  };
}

/**
 * @example
 * const claims = createClaimsClient({ socketPath: '/run/identgate/claims.sock' });
 * for (const claim of await claims.list()) console.log(claim.id, claim.user);
 */
export function createClaimsClient({
  socketPath = DEFAULT_CLAIMS_SOCKET,
  timeoutMs = 5_000,
}: ClaimsClientOptions = {}): ClaimsClient {
  const call = <T>(method: string, path: string, schema: z.ZodType<T>, body?: unknown): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const text = body === undefined ? undefined : JSON.stringify(body);
      const request = http.request(
        {
          socketPath,
          method,
          path,
          headers:
            text === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) },
          timeout: timeoutMs,
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('error', (error) =>
            reject(new ClaimsApiError(0, 'unreachable', error.message, { cause: error })),
          );
          response.on('end', () => {
            const status = response.statusCode ?? 0;
            let json: unknown;
            try {
              json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            } catch {
              json = undefined;
            }
            if (status >= 200 && status < 300) {
              const parsed = schema.safeParse(json);
              if (parsed.success) resolve(parsed.data);
              else
                reject(
                  new ClaimsApiError(
                    status,
                    'bad_answer',
                    `the gateway answered ${method} ${path} with an unexpected body`,
                  ),
                );
              return;
            }
            const refusal = ClaimsErrorSchema.safeParse(json);
            if (refusal.success)
              reject(
                new ClaimsApiError(status, refusal.data.error.code as ClaimsErrorCode, refusal.data.error.message),
              );
            else
              reject(
                new ClaimsApiError(
                  status,
                  'bad_answer',
                  `the gateway answered ${method} ${path} with status ${status}`,
                ),
              );
          });
        },
      );
      request.on('timeout', () => {
        request.destroy(new ClaimsApiError(0, 'timeout', `no answer from ${socketPath} within ${timeoutMs} ms`));
      });
      request.on('error', (error) => {
        if (error instanceof ClaimsApiError) return reject(error);
        const code = (error as NodeJS.ErrnoException).code ?? error.message;
        reject(
          new ClaimsApiError(0, 'unreachable', `cannot reach the claims API at ${socketPath} (${code})`, {
            cause: error,
          }),
        );
      });
      request.end(text);
    });

  return {
    claim: (request) => call('POST', CLAIMS_ROUTES.claims, ClaimInfoSchema, request),
    release: async (id) => {
      await call('DELETE', `${CLAIMS_ROUTES.claims}/${encodeURIComponent(id)}`, ReleasedSchema);
    },
    releaseAll: async () => (await call('DELETE', CLAIMS_ROUTES.claims, ReleasedSchema)).released,
    pending: (request) => call('POST', CLAIMS_ROUTES.pending, HoldInfoSchema, request),
    list: async () => (await call('GET', CLAIMS_ROUTES.claims, ClaimListSchema)).claims,
  };
}
