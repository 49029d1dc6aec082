/**
 * Delegated answers (docs/wire.md): the gateway carries out a policy's forward or userfile delegate on its own host
 * before the reply is written, checks what it yields against the rule's accept, and writes the fallback otherwise.
 *
 * @example
 * const delegates = createDelegateRunner({ log });
 * const { answer, outcome } = await delegates.run(lookup.delegate, request, lookup.answer, deadline);
 *
 */
import { compileConstraints, type CompiledConstraints } from '../../protocol/constraints.js';
import { replyRuleViolation, type IdentAnswer } from '../../protocol/reply.js';
import type { Delegate, ForwardDelegate, LookupRequest, UserFileDelegate } from '../../protocol/wire.js';
import type { Logger } from '../daemon/log.js';
import { PasswdNames } from '../owner/passwd.js';
import { acceptName } from './accept.js';
import { forwardAllowList, forwardQuery } from './forward.js';
import { canonicalAddress, matchUserFile } from './oidentd-conf.js';
import { UserFiles } from './user-files.js';

export { forwardAllowList, forwardQuery, parseForwardCidr, type ForwardOutcome } from './forward.js';
export {
  parseUserFile,
  matchUserFile,
  UserFileSyntaxError,
  type UserFile,
  type UserFileEntry,
} from './oidentd-conf.js';
export { UserFiles, type UserFileRead } from './user-files.js';

export interface DelegateResult {
  readonly answer: IdentAnswer;
  /** 'forward', 'userfile', or 'fallback: <why>' — for logs and metrics. */
  readonly outcome: string;
}

export interface DelegateRunner {
  /** Runs `delegate` for `request` until `deadline` (performance.now() milliseconds); never rejects. */
  run(delegate: Delegate, request: LookupRequest, fallback: IdentAnswer, deadline: number): Promise<DelegateResult>;
}

export interface DelegateRunnerOptions {
  passwd?: PasswdNames;
  userFiles?: UserFiles;
  /** Where forwards may go; default loopback and this host's addresses (forwardAllowList()). */
  forwardAllowed?: (host: string) => boolean;
  log?: Logger;
  /** Values in [0, 1) for `random`, `random_numeric` and a choice among several replies. */
  random?: () => number;
}

/** oidentd's random_ident: 11 characters of this set. */
const RANDOM_ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const HIDDEN: IdentAnswer = Object.freeze({ type: 'ERROR', error: 'HIDDEN-USER' });
const ACCOUNT_TTL_MS = 1_000;
const MAX_ACCOUNTS = 10_000;

function cryptoRandom(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0]! / 0x100000000;
}

/**
 * @example
 * const runner = createDelegateRunner({ forwardAllowed: forwardAllowList(['10.0.3.0/24']) });
 */
export function createDelegateRunner(options: DelegateRunnerOptions = {}): DelegateRunner {
  const passwd = options.passwd ?? new PasswdNames();
  const log = options.log;
  const userFiles =
    options.userFiles ??
    new UserFiles({
      passwd,
      onWarning: (path, reason) => log?.warn({ path }, `oidentd user file not used: ${reason}`),
    });
  const forwardAllowed = options.forwardAllowed ?? forwardAllowList();
  // An embedded policy hands the same delegate object for every query of a rule: its patterns compile once.
  const compiled = new WeakMap<object, CompiledConstraints>();
  // Whether a name is another local account's, remembered for a second: repeated answers cost no stat of /etc/passwd.
  const accounts = new Map<string, { uid: number | null; at: number }>();
  const uidOf = async (name: string): Promise<number | null> => {
    const now = performance.now();
    const known = accounts.get(name);
    if (known !== undefined && now - known.at < ACCOUNT_TTL_MS) return known.uid;
    const uid = await passwd.uidOf(name);
    if (accounts.size >= MAX_ACCOUNTS) accounts.clear();
    accounts.set(name, { uid, at: now });
    return uid;
  };
  const random = options.random ?? cryptoRandom;
  const pick = (size: number) => Math.min(size - 1, Math.floor(random() * size));

  const fallbackWith = (fallback: IdentAnswer, why: string): DelegateResult => ({
    answer: fallback,
    outcome: `fallback: ${why}`,
  });

  async function userIdAnswer(
    delegate: Delegate,
    request: LookupRequest,
    fallback: IdentAnswer,
    name: string,
    outcome: string,
  ): Promise<DelegateResult> {
    let constraints = compiled.get(delegate.accept);
    if (constraints === undefined) compiled.set(delegate.accept, (constraints = compileConstraints(delegate.accept)));
    const refused = await acceptName(constraints, name, request.owner?.uid ?? null, { uidOf });
    if (refused) return fallbackWith(fallback, `${JSON.stringify(name.slice(0, 64))} ${refused}`);
    // eslint-disable-next-line no-control-regex
    const charset = delegate.charset ?? (/^[\x00-\x7f]*$/.test(name) ? undefined : 'UTF-8');
    const answer: IdentAnswer =
      charset === undefined
        ? { type: 'USERID', opsys: delegate.opsys, userId: name }
        : { type: 'USERID', opsys: delegate.opsys, charset, userId: name };
    const violation = replyRuleViolation(answer);
    if (violation) return fallbackWith(fallback, violation);
    return { answer, outcome };
  }

  async function forward(
    delegate: Delegate,
    host: string,
    port: number,
    request: LookupRequest,
    fallback: IdentAnswer,
    deadline: number,
    outcome: string,
  ): Promise<DelegateResult> {
    // The inner host this gateway's own NAT lookup found for the query may always be asked (docs/nat.md).
    const inner = request.nat?.innerAddress;
    const innerCanonical = inner === undefined ? undefined : canonicalAddress(inner);
    const isInner = innerCanonical !== undefined && innerCanonical === canonicalAddress(host);
    if (!isInner && !forwardAllowed(host))
      return fallbackWith(fallback, `forwarding to ${host} is not allowed (--forward-allow)`);
    const query = delegate.kind === 'forward' && delegate.query ? delegate.query : request.query;
    const result = await forwardQuery({ host, port, query }, deadline - performance.now());
    if (result.userId === undefined) return fallbackWith(fallback, `forward to ${host}:${port}: ${result.reason}`);
    return userIdAnswer(delegate, request, fallback, result.userId, outcome);
  }

  async function userFile(
    delegate: UserFileDelegate,
    request: LookupRequest,
    fallback: IdentAnswer,
    deadline: number,
  ): Promise<DelegateResult> {
    const owner = request.owner;
    if (owner === null) return fallbackWith(fallback, 'owner unknown');
    const found = await userFiles.read(owner.uid, delegate.files);
    if (found.status !== 'ok')
      return fallbackWith(
        fallback,
        found.status === 'none' ? found.reason : `${found.path} ${found.status}: ${found.reason}`,
      );
    const entry = matchUserFile(found.file, {
      localPort: request.query.serverPort,
      remotePort: request.query.clientPort,
      localAddress: canonicalAddress(request.connection.localAddress) ?? '',
      remoteAddress: canonicalAddress(request.connection.remoteAddress) ?? '',
    });
    if (entry === undefined) return fallbackWith(fallback, `no entry of ${found.path} matches`);
    const capability = entry.capability;
    if (!delegate.allow.includes(capability.kind))
      return fallbackWith(
        fallback,
        `${found.path} line ${entry.line}: '${capability.kind}' is not granted by the rule`,
      );
    switch (capability.kind) {
      case 'reply':
        return userIdAnswer(
          delegate,
          request,
          fallback,
          capability.replies[pick(capability.replies.length)]!,
          'userfile',
        );
      case 'hide':
        return { answer: HIDDEN, outcome: 'userfile' };
      case 'numeric':
        return userIdAnswer(delegate, request, fallback, String(owner.uid), 'userfile');
      case 'random': {
        let userId = '';
        for (let i = 0; i < 11; i++) userId += RANDOM_ALPHABET[pick(RANDOM_ALPHABET.length)];
        return userIdAnswer(delegate, request, fallback, userId, 'userfile');
      }
      case 'random_numeric':
        return userIdAnswer(delegate, request, fallback, `user${pick(100_000)}`, 'userfile');
      case 'forward':
        return forward(delegate, capability.host, capability.port, request, fallback, deadline, 'userfile');
    }
  }

  return {
    async run(delegate, request, fallback, deadline) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<DelegateResult>((resolve) => {
        timer = setTimeout(
          () => resolve(fallbackWith(fallback, 'timeout (the query deadline passed)')),
          Math.max(0, deadline - performance.now()),
        );
      });
      const work = (async (): Promise<DelegateResult> => {
        if (delegate.kind === 'forward') {
          const forwardDelegate: ForwardDelegate = delegate;
          return forward(
            forwardDelegate,
            forwardDelegate.host,
            forwardDelegate.port,
            request,
            fallback,
            deadline,
            'forward',
          );
        }
        return userFile(delegate, request, fallback, deadline);
      })().catch((error: unknown) => {
        log?.error({ err: error, id: request.id }, 'delegated answer failed (a bug); sent the fallback');
        return fallbackWith(fallback, 'internal error');
      });
      try {
        return await Promise.race([work, late]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
