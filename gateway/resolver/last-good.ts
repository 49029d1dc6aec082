/**
 * The last-good policy (docs/wire.md "Last-good policy"): the worker's policy for this gateway, polled over a signed
 * route and kept compiled, so that a query the worker fails to answer is decided here by the pure evaluator, as stale.
 */
import { describeIssues } from '../../protocol/issues.js';
import {
  GatewayPolicyAnswerSchema,
  ROUTES,
  WIRE_VERSION,
  type LookupAnswer,
  type LookupRequest,
} from '../../protocol/wire.js';
import { keyNeedOf } from '../../worker/policy/actions/index.js';
import {
  compilePolicy,
  decide,
  parsePolicy,
  type CompiledPolicy,
  type PolicyOutcome,
} from '../../worker/policy/index.js';
import { ResolverFailure, type Exchange } from './types.js';
import { parseReplyJson } from './wire.js';

/** Appended to the deciding rule's name in a stale answer (the gateway's query log says which answers were stale). */
export const STALE_RULE_SUFFIX = ' (stale)';

/** The defaults of --stale-policy-max-age and --stale-policy-refresh. */
export const LAST_GOOD_DEFAULTS = {
  /** How long after the worker last confirmed the policy it may still answer queries; 0: never. */
  maxAgeMs: 3_600_000,
  /** How often the worker is asked whether its policy changed (a change reaches the gateway within this). */
  refreshMs: 5_000,
} as const;

/** Where a stale answer comes from, for the dispatcher: undefined means the fallback answers. */
export interface LastGoodAnswerer {
  answer(request: LookupRequest): LookupAnswer | undefined;
}

export interface LastGoodOptions {
  /** Signed POSTs to the worker (the HTTP resolver's own). */
  exchange: Exchange;
  /** What the exchange rejects with, as a ResolverFailure. */
  mapError: (error: unknown) => ResolverFailure;
  /** This gateway's name: the worker sends the rules that can match it; queries for another name are not answered. */
  gateway: string;
  maxAgeMs: number;
  refreshMs: number;
  /** A policy version was fetched (the first, or a change). */
  onUpdate?: (version: string, rules: number, workerOnly: number) => void;
  /** A poll failed (the first of a run of failures); the policy held keeps ageing. */
  onPollFailure?: (failure: ResolverFailure) => void;
  now?: () => number;
}

interface Held {
  readonly version: string;
  readonly compiled: CompiledPolicy;
  /** Rules (and "default") whose answers need what only the worker has: the pseudonym key, the assignments. */
  readonly workerOnly: ReadonlySet<string>;
}

/** In place of an outcome only the worker can answer: never answered (workerOnly), there so that the policy compiles. */
const PLACEHOLDER = { action: { error: 'UNKNOWN-ERROR' } } as const;

function workerOnly(outcome: unknown): boolean {
  const action = (outcome as Partial<PolicyOutcome> | null)?.action;
  if (typeof action !== 'object' || action === null) return false;
  return keyNeedOf(action) !== undefined || 'assigned' in action;
}

/**
 * The worker's policy document as the gateway can use it: outcomes that need the key or the assignments replaced by a
 * placeholder, their rule names kept, so that a query they decide gets the fallback. Throws ResolverFailure.
 */
function hold(version: string, document: unknown): Held {
  if (typeof document !== 'object' || document === null || Array.isArray(document))
    throw new ResolverFailure('schema_mismatch', 'the worker sent a policy that is not an object');
  const { key: _key, rules, default: fallback, ...rest } = document as Record<string, unknown>;
  const names = new Set<string>();
  const usable = Array.isArray(rules)
    ? rules.map((rule: unknown) => {
        if (!workerOnly(rule)) return rule;
        const { name, match } = rule as { name?: unknown; match?: unknown };
        names.add(String(name));
        return { name, ...(match !== undefined && { match }), ...PLACEHOLDER };
      })
    : rules;
  if (workerOnly(fallback)) names.add('default');
  try {
    const policy = parsePolicy({ ...rest, rules: usable, default: workerOnly(fallback) ? PLACEHOLDER : fallback });
    return { version, compiled: compilePolicy(policy), workerOnly: names };
  } catch (error) {
    throw new ResolverFailure('schema_mismatch', `the worker's policy does not parse: ${(error as Error).message}`);
  }
}

/**
 * Polls the worker's policy and answers from it while the worker last confirmed it within maxAgeMs.
 *
 * @example
 * const lastGood = new LastGoodPolicy({ exchange, mapError, gateway: 'edge-1', maxAgeMs: 3_600_000, refreshMs: 5_000 });
 * lastGood.start();
 * lastGood.answer(request); // { v: 1, id, answer, rule: 'staff (stale)' }, or undefined
 */
export class LastGoodPolicy implements LastGoodAnswerer {
  readonly #options: LastGoodOptions;
  readonly #now: () => number;
  #held: Held | undefined;
  /** When the worker last said the held policy is its current one. */
  #confirmedAt = -Infinity;
  #timer: NodeJS.Timeout | undefined;
  #polling: AbortController | undefined;
  #failing = false;
  #closed = false;
  #sequence = 0;

  constructor(options: LastGoodOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  get version(): string | undefined {
    return this.#held?.version;
  }

  /** Milliseconds since the worker last confirmed the held policy (Infinity before it ever did). */
  get confirmedAgeMs(): number {
    return this.#now() - this.#confirmedAt;
  }

  /** The version stale answers come from now: undefined without one, or once it is older than maxAgeMs. */
  get usableVersion(): string | undefined {
    return this.#now() - this.#confirmedAt > this.#options.maxAgeMs ? undefined : this.#held?.version;
  }

  /** Polls now, then every refreshMs (the timers do not keep the process alive). */
  start(): void {
    if (!this.#closed && this.#timer === undefined && this.#polling === undefined) void this.#poll();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#polling?.abort(new ResolverFailure('timeout', 'closed'));
  }

  answer(request: LookupRequest): LookupAnswer | undefined {
    const held = this.#held;
    if (held === undefined || request.gateway !== this.#options.gateway || this.usableVersion === undefined)
      return undefined;
    const decision = decide(held.compiled, request);
    if (held.workerOnly.has(decision.rule)) return undefined;
    const rule = decision.rule + STALE_RULE_SUFFIX;
    const { answer, delegate } = decision;
    return delegate === undefined
      ? { v: WIRE_VERSION, id: request.id, answer, rule }
      : { v: WIRE_VERSION, id: request.id, answer, rule, delegate };
  }

  /** Asks the worker once; never rejects. A poll that hangs (a stopped worker) is cut when the next is due. */
  async refresh(): Promise<void> {
    if (this.#closed) return;
    const polling = new AbortController();
    this.#polling = polling;
    const cut = setTimeout(
      () => polling.abort(new ResolverFailure('timeout', `no policy answer within ${this.#options.refreshMs} ms`)),
      this.#options.refreshMs,
    );
    try {
      const held = this.#held;
      const body = JSON.stringify({
        v: WIRE_VERSION,
        id: `policy-${this.#now()}-${++this.#sequence}`,
        gateway: this.#options.gateway,
        ...(held && { have: held.version }),
      });
      let json: unknown;
      try {
        json = parseReplyJson(await this.#options.exchange(ROUTES.gatewayPolicy, body, polling.signal));
      } catch (error) {
        throw polling.signal.aborted && polling.signal.reason instanceof ResolverFailure
          ? polling.signal.reason
          : this.#options.mapError(error);
      }
      const parsed = GatewayPolicyAnswerSchema.safeParse(json);
      if (!parsed.success)
        throw new ResolverFailure('schema_mismatch', `policy answer: ${describeIssues(parsed.error)}`);
      const answer = parsed.data;
      if ('policy' in answer) {
        const next = hold(answer.version, answer.policy);
        this.#held = next;
        this.#options.onUpdate?.(next.version, next.compiled.rules.length, next.workerOnly.size);
      } else if (answer.version !== held?.version) {
        throw new ResolverFailure('schema_mismatch', `"unchanged" for version ${answer.version}, not the one held`);
      }
      this.#confirmedAt = this.#now();
      this.#failing = false;
    } catch (error) {
      const failure = error instanceof ResolverFailure ? error : this.#options.mapError(error);
      if (!this.#failing && !this.#closed) this.#options.onPollFailure?.(failure);
      this.#failing = true;
    } finally {
      clearTimeout(cut);
      this.#polling = undefined;
    }
  }

  async #poll(): Promise<void> {
    await this.refresh();
    if (this.#closed) return;
    this.#timer = setTimeout(() => void this.#poll(), this.#options.refreshMs);
    this.#timer.unref();
  }
}
