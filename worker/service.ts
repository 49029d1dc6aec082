/**
 * What every route and the in-process entry share: the app's dependencies resolved once,
 * the current policy snapshot, and deciding a list of requests with one log entry.
 */
import { MAX_BATCH, WIRE_VERSION, type LookupAnswer, type LookupRequest } from '../protocol/wire.js';
import type { IdentAnswer } from '../protocol/reply.js';
import type { HmacSha256 } from '../protocol/signature.js';
import { decide } from './policy/index.js';
import { PolicyStoreError, type PolicySnapshot, type PolicyStore } from './stores/store.js';
import { RequestRejected } from './http.js';
import type { AssignmentCache } from './audit/assignments.js';
import { auditRecordOf, type Caller } from './audit/record.js';
import type { AuditRecorder } from './audit/recorder.js';
import type { AuditRecord, AuditStore } from './stores/audit.js';

/** The audit database's parts (docs/audit.md): absent, nothing is recorded and the audit routes answer 503. */
export interface AuditDeps {
  readonly store: AuditStore;
  readonly recorder: AuditRecorder;
  readonly assignments: AssignmentCache;
}

/** Longest a decision waits for the very first read of the assignments (later reads never hold one up). */
export const FIRST_ASSIGNMENTS_WAIT_MS = 250;

export interface AppDeps {
  store: PolicyStore;
  /** HMAC secrets; all are accepted (rotation). A function is asked on every request. */
  secrets: readonly string[] | (() => readonly string[]);
  /** Bearer tokens for the admin routes. None: the admin routes answer 503 not_configured. */
  adminTokens?: readonly string[] | (() => readonly string[]);
  /** 'service' (default): lookups must be signed. 'embedded': called in-process, no signature. */
  mode?: 'embedded' | 'service';
  log?: (entry: Record<string, unknown>) => void;
  /** Log each request's decisions, one entry per request (default true); false skips building the entries when nobody reads them. */
  logDecisions?: boolean;
  /** Clock in milliseconds since the epoch. */
  now?: () => number;
  /** The audit trail, assignments and fleet; without it nothing is recorded. */
  audit?: AuditDeps | undefined;
  /** This identgate's version: in embedded mode the gateway is this process, and the fleet list shows it. */
  version?: string;
  /** The HMAC the signature checks use; default WebCrypto's (the Node worker passes node:crypto's). */
  hmac?: HmacSha256;
}

/** Hands work to the runtime to finish after the response (Workers: ctx.waitUntil); absent elsewhere. */
export type AfterResponse = (work: Promise<unknown>) => void;

export interface Service {
  readonly mode: 'embedded' | 'service';
  readonly store: PolicyStore;
  readonly log: (entry: Record<string, unknown>) => void;
  readonly now: () => number;
  readonly hmac: HmacSha256 | undefined;
  /** The configured signing secrets, empty ones dropped. */
  secrets(): readonly string[];
  adminTokens(): readonly string[];
  /** The store's snapshot; 503 policy_unavailable when it has none. */
  current(): Promise<PolicySnapshot>;
  readonly audit: AuditDeps | undefined;
  /** Who asks in embedded mode: this process, unsigned. */
  readonly embeddedCaller: Caller;
  /**
   * Decides every request from one snapshot, in order, logging the decisions as one entry and
   * queueing their audit records (written after the answer; `afterResponse` gets that work).
   */
  answerAll(
    snapshot: PolicySnapshot,
    requests: readonly LookupRequest[],
    caller?: Caller,
    afterResponse?: AfterResponse,
  ): LookupAnswer[];
  /**
   * When the policy uses the assigned action: waits (at most FIRST_ASSIGNMENTS_WAIT_MS) for the
   * first read of the assignments, and refreshes a stale copy after the response.
   */
  assignmentsReady(snapshot: PolicySnapshot, afterResponse?: AfterResponse): Promise<void>;
}

const usesAssigned = new WeakMap<object, boolean>();

/** Whether any rule (or the default) answers with the assigned action: only then are assignments read. */
function policyUsesAssigned(snapshot: PolicySnapshot): boolean {
  let uses = usesAssigned.get(snapshot.policy);
  if (uses === undefined) {
    uses = [...snapshot.policy.rules, snapshot.policy.default].some((outcome) => 'assigned' in outcome.action);
    usesAssigned.set(snapshot.policy, uses);
  }
  return uses;
}

function resolve(list: readonly string[] | (() => readonly string[]) | undefined): readonly string[] {
  const values = typeof list === 'function' ? list() : (list ?? []);
  return values.filter((value) => value.length > 0);
}

function summarize(answer: IdentAnswer): Record<string, string> {
  return answer.type === 'USERID' ? { type: 'USERID', userId: answer.userId } : { type: 'ERROR', error: answer.error };
}

/**
 * A decision-log setting (Workers: the IDENTGATE_DECISION_LOG var): "on" or unset logs each request's decisions,
 * "off" does not; any other value is logged once as a config error and leaves the log on, so a typo hides nothing.
 *
 * @example
 * decisionLog('off', log) // false
 */
export function decisionLog(value: string | undefined, log: (entry: Record<string, unknown>) => void): boolean {
  if (value === undefined || value === '' || value === 'on') return true;
  if (value === 'off') return false;
  const error = `IDENTGATE_DECISION_LOG must be "on" or "off", got ${JSON.stringify(value.slice(0, 64))}; the decision log stays on`;
  log({ msg: 'config_error', error });
  return true;
}

/** 400 invalid_request unless 1 to MAX_BATCH requests. */
export function checkBatchSize<T>(requests: readonly T[]): readonly T[] {
  if (requests.length < 1 || requests.length > MAX_BATCH) {
    const message = `a batch holds 1 to ${MAX_BATCH} requests, got ${requests.length}`;
    throw new RequestRejected(400, 'invalid_request', message);
  }
  return requests;
}

export function createService(deps: AppDeps): Service {
  const log = deps.log ?? (() => {});
  const logDecisions = deps.log !== undefined && deps.logDecisions !== false;
  const now = deps.now ?? Date.now;
  const audit = deps.audit;
  const embeddedCaller: Caller = { signingKey: null, gatewayVersion: deps.version ?? null };
  return {
    audit,
    embeddedCaller,
    mode: deps.mode ?? 'service',
    store: deps.store,
    log,
    now,
    hmac: deps.hmac,
    secrets: () => resolve(deps.secrets),
    adminTokens: () => resolve(deps.adminTokens),
    async current() {
      try {
        return await deps.store.current();
      } catch (error) {
        if (!(error instanceof PolicyStoreError)) throw error;
        log({ msg: 'policy_unavailable', error: error.message });
        throw new RequestRejected(503, 'policy_unavailable', 'no valid policy is available; see the worker log');
      }
    },
    // One log call per request, not per decision: on Workers each call is a log event, and under
    // wrangler dev it crosses two processes, so a batch of 64 queries costs one call, not 64.
    answerAll(snapshot, requests, caller = embeddedCaller, afterResponse) {
      const answers: LookupAnswer[] = [];
      // Built only when logged: this runs for every embedded query.
      const decisions: Record<string, unknown>[] | undefined = logDecisions ? [] : undefined;
      const records: AuditRecord[] | undefined = audit ? [] : undefined;
      const context = records && { ...caller, at: now(), policyVersion: snapshot.version };
      const assigned = audit?.assignments;
      for (const request of requests) {
        const decision = decide(snapshot.compiled, request, undefined, assigned);
        if (context) records!.push(auditRecordOf(request, decision, context));
        const delegate = decision.delegate;
        answers.push(
          delegate === undefined
            ? { v: WIRE_VERSION, id: request.id, answer: decision.answer, rule: decision.rule }
            : { v: WIRE_VERSION, id: request.id, answer: decision.answer, rule: decision.rule, delegate },
        );
        decisions?.push({
          id: request.id,
          gateway: request.gateway,
          rule: decision.rule,
          answer: summarize(decision.answer),
          ...(decision.delegate !== undefined && { delegate: decision.delegate.kind }),
          serverPort: request.query.serverPort,
          clientPort: request.query.clientPort,
          localAddress: request.connection.localAddress,
          remoteAddress: request.connection.remoteAddress,
        });
      }
      if (decisions) log({ msg: 'decisions', policyVersion: snapshot.version, count: decisions.length, decisions });
      // Never awaited here: the answer does not wait for the database (the recorder's promise never rejects).
      if (records) {
        const written = audit!.recorder.record(records);
        afterResponse?.(written);
      }
      return answers;
    },
    async assignmentsReady(snapshot, afterResponse) {
      if (!audit || !policyUsesAssigned(snapshot)) return;
      const cache = audit.assignments;
      if (cache.loaded) {
        const refreshed = cache.refresh();
        afterResponse?.(refreshed);
        return;
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const waited = new Promise<void>((resolve) => (timer = setTimeout(resolve, FIRST_ASSIGNMENTS_WAIT_MS)));
      const first = cache.refresh();
      afterResponse?.(first);
      await Promise.race([first, waited]);
      if (timer !== undefined) clearTimeout(timer);
    },
  };
}
