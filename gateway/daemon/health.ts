/**
 * Liveness and readiness of `identgate serve`, answered on its --metrics port (GET /healthz, GET /readyz). Ready
 * means: listening, and able to answer from a policy — the embedded one, or the worker's (reachable, or a last-good
 * copy held). docs/operations.md says what each check means.
 *
 * @example
 * const worker = trackWorker({ probe: () => probeWorker(upstream, 1_000) });
 * const health = createHealth({ listening: () => listeningCheck(server), worker: () => worker.check() });
 * (await health.ready()).ready // true or false, with every check's detail
 */
import type { FailureCause } from '../resolver/types.js';
import type { ProbeResult } from '../resolver/probe.js';
import type { Logger } from './log.js';

/** One readiness check's result: whether it passes, and one line saying why. */
export type CheckResult = ProbeResult;

export interface Readiness {
  readonly ready: boolean;
  readonly checks: Readonly<Record<string, CheckResult>>;
}

/** What the metrics port answers on /healthz and /readyz. */
export interface HealthSource {
  ready(): Promise<Readiness>;
}

/**
 * @example
 * createHealth({ listening: () => ({ ok: true, detail: 'listening on 127.0.0.1:113' }) })
 */
export function createHealth(checks: Record<string, () => CheckResult | Promise<CheckResult>>): HealthSource {
  return {
    async ready() {
      const names = Object.keys(checks);
      const results = await Promise.all(names.map(async (name) => checks[name]!()));
      const byName = Object.fromEntries(names.map((name, i) => [name, results[i]!]));
      return { ready: results.every((result) => result.ok), checks: byName };
    },
  };
}

/**
 * Failures after which the worker answers but not usably (a wrong secret, a broken answer): the health route
 * cannot see them, so they hold until a query is answered again.
 */
const UNUSABLE_ANSWERS: ReadonlySet<FailureCause> = new Set([
  'auth',
  'invalid_json',
  'schema_mismatch',
  'id_mismatch',
  'invalid_answer',
  'body_too_large',
  'invalid_request',
]);

export interface WorkerTrackerOptions {
  /** Asks the worker once (probeWorker). */
  probe(): Promise<ProbeResult>;
  /** The last-good policy the gateway may still answer from (gateway/resolver/last-good.ts), when it holds one. */
  lastGood?: () => { readonly version: string; readonly ageMs: number } | undefined;
  /** A probe's answer is reused this long (readiness probes every few seconds must not each ask). Default 1000 ms. */
  freshMs?: number;
  now?: () => number;
}

export interface WorkerTracker {
  /** Whether queries can be answered from the worker's policy now: reachable, or a last-good policy held. */
  check(): Promise<CheckResult>;
  /** The resolver's failure report (onFailure). */
  failed(cause: FailureCause, detail: string): void;
  /** The resolver's recovery report (onRecover). */
  recovered(): void;
}

/**
 * What the gateway knows of its policy worker: the resolver's reports of failed and recovered queries, and a probe of
 * the worker's health route when nothing recent is known.
 *
 * @example
 * const worker = trackWorker({ probe: () => probeWorker(url, 1_000), lastGood: () => undefined });
 */
export function trackWorker(options: WorkerTrackerOptions): WorkerTracker {
  const freshMs = options.freshMs ?? 1_000;
  const now = options.now ?? Date.now;
  let unusable: CheckResult | undefined;
  let known: { result: ProbeResult; at: number } | undefined;
  let probing: Promise<ProbeResult> | undefined;

  const probe = (): Promise<ProbeResult> => {
    probing ??= options.probe().then((result) => {
      known = { result, at: now() };
      probing = undefined;
      return result;
    });
    return probing;
  };

  return {
    async check() {
      const state = unusable ?? (known !== undefined && now() - known.at < freshMs ? known.result : await probe());
      if (state.ok) return state;
      const good = options.lastGood?.();
      if (good === undefined) return state;
      return {
        ok: true,
        detail: `${state.detail}; answering from the last-good policy ${good.version} (${Math.round(good.ageMs / 1000)} s old)`,
      };
    },
    failed(cause, detail) {
      if (UNUSABLE_ANSWERS.has(cause)) unusable = { ok: false, detail: `queries fail (${cause}): ${detail}` };
      else known = { result: { ok: false, detail: `queries fail (${cause}): ${detail}` }, at: now() };
    },
    recovered() {
      unusable = undefined;
      known = { result: { ok: true, detail: 'queries are answered' }, at: now() };
    },
  };
}

/**
 * Probes the policy worker once and says what it found: a warning naming the problem when it cannot be used (queries
 * are answered with the fallback until it can), an info line when it answers.
 */
export async function checkWorkerAtStart(worker: WorkerTracker, answeredBy: string, log: Logger): Promise<void> {
  const { ok, detail } = await worker.check();
  if (ok) log.info({ detail }, 'policy worker reachable');
  else
    log.warn(
      { detail },
      `policy worker not usable at start (${answeredBy}): queries get the fallback answer until it is`,
    );
}
