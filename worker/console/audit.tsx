/**
 * The console's pages over the audit database (docs/console.md): audit search, assignments, the gateway fleet and the
 * overview's figures. Each calls what the admin API's route calls (worker/routes/) and parses with the API's schemas.
 */
import type { Context, Hono, MiddlewareHandler } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import {
  AssignmentDeleteSchema,
  AssignmentPutSchema,
  AssignmentQuerySchema,
  AuditQuerySchema,
  DEFAULT_PAGE,
  MAX_PAGE,
  type AssignmentScope,
} from '../../protocol/audit.js';
import { issuesOf, type Issue } from '../../protocol/issues.js';
import { RequestRejected } from '../http.js';
import { auditOf, fromDatabase } from '../routes/admin-audit.js';
import { assignIdent, describeScope, listAssignments, unassignIdent } from '../routes/assignments.js';
import { searchAudit } from '../routes/audit.js';
import { listGateways } from '../routes/gateways.js';
import type { Service } from '../service.js';
import type { Assignment, AuditEntry, GatewaySeen, RuleAnswers } from '../stores/audit.js';
import { answerText, Errors, Field, formValue, Layout, page, Unavailable } from './pages.js';
import type { Session } from './session.js';

const HOUR_MS = 3_600_000;
/** Gateways the overview lists, the most recently seen first (the gateways page has them all). */
const OVERVIEW_GATEWAYS = 10;

/** The named fields of a form or query string, trimmed; empty ones are left out, as absent filters are in the API. */
function filled(source: Record<string, unknown>, names: readonly string[]): Record<string, string> {
  const given: Record<string, string> = {};
  for (const name of names) {
    const value = formValue(source, name).trim();
    if (value !== '') given[name] = value;
  }
  return given;
}

const count = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

const errorAt = (issues: readonly Issue[], path: string) => issues.find((issue) => issue.path === path)?.message;

interface Refusal {
  readonly status: ContentfulStatusCode;
  readonly code: string;
  readonly message: string;
}

/** Runs what a route runs; its RequestRejected (no database, it failed, a bad cursor, a 409) is shown on the page. */
async function attempt<T>(run: () => Promise<T>): Promise<{ value: T } | { refusal: Refusal }> {
  try {
    return { value: await run() };
  } catch (error) {
    if (!(error instanceof RequestRejected)) throw error;
    return { refusal: { status: error.status as ContentfulStatusCode, code: error.code, message: error.message } };
  }
}

const Time = (props: { at: string }) => <time datetime={props.at}>{props.at}</time>;

function Pager(props: { path: string; filters: Record<string, string>; next: string | null; paged: boolean }) {
  const { path, filters, next } = props;
  if (!next && !props.paged) return <></>;
  return (
    <nav aria-label="Result pages" class="pages">
      {props.paged && <a href={`${path}?${new URLSearchParams(filters)}`}>First page</a>}
      {next && <a href={`${path}?${new URLSearchParams({ ...filters, cursor: next })}`}>Next page</a>}
    </nav>
  );
}

type FieldList = readonly [name: string, label: string, placeholder?: string][];

/** A form's text fields in a grid, ids prefixed (two forms on one page), each with its error. */
function FieldGrid(props: {
  prefix: string;
  fields: FieldList;
  values: Record<string, string>;
  errorOf: (name: string) => string | undefined;
}) {
  return (
    <div class="grid">
      {props.fields.map(([name, label, placeholder]) => (
        <Field
          id={`${props.prefix}-${name}`}
          name={name}
          label={label}
          value={props.values[name] ?? ''}
          placeholder={placeholder}
          inputmode={/Port|Uid|^limit$/.test(name) ? 'numeric' : undefined}
          error={props.errorOf(name)}
        />
      ))}
    </div>
  );
}

// ---- Audit search -------------------------------------------------------------------------------------------------

const AUDIT_FIELDS: FieldList = [
  ['userId', 'Answered user id'],
  ['remoteAddress', 'Querier address', '192.0.2.7'],
  ['serverPort', 'Server port (on this host)', '6667'],
  ['clientPort', 'Client port (on the querier)'],
  ['gateway', 'Gateway'],
  ['ownerUid', 'Owner uid'],
  ['claimUser', 'Claim user'],
  ['from', 'From (ISO 8601, inclusive)', '2026-12-04T12:00:00Z'],
  ['to', 'To (ISO 8601, exclusive)', '2026-12-04T13:00:00Z'],
  ['limit', `Records per page (1 to ${MAX_PAGE})`, String(DEFAULT_PAGE)],
];

function RecordsTable(props: { records: readonly AuditEntry[] }) {
  const owner = (r: AuditEntry) =>
    r.owner ? `uid ${r.owner.uid}${r.owner.userName === null ? '' : ` (${r.owner.userName})`}` : 'not found';
  const claim = (r: AuditEntry) =>
    r.claim ? (r.claim.ident === undefined ? r.claim.user : `${r.claim.user}, asked for ${r.claim.ident}`) : 'none';
  return (
    <div class="wide">
      <table id="records">
        <caption>{count(props.records.length, 'record', 'records')} on this page, newest first</caption>
        <thead>
          <tr>
            <th scope="col">Time (UTC)</th>
            <th scope="col">Gateway</th>
            <th scope="col">Server, client port</th>
            <th scope="col">Querier</th>
            <th scope="col">Owner</th>
            <th scope="col">Claim</th>
            <th scope="col">Answer</th>
            <th scope="col">Rule</th>
            <th scope="col">Signed with</th>
            <th scope="col">Policy version</th>
          </tr>
        </thead>
        <tbody>
          {props.records.map((r) => (
            <tr>
              <td>
                <Time at={r.at} />
              </td>
              <td>{r.gateway}</td>
              <td>
                {r.query.serverPort}, {r.query.clientPort}
              </td>
              <td>{r.connection.remoteAddress}</td>
              <td>{owner(r)}</td>
              <td>{claim(r)}</td>
              <td>
                <code>{answerText(r.answer)}</code>
              </td>
              <td>{r.rule}</td>
              <td>{r.signingKey ?? 'unsigned'}</td>
              <td>
                <code>{r.policyVersion}</code>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

async function auditPage(c: Context, service: Service, session: Session) {
  const given = filled(c.req.query(), [...AUDIT_FIELDS.map(([name]) => name), 'cursor']);
  const { cursor, ...filters } = given;
  const parsed = AuditQuerySchema.safeParse(given);
  const issues = parsed.success ? [] : issuesOf(parsed.error);
  const outcome = parsed.success ? await attempt(() => searchAudit(service, parsed.data)) : undefined;
  const status = issues.length > 0 ? 400 : outcome && 'refusal' in outcome ? outcome.refusal.status : 200;
  return page(
    c,
    <Layout title="Audit search" page="audit" session={session}>
      <p>Every decision the worker recorded, newest first; every filter is optional and they all must match.</p>
      <form method="get" action="/admin/audit" role="search" aria-label="Audit records">
        <FieldGrid prefix="audit" fields={AUDIT_FIELDS} values={filters} errorOf={(name) => errorAt(issues, name)} />
        <button type="submit">Search</button>
      </form>
      {issues.length > 0 && <Errors heading="The search is not valid" issues={issues} />}
      {outcome && 'refusal' in outcome && <Unavailable message={outcome.refusal.message} />}
      {outcome && 'value' in outcome && (
        <section aria-labelledby="results-heading">
          <h2 id="results-heading">Records</h2>
          {outcome.value.records.length === 0 ? (
            <p role="status">No record matches.</p>
          ) : (
            <RecordsTable records={outcome.value.records} />
          )}
          <Pager path="/admin/audit" filters={filters} next={outcome.value.next} paged={cursor !== undefined} />
        </section>
      )}
    </Layout>,
    status,
  );
}

// ---- Assignments --------------------------------------------------------------------------------------------------

const ASSIGN_FIELDS: FieldList = [
  ['gateway', 'Gateway'],
  ['ownerUid', 'Owner uid'],
  ['claimUser', 'or claim user'],
  ['ident', 'Ident'],
];
const FIND_FIELDS: FieldList = [
  ['gateway', 'Gateway'],
  ['ownerUid', 'Owner uid'],
  ['claimUser', 'Claim user'],
  ['ident', 'Ident'],
  ['limit', `Per page (1 to ${MAX_PAGE})`],
];

const scopeText = (scope: AssignmentScope) =>
  'ownerUid' in scope ? `uid ${scope.ownerUid}` : `claim user ${JSON.stringify(scope.claimUser)}`;

/**
 * The add form's scope and ident: its text parsed as the query strings of /v1/assignments are (numbers, lengths),
 * then as PUT's body, so each message is the API's; the console adds only "which of the two scopes".
 */
function parseAssignForm(given: Record<string, string>): { scope: AssignmentScope; ident: string } | Issue[] {
  const text = AssignmentQuerySchema.safeParse(given);
  const issues: Issue[] = text.success ? [] : issuesOf(text.error);
  if (given.gateway === undefined) issues.push({ path: 'gateway', message: 'is required' });
  if ((given.ownerUid === undefined) === (given.claimUser === undefined))
    issues.push({ path: 'ownerUid', message: 'fill in an owner uid or a claim user (one of the two)' });
  if (given.ident === undefined) issues.push({ path: 'ident', message: 'is required' });
  if (issues.length > 0 || !text.success) return issues;
  const { gateway, ownerUid, claimUser, ident } = text.data;
  const body = AssignmentPutSchema.safeParse({
    scope: ownerUid === undefined ? { gateway, claimUser } : { gateway, ownerUid },
    ident,
  });
  if (body.success) return body.data;
  return issuesOf(body.error).map((issue) => ({ ...issue, path: issue.path.replace(/^scope\./, '') }));
}

interface AssignState {
  notice?: string | undefined;
  /** The add form as sent, with what was wrong with it. */
  form?: Record<string, string>;
  issues?: readonly Issue[];
  refusal?: Refusal | undefined;
}

function AssignmentsTable(props: { assignments: readonly Assignment[]; csrf: string }) {
  return (
    <table id="assignments">
      <caption>{count(props.assignments.length, 'assignment', 'assignments')} on this page, by ident</caption>
      <thead>
        <tr>
          <th scope="col">Ident</th>
          <th scope="col">Gateway</th>
          <th scope="col">Assigned to</th>
          <th scope="col">Since (UTC)</th>
          <th scope="col">Remove</th>
        </tr>
      </thead>
      <tbody>
        {props.assignments.map((a) => (
          <tr>
            <td>
              <code>{a.ident}</code>
            </td>
            <td>{a.scope.gateway}</td>
            <td>{scopeText(a.scope)}</td>
            <td>
              <Time at={a.createdAt} />
            </td>
            <td>
              <form method="post" action="/admin/assignments/remove" class="inline">
                <input type="hidden" name="csrf" value={props.csrf} />
                <input type="hidden" name="ident" value={a.ident} />
                <button type="submit" aria-label={`Remove ${a.ident} (${describeScope(a.scope)})`}>
                  Remove
                </button>
              </form>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

async function assignmentsPage(
  c: Context,
  service: Service,
  session: Session,
  state: AssignState,
  status: ContentfulStatusCode,
) {
  const given = filled(c.req.query(), [...FIND_FIELDS.map(([name]) => name), 'cursor']);
  const { cursor, ...filters } = given;
  const parsed = AssignmentQuerySchema.safeParse(given);
  const findIssues = parsed.success ? [] : issuesOf(parsed.error);
  const listing = parsed.success
    ? await attempt(() => {
        const { limit, ...filter } = parsed.data;
        return listAssignments(service, { ...filter, limit: limit ?? DEFAULT_PAGE });
      })
    : undefined;
  // The add form's own errors are shown in it; a removal's above everything.
  const inForm = state.form !== undefined;
  const form = state.form ?? {};
  const issues = state.issues ?? [];
  const taken = state.refusal?.code === 'ident_taken';
  const finalStatus = status !== 200 ? status : findIssues.length > 0 ? 400 : 200;
  return page(
    c,
    <Layout title="Assignments" page="assignments" session={session}>
      <p>
        Idents the admin assigns, unique across the fleet; a rule with the <code>assigned</code> action answers them
        (docs/audit.md).
      </p>
      {!inForm && issues.length > 0 && <Errors heading="Nothing was removed" issues={issues} />}
      {!inForm && state.refusal && <Unavailable message={state.refusal.message} />}
      {state.notice && (
        <p class="notice" role="status">
          {state.notice}
        </p>
      )}
      <form method="post" action="/admin/assignments" id="assign">
        <input type="hidden" name="csrf" value={session.csrf} />
        <fieldset>
          <legend>Assign an ident (to an owner uid or to a claim user, on one gateway)</legend>
          {inForm && issues.length > 0 && (
            <Errors heading="The assignment is not valid; nothing was changed" issues={issues} />
          )}
          {inForm && state.refusal && <Unavailable message={state.refusal.message} />}
          <FieldGrid
            prefix="assign"
            fields={ASSIGN_FIELDS}
            values={form}
            errorOf={(name) => (name === 'ident' && taken ? state.refusal!.message : errorAt(issues, name))}
          />
          <button type="submit">Assign</button>
        </fieldset>
      </form>
      <section aria-labelledby="list-heading">
        <h2 id="list-heading">Assigned idents</h2>
        <form method="get" action="/admin/assignments" role="search" aria-label="Assignments" id="find">
          <fieldset>
            <legend>Find assignments</legend>
            <FieldGrid
              prefix="find"
              fields={FIND_FIELDS}
              values={filters}
              errorOf={(name) => errorAt(findIssues, name)}
            />
            <button type="submit">Find</button>
          </fieldset>
        </form>
        {findIssues.length > 0 && <Errors heading="The search is not valid" issues={findIssues} />}
        {listing && 'refusal' in listing && <Unavailable message={listing.refusal.message} />}
        {listing &&
          'value' in listing &&
          (listing.value.assignments.length === 0 ? (
            <p>No ident is assigned{Object.keys(filters).length > 0 ? ' that matches' : ''}.</p>
          ) : (
            <AssignmentsTable assignments={listing.value.assignments} csrf={session.csrf} />
          ))}
        {listing && 'value' in listing && (
          <Pager path="/admin/assignments" filters={filters} next={listing.value.next} paged={cursor !== undefined} />
        )}
      </section>
    </Layout>,
    finalStatus,
  );
}

// ---- Gateways and the overview's figures --------------------------------------------------------------------------

function GatewaysTable(props: { gateways: readonly GatewaySeen[]; caption: string; full: boolean }) {
  return (
    <div class="wide">
      <table id="gateways">
        <caption>{props.caption}</caption>
        <thead>
          <tr>
            <th scope="col">Gateway</th>
            {props.full && <th scope="col">Signing key</th>}
            {props.full && <th scope="col">identgate version</th>}
            {props.full && <th scope="col">First seen (UTC)</th>}
            <th scope="col">Last seen (UTC)</th>
            <th scope="col">Queries</th>
          </tr>
        </thead>
        <tbody>
          {props.gateways.map((g) => (
            <tr>
              <td>{g.name}</td>
              {props.full && <td>{g.signingKey ?? 'unsigned (embedded)'}</td>}
              {props.full && <td>{g.version ?? 'not said'}</td>}
              {props.full && (
                <td>
                  <Time at={g.firstSeen} />
                </td>
              )}
              <td>
                <Time at={g.lastSeen} />
              </td>
              <td>{g.queries}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** What the overview shows from the audit database: the fleet and the last hour's answers by rule, or why not. */
export type OverviewFigures =
  | { readonly refusal: Refusal }
  | { readonly gateways: readonly GatewaySeen[]; readonly rules: readonly RuleAnswers[]; readonly from: number };

export async function overviewFigures(service: Service): Promise<OverviewFigures> {
  const to = service.now();
  const from = to - HOUR_MS;
  const outcome = await attempt(async () => {
    const audit = auditOf(service);
    const [gateways, rules] = await Promise.all([
      listGateways(service),
      fromDatabase(service, () => audit.store.answersByRule({ from, to: to + 1 })),
    ]);
    return { gateways, rules, from };
  });
  return 'refusal' in outcome ? outcome : outcome.value;
}

export function OverviewSections(props: { figures: OverviewFigures }) {
  const { figures } = props;
  if ('refusal' in figures) {
    const message =
      figures.refusal.code === 'not_configured'
        ? `Gateways seen and answers by rule are not shown: ${figures.refusal.message}.`
        : figures.refusal.message;
    return (
      <section aria-labelledby="fleet-heading">
        <h2 id="fleet-heading">Gateways and answers</h2>
        <Unavailable message={message} />
      </section>
    );
  }
  const recent = [...figures.gateways].sort((a, b) => b.lastSeen.localeCompare(a.lastSeen)).slice(0, OVERVIEW_GATEWAYS);
  const total = figures.rules.reduce((sum, r) => sum + r.answers, 0);
  return (
    <>
      <section aria-labelledby="fleet-heading">
        <h2 id="fleet-heading">Gateways seen</h2>
        {figures.gateways.length === 0 ? (
          <p>No gateway has asked yet.</p>
        ) : (
          <GatewaysTable
            gateways={recent}
            full={false}
            caption={`${recent.length} of ${count(figures.gateways.length, 'gateway', 'gateways')}, the most recently seen first`}
          />
        )}
        <p>
          <a href="/admin/gateways">All gateways, with their keys and versions</a>
        </p>
      </section>
      <section aria-labelledby="rules-heading">
        <h2 id="rules-heading">Answers by rule in the last hour</h2>
        <p>
          Since <Time at={new Date(figures.from).toISOString()} />: {count(total, 'answer', 'answers')}.
        </p>
        {figures.rules.length > 0 && (
          <table id="rules">
            <caption>Decisions per rule, the most used first</caption>
            <thead>
              <tr>
                <th scope="col">Rule</th>
                <th scope="col">Answers</th>
                <th scope="col">USERID</th>
                <th scope="col">ERROR</th>
              </tr>
            </thead>
            <tbody>
              {figures.rules.map((r) => (
                <tr>
                  <td>{r.rule}</td>
                  <td>{r.answers}</td>
                  <td>{r.userIds}</td>
                  <td>{r.answers - r.userIds}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </>
  );
}

/**
 * Adds /admin/audit, /admin/assignments (and its two forms) and /admin/gateways to the console's routes.
 *
 * @example
 * auditConsoleRoutes(routes, service, guard);
 */
export function auditConsoleRoutes(routes: Hono, service: Service, guard: MiddlewareHandler): void {
  routes.get('/admin/audit', guard, (c) => auditPage(c, service, c.var.session));

  routes.get('/admin/assignments', guard, async (c) => {
    // After a change the notice says what the database holds now, so a crafted link cannot claim a change.
    const ident = c.req.query('added') ?? c.req.query('removed');
    let notice: string | undefined;
    if (ident) {
      const found = await attempt(() => listAssignments(service, { ident, limit: 1 }));
      const now = 'value' in found ? found.value.assignments : undefined;
      if (c.req.query('added') && now?.[0]) notice = `Assigned ${ident} to ${describeScope(now[0].scope)}.`;
      else if (!c.req.query('added') && now?.length === 0) notice = `Removed ${ident}.`;
    }
    return assignmentsPage(c, service, c.var.session, { notice }, 200);
  });

  routes.post('/admin/assignments', guard, async (c) => {
    const form = filled(
      await c.req.parseBody(),
      ASSIGN_FIELDS.map(([name]) => name),
    );
    const parsed = parseAssignForm(form);
    if (Array.isArray(parsed)) return assignmentsPage(c, service, c.var.session, { form, issues: parsed }, 400);
    const outcome = await attempt(() => assignIdent(service, parsed.scope, parsed.ident));
    if ('refusal' in outcome) {
      return assignmentsPage(c, service, c.var.session, { form, refusal: outcome.refusal }, outcome.refusal.status);
    }
    return c.redirect(`/admin/assignments?${new URLSearchParams({ added: parsed.ident })}`, 303);
  });

  routes.post('/admin/assignments/remove', guard, async (c) => {
    const target = AssignmentDeleteSchema.safeParse(filled(await c.req.parseBody(), ['ident']));
    if (!target.success) {
      return assignmentsPage(c, service, c.var.session, { issues: issuesOf(target.error) }, 400);
    }
    const outcome = await attempt(() => unassignIdent(service, target.data));
    if ('refusal' in outcome) {
      return assignmentsPage(c, service, c.var.session, { refusal: outcome.refusal }, outcome.refusal.status);
    }
    return c.redirect(`/admin/assignments?${new URLSearchParams({ removed: outcome.value.ident })}`, 303);
  });

  routes.get('/admin/gateways', guard, async (c) => {
    const outcome = await attempt(() => listGateways(service));
    return page(
      c,
      <Layout title="Gateways" page="gateways" session={c.var.session}>
        <p>Every gateway this worker has recorded decisions for (retention does not lower the query counts).</p>
        {'refusal' in outcome ? (
          <Unavailable message={outcome.refusal.message} />
        ) : outcome.value.length === 0 ? (
          <p>No gateway has asked yet.</p>
        ) : (
          <GatewaysTable
            gateways={outcome.value}
            full
            caption={`${count(outcome.value.length, 'gateway', 'gateways')}, by name`}
          />
        )}
      </Layout>,
      'refusal' in outcome ? outcome.refusal.status : 200,
    );
  });
}
