/**
 * The operator's console at /admin (docs/console.md): sign-in with an admin token, the overview, policy and explain
 * pages; audit.tsx adds the audit, assignments and gateways pages. Strict CSP, CSRF-checked forms, no script.
 */
import { Hono, type Context } from 'hono';
import { csrf } from 'hono/csrf';
import { secureHeaders } from 'hono/secure-headers';
import { LookupRequestSchema, WIRE_VERSION } from '../../protocol/wire.js';
import { issuesOf } from '../../protocol/issues.js';
import { explain, PolicyError, redactPolicy, type PolicyIssue } from '../policy/index.js';
import { parseReplacement } from '../routes/policy.js';
import type { Service } from '../service.js';
import { lineDiff } from './diff.js';
import { auditConsoleRoutes, overviewFigures, OverviewSections } from './audit.js';
import {
  ExplainPage,
  Diff,
  Errors,
  formValue,
  Layout,
  page,
  PolicyEditor,
  SignIn,
  STYLE,
  type ExplainForm,
} from './pages.js';
import {
  clientAddress,
  CONSOLE_DEFAULTS,
  createThrottle,
  endSession,
  readSession,
  startSession,
  tokenMatches,
  type Session,
} from './session.js';

declare module 'hono' {
  interface ContextVariableMap {
    /** Set by the console's guard on its signed-in routes. */
    session: Session;
  }
}

const policyText = (policy: unknown) => JSON.stringify(policy, null, 2);

function issuesOfError(error: unknown): readonly PolicyIssue[] {
  if (error instanceof PolicyError) return error.issues;
  if (error instanceof SyntaxError) return [{ path: '(document)', message: `not JSON: ${error.message}` }];
  throw error;
}

export function consoleRoutes(service: Service): Hono {
  const routes = new Hono();
  const throttle = createThrottle();
  // When each policy version was first seen by this process (or isolate).
  const versionSeenAt = new Map<string, number>();
  const seen = (version: string) => {
    if (!versionSeenAt.has(version)) versionSeenAt.set(version, service.now());
    return versionSeenAt.get(version)!;
  };

  routes.use(
    '/admin/*',
    secureHeaders({
      contentSecurityPolicy: {
        defaultSrc: ["'none'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
      },
      referrerPolicy: 'no-referrer',
    }),
  );
  // A cross-site form post is refused by its Origin; the session's own token is checked as well (below).
  routes.use('/admin/*', csrf());
  routes.get('/admin/console.css', (c) => c.body(STYLE, 200, { 'content-type': 'text/css; charset=utf-8' }));

  const signedIn = async (c: Context) => readSession(c, service.adminTokens(), service.now());
  const guard = async (c: Context, next: () => Promise<void>) => {
    const session = await signedIn(c);
    if (!session) return c.redirect('/admin', 303);
    if (c.req.method === 'POST') {
      const form = await c.req.parseBody();
      if (form.csrf !== session.csrf) return page(c, <SignIn message="This form has expired; sign in again." />, 403);
    }
    c.set('session', session);
    await next();
  };

  routes.get('/admin', async (c) => {
    if (service.adminTokens().length === 0) {
      return page(c, <SignIn message="No admin token is configured on this worker: the console is off." />, 503);
    }
    const session = await signedIn(c);
    if (!session) return page(c, <SignIn />);
    const [snapshot, figures] = await Promise.all([service.current(), overviewFigures(service)]);
    return page(
      c,
      <Layout title="Overview" page="overview" session={session}>
        <dl>
          <dt>Policy version</dt>
          <dd>
            <code>{snapshot.version}</code>, in use here since {new Date(seen(snapshot.version)).toISOString()}
          </dd>
          <dt>Rules</dt>
          <dd>{snapshot.policy.rules.length}</dd>
          <dt>Session</dt>
          <dd>signed in until {new Date(session.expiresMs).toISOString()}</dd>
        </dl>
        <OverviewSections figures={figures} />
      </Layout>,
    );
  });

  routes.post('/admin/sign-in', async (c) => {
    const client = clientAddress(c);
    const now = service.now();
    const tokens = service.adminTokens();
    if (tokens.length === 0) return c.redirect('/admin', 303);
    const wait = throttle.waitMs(client, now);
    if (wait > 0) {
      const message = `Too many wrong tokens: try again in ${Math.ceil(wait / 1000)} s.`;
      return page(c, <SignIn message={message} />, 429, { 'Retry-After': String(Math.ceil(wait / 1000)) });
    }
    const form = await c.req.parseBody();
    const token = formValue(form, 'token');
    if (!(await tokenMatches(tokens, token))) {
      throttle.fail(client, now);
      service.log({ msg: 'rejected', path: c.req.path, code: 'console_sign_in' });
      return page(c, <SignIn message="That is not an admin token of this worker." />, 401);
    }
    throttle.succeed(client);
    await startSession(c, tokens, now, CONSOLE_DEFAULTS.sessionTtlMs);
    return c.redirect('/admin', 303);
  });

  routes.post('/admin/sign-out', guard, (c) => {
    endSession(c);
    return c.redirect('/admin', 303);
  });

  routes.get('/admin/policy', guard, async (c) => {
    const snapshot = await service.current();
    const saved = c.req.query('saved');
    return page(
      c,
      <Layout title="Policy" page="policy" session={c.var.session}>
        {saved && (
          <p class="notice" role="status">
            Saved: version <code>{saved}</code>.
          </p>
        )}
        <p>
          Current version <code>{snapshot.version}</code>; the format is in docs/policy.md.
        </p>
        <PolicyEditor
          session={c.var.session}
          csrf={c.var.session.csrf}
          version={snapshot.version}
          text={policyText(redactPolicy(snapshot.policy))}
        />
      </Layout>,
    );
  });

  routes.post('/admin/policy', guard, async (c) => {
    const form = await c.req.parseBody();
    const text = formValue(form, 'policy');
    const snapshot = await service.current();
    const current = policyText(redactPolicy(snapshot.policy));
    let issues: readonly PolicyIssue[] | undefined;
    let policy;
    let document: unknown;
    try {
      document = JSON.parse(text);
      policy = await parseReplacement(service, document);
    } catch (error) {
      issues = issuesOfError(error);
    }
    if (policy && formValue(form, 'intent') === 'save') {
      const { version } = await service.store.replace(policy, document);
      service.log({ msg: 'policy_replaced', version, via: 'console' });
      return c.redirect(`/admin/policy?saved=${version}`, 303);
    }
    const session = c.var.session;
    return page(
      c,
      <Layout title="Policy" page="policy" session={session}>
        {issues ? (
          <Errors heading="The policy is not valid; nothing was saved" issues={issues} />
        ) : (
          <p class="notice" role="status">
            The policy is valid. Review the changes, then save.
          </p>
        )}
        {policy && <Diff lines={lineDiff(current, policyText(redactPolicy(policy)))} />}
        <PolicyEditor session={session} csrf={session.csrf} version={snapshot.version} text={text} />
      </Layout>,
      issues ? 400 : 200,
    );
  });

  routes.get('/admin/explain', guard, async (c) => {
    const q = (name: keyof ExplainForm, fallback = '') => c.req.query(name) ?? fallback;
    const form: ExplainForm = {
      gateway: q('gateway', 'default'),
      serverPort: q('serverPort', '6667'),
      clientPort: q('clientPort', '40000'),
      localAddress: q('localAddress', '127.0.0.1'),
      localPort: q('localPort', '113'),
      remoteAddress: q('remoteAddress', '127.0.0.1'),
      remotePort: q('remotePort', '40001'),
      ownerUid: q('ownerUid'),
      ownerName: q('ownerName'),
      claimUser: q('claimUser'),
      claimIdent: q('claimIdent'),
    };
    let result;
    let issues: readonly PolicyIssue[] | undefined;
    if (c.req.query('run')) {
      const number = (text: string) => (/^\d+$/.test(text) ? Number(text) : text);
      const parsed = LookupRequestSchema.safeParse({
        v: WIRE_VERSION,
        id: 'console-explain',
        gateway: form.gateway,
        query: { serverPort: number(form.serverPort), clientPort: number(form.clientPort) },
        connection: {
          localAddress: form.localAddress,
          localPort: number(form.localPort),
          remoteAddress: form.remoteAddress,
          remotePort: number(form.remotePort),
        },
        owner: form.ownerUid === '' ? null : { uid: number(form.ownerUid), userName: form.ownerName || null },
        claim:
          form.claimUser === ''
            ? null
            : { user: form.claimUser, ...(form.claimIdent !== '' && { ident: form.claimIdent }) },
      });
      if (parsed.success) {
        const snapshot = await service.current();
        result = { ...explain(snapshot.compiled, parsed.data), version: snapshot.version };
      } else issues = issuesOf(parsed.error);
    }
    return page(
      c,
      <Layout title="Explain a query" page="explain" session={c.var.session}>
        <ExplainPage session={c.var.session} form={form} issues={issues} result={result} />
      </Layout>,
      issues ? 400 : 200,
    );
  });

  auditConsoleRoutes(routes, service, guard);
  return routes;
}
