/** The console's pages, server-rendered with hono/jsx: plain HTML forms, no script, escaped by JSX. */
import type { Context } from 'hono';
import type { Child } from 'hono/jsx';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { IdentAnswer } from '../../protocol/reply.js';
import type { Explanation, PolicyIssue } from '../policy/index.js';
import type { DiffLine } from './diff.js';
import type { Session } from './session.js';

export const STYLE = `
:root { font-family: system-ui, sans-serif; line-height: 1.45; color: #111; background: #fff; }
body { margin: 0 auto; max-width: 64rem; padding: 0 1rem 3rem; }
header { display: flex; flex-wrap: wrap; align-items: center; gap: 1rem; border-bottom: 2px solid #111; padding: .75rem 0; }
header strong { font-size: 1.2rem; margin-right: auto; }
nav a { margin-right: .9rem; }
a { color: #0645ad; }
a:focus, button:focus, input:focus, textarea:focus, select:focus { outline: 3px solid #f5a700; outline-offset: 2px; }
[aria-current="page"] { font-weight: bold; text-decoration: underline; }
label { display: block; font-weight: 600; margin-top: .6rem; }
input, select { font: inherit; padding: .3rem; min-width: 16rem; }
textarea { font-family: ui-monospace, monospace; font-size: .9rem; width: 100%; min-height: 24rem; }
button { font: inherit; padding: .35rem 1rem; margin: .8rem .5rem 0 0; border: 2px solid #111; background: #eee; cursor: pointer; }
table { border-collapse: collapse; margin: .8rem 0; width: 100%; }
th, td { border: 1px solid #999; padding: .3rem .5rem; text-align: left; vertical-align: top; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(17rem, 1fr)); gap: 0 1rem; }
.errors { border: 3px solid #b00020; padding: .5rem 1rem; }
.notice { border: 3px solid #006b2d; padding: .5rem 1rem; }
.diff { font-family: ui-monospace, monospace; font-size: .85rem; white-space: pre-wrap; border: 1px solid #999; padding: .5rem; }
.added { background: #e6ffed; } .removed { background: #ffeef0; text-decoration: line-through; }
.inline { display: inline; }
.wide { overflow-x: auto; }
.wide table { font-size: .9rem; }
fieldset { border: 1px solid #999; margin: .8rem 0; padding: .2rem 1rem .8rem; }
legend { font-weight: 700; padding: 0 .3rem; }
.field-error { display: block; color: #b00020; font-weight: 600; }
[aria-invalid="true"] { border: 3px solid #b00020; }
.pages a { margin-right: 1.2rem; }
`;

export type PageName = 'overview' | 'policy' | 'explain' | 'audit' | 'assignments' | 'gateways';

const NAV: readonly [PageName, string, string][] = [
  ['overview', 'Overview', '/admin'],
  ['policy', 'Policy', '/admin/policy'],
  ['explain', 'Explain', '/admin/explain'],
  ['audit', 'Audit', '/admin/audit'],
  ['assignments', 'Assignments', '/admin/assignments'],
  ['gateways', 'Gateways', '/admin/gateways'],
];

/** A page with its doctype (JSX renders elements only). */
export function page(
  c: Context,
  element: unknown,
  status: ContentfulStatusCode = 200,
  headers?: Record<string, string>,
) {
  return c.html(`<!doctype html>${String(element)}`, status, headers);
}

/** A form field's text ('' when absent or a file). */
export function formValue(form: Record<string, unknown>, name: string): string {
  const value = form[name];
  return typeof value === 'string' ? value : '';
}

/** An answer as the ident reply writes it (RFC 1413 section 6). */
export function answerText(answer: IdentAnswer): string {
  return answer.type === 'USERID' ? `USERID : ${answer.opsys} : ${answer.userId}` : `ERROR : ${answer.error}`;
}

/**
 * A labelled text input; an error is named under it (text, not colour alone) and tied to it for screen readers.
 *
 * @example
 * <Field id="audit-serverPort" name="serverPort" label="Server port" value="abc" error="must be a port number" />
 */
export function Field(props: {
  id: string;
  name: string;
  label: string;
  value: string;
  error?: string | undefined;
  placeholder?: string | undefined;
  inputmode?: 'numeric' | undefined;
}) {
  const errorId = `${props.id}-error`;
  return (
    <div>
      <label for={props.id}>{props.label}</label>
      <input
        id={props.id}
        name={props.name}
        value={props.value}
        placeholder={props.placeholder}
        inputmode={props.inputmode}
        aria-invalid={props.error ? 'true' : undefined}
        aria-describedby={props.error ? errorId : undefined}
      />
      {props.error && (
        <span class="field-error" id={errorId}>
          Error: {props.error}
        </span>
      )}
    </div>
  );
}

/** A message in place of a page's content: no audit database, or it failed. */
export function Unavailable(props: { message: string }) {
  return (
    <p class="errors" role="alert">
      {props.message}
    </p>
  );
}

export function Layout(props: { title: string; page?: PageName; session?: Session; children?: Child }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${props.title} — identgate console`}</title>
        <link rel="stylesheet" href="/admin/console.css" />
      </head>
      <body>
        <header>
          <strong>identgate console</strong>
          {props.session && (
            <>
              <nav aria-label="Console pages">
                {NAV.map(([name, label, href]) => (
                  <a href={href} aria-current={props.page === name ? 'page' : undefined}>
                    {label}
                  </a>
                ))}
              </nav>
              <form method="post" action="/admin/sign-out" class="inline">
                <input type="hidden" name="csrf" value={props.session.csrf} />
                <button type="submit">Sign out</button>
              </form>
            </>
          )}
        </header>
        <main>
          <h1>{props.title}</h1>
          {props.children}
        </main>
      </body>
    </html>
  );
}

export function SignIn(props: { message?: string }) {
  return (
    <Layout title="Sign in">
      {props.message && (
        <p class="errors" role="alert">
          {props.message}
        </p>
      )}
      <form method="post" action="/admin/sign-in">
        <label for="token">Admin token</label>
        <input id="token" name="token" type="password" autocomplete="current-password" required autofocus />
        <button type="submit">Sign in</button>
      </form>
    </Layout>
  );
}

export function Errors(props: { heading: string; issues: readonly PolicyIssue[] }) {
  return (
    <div class="errors" role="alert" id="errors">
      <h2>{props.heading}</h2>
      <ul>
        {props.issues.map((issue) => (
          <li>
            <code>{issue.path}</code>: {issue.message}
          </li>
        ))}
      </ul>
    </div>
  );
}

export function Diff(props: { lines: readonly DiffLine[] }) {
  const changed = props.lines.filter((line) => line.kind !== 'same').length;
  return (
    <section aria-labelledby="diff-heading">
      <h2 id="diff-heading">Changes against the current policy ({changed} lines)</h2>
      <div class="diff">
        {props.lines.map((line) => (
          <div class={line.kind}>
            {line.kind === 'added' ? '+ ' : line.kind === 'removed' ? '- ' : '  '}
            {line.text}
          </div>
        ))}
      </div>
    </section>
  );
}

export function PolicyEditor(props: { session: Session; text: string; version: string; csrf: string }) {
  return (
    <form method="post" action="/admin/policy">
      <input type="hidden" name="csrf" value={props.csrf} />
      <input type="hidden" name="base" value={props.version} />
      <label for="policy">Policy (JSON; the pseudonym key shows as "[redacted]" and is kept when saved so)</label>
      <textarea id="policy" name="policy" spellcheck={false}>
        {props.text}
      </textarea>
      <button type="submit" name="intent" value="preview">
        Check and show changes
      </button>
      <button type="submit" name="intent" value="save">
        Save
      </button>
    </form>
  );
}

export interface ExplainForm {
  gateway: string;
  serverPort: string;
  clientPort: string;
  localAddress: string;
  localPort: string;
  remoteAddress: string;
  remotePort: string;
  ownerUid: string;
  ownerName: string;
  claimUser: string;
  claimIdent: string;
}

const EXPLAIN_FIELDS: readonly [keyof ExplainForm, string][] = [
  ['gateway', 'Gateway name'],
  ['serverPort', 'Server port (on this host)'],
  ['clientPort', 'Client port (on the querier)'],
  ['localAddress', 'Local address (the gateway)'],
  ['localPort', 'Local port of the ident connection'],
  ['remoteAddress', 'Remote address (the querier)'],
  ['remotePort', 'Remote port of the ident connection'],
  ['ownerUid', 'Owner uid (empty: owner not found)'],
  ['ownerName', 'Owner user name'],
  ['claimUser', 'Claim: user (empty: no claim)'],
  ['claimIdent', 'Claim: ident asked for'],
];

export function ExplainPage(props: {
  session: Session;
  form: ExplainForm;
  issues?: readonly PolicyIssue[];
  result?: Explanation & { version: string };
}) {
  const { result } = props;
  return (
    <>
      <form method="get" action="/admin/explain">
        <div class="grid">
          {EXPLAIN_FIELDS.map(([name, label]) => (
            <div>
              <label for={name}>{label}</label>
              <input id={name} name={name} value={props.form[name]} />
            </div>
          ))}
        </div>
        <button type="submit" name="run" value="1">
          Explain
        </button>
      </form>
      {props.issues && <Errors heading="The query is not valid" issues={props.issues} />}
      {result && (
        <section aria-labelledby="result-heading" id="result">
          <h2 id="result-heading">
            Answered by rule <code>{result.rule}</code>
          </h2>
          <p>
            Answer: <code>{answerText(result.answer)}</code>
            {result.delegate && ` (delegated to the gateway: ${result.delegate.kind})`} — policy version{' '}
            <code>{result.version}</code>
          </p>
          <h3>Earlier rules and the condition that ruled each out</h3>
          {result.skipped.length === 0 ? (
            <p>None: the first rule answered.</p>
          ) : (
            <table>
              <thead>
                <tr>
                  <th scope="col">#</th>
                  <th scope="col">Rule</th>
                  <th scope="col">Condition not met</th>
                </tr>
              </thead>
              <tbody>
                {result.skipped.map((skip) => (
                  <tr>
                    <td>{skip.ruleIndex}</td>
                    <td>{skip.rule}</td>
                    <td>
                      <code>{skip.failed}</code>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {result.skippedCount > result.skipped.length && (
            <p>… and {result.skippedCount - result.skipped.length} more rules.</p>
          )}
        </section>
      )}
    </>
  );
}
