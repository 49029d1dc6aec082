/**
 * `identgate audit search`: the audit trail's records matching some filters, newest first, as a
 * table or JSON — from a policy worker's GET /v1/audit (admin token) or straight from a SQLite audit
 * file. The filters go through the same schema the worker parses them with (protocol/audit.ts).
 *
 * @example
 * identgate audit search --worker http://127.0.0.1:8787 --admin-token-file admin.txt --user-id u7algntdlwuka --from 2026-12-04T12:00:00Z
 */
import { existsSync } from 'node:fs';
import { AuditPageSchema, AuditQuerySchema, type AuditPage } from '../../protocol/audit.js';
import { describeIssues } from '../../protocol/issues.js';
import { ConfigError } from '../../protocol/errors.js';
import { ROUTES, WireErrorSchema } from '../../protocol/wire.js';
import { readSecretFile } from './config.js';
import { AUDIT_SEARCH_FLAGS, flagsHelp, parseFlags } from './flags.js';

export const AUDIT_USAGE = `identgate audit search (--worker URL --admin-token-file FILE | --audit FILE) [filters] [options]

Prints the decisions of the audit trail that match every filter given, newest
first, one page at a time (docs/audit.md has worked examples).

${flagsHelp(AUDIT_SEARCH_FLAGS)}
Exit status: 0 with records or none, 2 usage error or the worker/file failed.
`;

/** An operational failure (the worker answered an error, the file is unreadable): one line, exit 2. */
class AuditSearchError extends ConfigError {}

const FILTERS = {
  'user-id': 'userId',
  'remote-address': 'remoteAddress',
  'server-port': 'serverPort',
  'client-port': 'clientPort',
  gateway: 'gateway',
  'owner-uid': 'ownerUid',
  'claim-user': 'claimUser',
  from: 'from',
  to: 'to',
  limit: 'limit',
  cursor: 'cursor',
} as const;

function table(page: AuditPage): string {
  const header = ['TIME', 'GATEWAY', 'QUERIER', 'PORTS', 'OWNER', 'CLAIM', 'ANSWER', 'RULE'];
  const rows = page.records.map((r) => [
    r.at,
    r.gateway,
    r.connection.remoteAddress,
    `${r.query.serverPort},${r.query.clientPort}`,
    r.owner ? `${r.owner.uid}${r.owner.userName === null ? '' : ` (${r.owner.userName})`}` : '-',
    r.claim ? `${r.claim.user}${r.claim.ident === undefined ? '' : ` as ${r.claim.ident}`}` : '-',
    r.answer.type === 'USERID' ? `USERID ${r.answer.userId}` : `ERROR ${r.answer.error}`,
    r.rule,
  ]);
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => cell.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

async function fromWorker(url: URL, token: string, query: Record<string, string>): Promise<AuditPage> {
  const target = new URL(url.pathname.replace(/\/$/, '') + ROUTES.audit, url);
  target.search = new URLSearchParams(query).toString();
  let response: Response;
  try {
    response = await fetch(target, { headers: { authorization: `Bearer ${token}`, accept: 'application/json' } });
  } catch (error) {
    throw new AuditSearchError(`${target.origin}: ${(error as Error).message}`);
  }
  const body: unknown = await response.json().catch(() => undefined);
  if (!response.ok) {
    const wire = WireErrorSchema.safeParse(body);
    const reason = wire.success ? `${wire.data.error.code}: ${wire.data.error.message}` : `HTTP ${response.status}`;
    throw new AuditSearchError(`${target.origin} answered ${response.status} ${reason}`);
  }
  const page = AuditPageSchema.safeParse(body);
  if (!page.success) throw new AuditSearchError(`${target.origin}: not an audit page: ${describeIssues(page.error)}`);
  return page.data;
}

async function fromFile(path: string, query: Record<string, string>): Promise<AuditPage> {
  if (!existsSync(path)) throw new AuditSearchError(`--audit ${path}: no such file`);
  const { limit, ...filter } = AuditQuerySchema.parse(query);
  const { openSqliteDatabase } = await import('../../worker/stores/sqlite.js');
  const { createAuditStore } = await import('../../worker/stores/audit.js');
  const db = await openSqliteDatabase(path);
  try {
    return await createAuditStore(db).search({ ...filter, limit: limit ?? 100 });
  } finally {
    await db.close();
  }
}

/** Runs `identgate audit ARGS`; resolves the exit status. */
export async function audit(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(AUDIT_USAGE);
    return sub === undefined ? 2 : 0;
  }
  if (sub !== 'search')
    throw new ConfigError(`identgate audit ${JSON.stringify(sub)}: expected search (see identgate audit --help)`);
  const { values, help } = parseFlags(AUDIT_SEARCH_FLAGS, rest);
  if (help) {
    process.stdout.write(AUDIT_USAGE);
    return 0;
  }
  if ((values.worker === undefined) === (values.audit === undefined))
    throw new ConfigError(
      'identgate audit search needs exactly one of --worker URL (with --admin-token-file) or --audit FILE',
    );
  if (values.worker !== undefined && values['admin-token-file'] === undefined)
    throw new ConfigError('--worker needs --admin-token-file FILE (tokens are never taken from the command line)');
  const query: Record<string, string> = {};
  for (const [flag, name] of Object.entries(FILTERS)) {
    const value = values[flag as keyof typeof FILTERS];
    if (value !== undefined) query[name] = value;
  }
  const checked = AuditQuerySchema.safeParse(query);
  if (!checked.success) {
    const flagOf = (name: string) => Object.entries(FILTERS).find(([, n]) => n === name)?.[0] ?? name;
    throw new ConfigError(describeIssues(checked.error).replace(/^(\w+)/, (name) => `--${flagOf(name)}`));
  }
  const page =
    values.worker !== undefined
      ? await fromWorker(values.worker, readSecretFile(values['admin-token-file']!, '--admin-token-file')[0]!, query)
      : await fromFile(values.audit!, query);
  if (values.json) process.stdout.write(`${JSON.stringify(page)}\n`);
  else {
    process.stdout.write(page.records.length === 0 ? 'no records match\n' : table(page));
    if (page.next !== null) process.stdout.write(`more: add --cursor ${page.next}\n`);
  }
  return 0;
}
