/**
 * Runs the real `identgate serve` (the built dist/gateway/cli/main.js) against the
 * real Debian ident clients on port 113, in a network namespace of its own
 * (netns.ts `runInNetns`), with a connection held by the dedicated system user
 * `identgate-interop` (created here when missing). One scenario is one run of
 * peers/gateway-scenario.mjs, which starts the gateway, the listener and the
 * test user's connection, runs the plan's clients one after the other, stops
 * everything and reports what each client printed, as a `ScenarioReport`.
 * The gateway runs at debug log level, so the report also carries the
 * gateway's own account of every query it answered (`gatewayQueries`).
 *
 * @example
 * const user = ensureTestUser();
 * const report = await runGatewayScenario({ gatewayArgs: ['--reply', 'x'], user, steps: [{ client: 'net-ident-accept' }] });
 * report.steps[0]?.stdout // 'LISTEN\t...\nCONN\t...\nUSERID\tOTHER\tx\n'
 */
import { execFileSync } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { join } from 'node:path';
import { PEERS_DIR, REPO_ROOT, runInNetns } from './netns.js';

/** The dedicated system user whose connections the gateway must name. */
export const TEST_USER = 'identgate-interop';

/** The built CLI the scenarios run (`npm run build`, done by `npm test`'s pretest). */
export const GATEWAY_CLI = join(REPO_ROOT, 'dist/gateway/cli/main.js');

/** The test user's numeric ids. */
export interface TestUser {
  readonly uid: number;
  readonly gid: number;
}

/** The ports of one connection, in RFC 1413 order: serverPort is the end on the gateway's host. */
export interface PortPair {
  readonly serverPort: number;
  readonly clientPort: number;
}

/**
 * One client run: `net-ident-accept` is a root Perl server that accepts a
 * connection from the test user and calls Net::Ident::lookup on it;
 * `libident-lookup` is peers/ident-query.c's ident_lookup mode run as the test
 * user; the others ask with the ports of `connection` (`held`: the test user's
 * connection; `absent`: no connection at all).
 */
export type ScenarioStep =
  | { readonly client: 'net-ident-accept' | 'libident-lookup' }
  | { readonly client: 'net-ident-ports' | 'libident-query' | 'poe'; readonly connection: 'held' | 'absent' };

export interface ScenarioPlan {
  /** Arguments after `serve --listen 127.0.0.1:113`. */
  readonly gatewayArgs: readonly string[];
  readonly user: TestUser;
  /** The compiled peers/ident-query.c, executable by the test user (libident steps only). */
  readonly identQuery?: string;
  readonly steps: readonly ScenarioStep[];
}

/** How a process ended and what it wrote. */
export interface ProcessOutcome {
  readonly code: number | null;
  readonly signal: string | null;
  readonly timedOut: boolean;
  readonly stdout: string;
  readonly stderr: string;
}

export interface StepReport extends ProcessOutcome {
  readonly client: ScenarioStep['client'];
  readonly connection: 'held' | 'absent' | null;
  /** net-ident-accept only: the test user's end of the connection the Perl server accepted. */
  readonly holder?: { readonly clientPort: number; readonly uid: number };
}

export interface ScenarioReport {
  readonly gateway: ProcessOutcome;
  /** The test user's connection to the driver's listener, and the uid that holds it. */
  readonly held: PortPair & { readonly uid: number };
  /** Ports between which no connection exists (serverPort is the listener's, owned by root). */
  readonly absent: PortPair;
  readonly steps: readonly StepReport[];
}

/** What the gateway logged (at debug level) about one query it answered. */
export interface GatewayQueryLog {
  readonly query: PortPair;
  readonly remoteAddress: string;
  readonly owner: { readonly uid: number; readonly userName?: string } | null;
  readonly answer: {
    readonly type: string;
    readonly opsys?: string;
    readonly userId?: string;
    readonly error?: string;
  };
}

/** The scenario could not be run as planned; `message` carries the driver's account and the gateway's output. */
export class ScenarioError extends Error {
  readonly code = 'ERR_INTEROP_SCENARIO';
  constructor(message: string) {
    super(message);
    this.name = 'ScenarioError';
  }
}

/**
 * The test user's ids, creating it (a system user with its own group and no
 * home) when it does not exist yet. Needs root, as the interop suite does.
 *
 * @example
 * const { uid, gid } = ensureTestUser();
 */
export function ensureTestUser(): TestUser {
  const existing = lookupUser();
  if (existing) return existing;
  try {
    execFileSync(
      'useradd',
      ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', TEST_USER],
      { stdio: 'pipe' },
    );
  } catch (error) {
    // Another run may have created it meanwhile; only a still-missing user is an error.
    if (!lookupUser())
      throw new ScenarioError(
        `cannot create the test user ${TEST_USER} with useradd (run the interop suite as root): ${String(error)}`,
      );
  }
  const created = lookupUser();
  if (!created) throw new ScenarioError(`useradd did not create ${TEST_USER}`);
  return created;
}

function lookupUser(): TestUser | undefined {
  try {
    const [, , uid, gid] = execFileSync('getent', ['passwd', TEST_USER], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .trim()
      .split(':');
    return { uid: Number(uid), gid: Number(gid) };
  } catch {
    return undefined;
  }
}

/**
 * Fails with what to do when the gateway has not been built.
 *
 * @example
 * await requireBuiltGateway();
 */
export async function requireBuiltGateway(): Promise<void> {
  try {
    await access(GATEWAY_CLI, constants.R_OK);
  } catch {
    throw new ScenarioError(`${GATEWAY_CLI} is missing; run "npm run build" first (npm test does it)`);
  }
}

/**
 * Runs one scenario in a fresh network namespace and returns its report;
 * throws ScenarioError when the scenario itself failed (the gateway did not
 * start, the test user's connection could not be made), with everything the
 * driver saw.
 *
 * @example
 * const report = await runGatewayScenario({ gatewayArgs: ['--owner-lookup', 'on'], user, steps: [{ client: 'poe', connection: 'held' }] });
 */
export async function runGatewayScenario(plan: ScenarioPlan, timeoutMs = 50_000): Promise<ScenarioReport> {
  const driverPlan = { cli: GATEWAY_CLI, ...plan, gatewayArgs: [...plan.gatewayArgs, '--log-level', 'debug'] };
  const outer = await runInNetns(
    process.execPath,
    [join(PEERS_DIR, 'gateway-scenario.mjs'), JSON.stringify(driverPlan)],
    { timeoutMs },
  );
  const line = outer.stdout.trim().split('\n').pop() ?? '';
  let report: ScenarioReport & { fault: string | null };
  try {
    report = JSON.parse(line) as ScenarioReport & { fault: string | null };
  } catch {
    throw new ScenarioError(
      `the scenario driver did not report (exit ${outer.code}); stdout: ${JSON.stringify(outer.stdout)}, stderr: ${JSON.stringify(outer.stderr)}`,
    );
  }
  if (report.fault !== null) {
    throw new ScenarioError(
      `the scenario failed: ${report.fault}\ngateway stdout: ${report.gateway?.stdout ?? ''}\ngateway stderr: ${report.gateway?.stderr ?? ''}`,
    );
  }
  return report;
}

/**
 * The gateway's debug log of every query it answered, in order.
 *
 * @example
 * gatewayQueries(report)[0]?.owner // { uid: 994, userName: 'identgate-interop' }
 */
export function gatewayQueries(report: ScenarioReport): GatewayQueryLog[] {
  const queries: GatewayQueryLog[] = [];
  for (const text of report.gateway.stderr.split('\n')) {
    if (!text.startsWith('{')) continue;
    const line = JSON.parse(text) as Partial<GatewayQueryLog> & { msg?: string };
    if (line.msg !== 'query' || line.query === undefined || line.answer === undefined) continue;
    queries.push({
      query: line.query,
      remoteAddress: line.remoteAddress ?? '',
      owner: line.owner ?? null,
      answer: line.answer,
    });
  }
  return queries;
}

/**
 * The tab-separated fields after `kind` on the first line of a peer's output
 * that starts with it, or undefined.
 *
 * @example
 * fieldsOf('CONN\t4000\t5000\n', 'CONN') // ['4000', '5000']
 */
export function fieldsOf(stdout: string, kind: string): string[] | undefined {
  for (const line of stdout.split('\n')) {
    const [first, ...fields] = line.split('\t');
    if (first === kind) return fields;
  }
  return undefined;
}

/**
 * A report's step by position, failing clearly when the driver ran fewer.
 *
 * @example
 * const netIdent = stepOf(report, 0);
 */
export function stepOf(report: ScenarioReport, index: number): StepReport {
  const step = report.steps[index];
  if (step === undefined) throw new ScenarioError(`the scenario ran ${report.steps.length} step(s), not ${index + 1}`);
  return step;
}
