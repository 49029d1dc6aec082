/**
 * One ident query as a handler sees it (AnyEvent::Ident's transaction): `tx.req` holds the ports,
 * `tx.replyWithUser(...)` / `tx.replyWithError(...)` answer it once; the connection decides what reaches the wire.
 *
 * @example
 * server.start((tx) => {
 *   if (tx.req.serverPort === 400 && tx.req.clientPort === 500) tx.replyWithUser('grimlock');
 *   else tx.replyWithError('NO-USER');
 * });
 */
import type { ErrorToken, IdentAnswer, IdentQuery } from '../../protocol/index.js';

/** Where the query came from and arrived, as seen on the ident connection. */
export interface TransactionEndpoints {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
}

/** Receives a transaction's answer; `answer` returns false when it was already answered. */
export interface AnswerSink {
  answer(answer: IdentAnswer): boolean;
}

export class IdentTransaction {
  readonly req: IdentQuery;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  readonly #sink: AnswerSink;

  constructor(req: IdentQuery, endpoints: TransactionEndpoints, sink: AnswerSink) {
    this.req = req;
    this.remoteAddress = endpoints.remoteAddress;
    this.remotePort = endpoints.remotePort;
    this.localAddress = endpoints.localAddress;
    this.localPort = endpoints.localPort;
    this.#sink = sink;
  }

  /**
   * Answers with a user id. With one argument the opsys is OTHER (RFC 1413:
   * the id need not be a login name); otherwise `(opsys, userId, charset?)`.
   * Returns false when the transaction was already answered.
   */
  replyWithUser(userId: string): boolean;
  replyWithUser(opsys: string, userId: string, charset?: string): boolean;
  replyWithUser(first: string, userId?: string, charset?: string): boolean {
    if (userId === undefined) return this.#sink.answer({ type: 'USERID', opsys: 'OTHER', userId: first });
    return this.#sink.answer({ type: 'USERID', opsys: first, userId, charset });
  }

  /** Answers with an error token (NO-USER, HIDDEN-USER, UNKNOWN-ERROR, INVALID-PORT or X-...). */
  replyWithError(error: ErrorToken | string): boolean {
    return this.#sink.answer({ type: 'ERROR', error: error as ErrorToken });
  }

  /** Answers with a ready-made answer (as the policy worker returns it). */
  reply(answer: IdentAnswer): boolean {
    return this.#sink.answer(answer);
  }
}
