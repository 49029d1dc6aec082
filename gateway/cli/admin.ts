/**
 * `identgate policy check|get|put` and `identgate explain`: the policy worker's admin API from the shell
 * (docs/wire.md), and the same checks and decisions offline against a policy file, with the worker's own code.
 *
 * @example
 * identgate policy check /etc/identgate/policy.json
 * identgate policy put policy.json --worker http://127.0.0.1:8787 --admin-token-file admin-token.txt
 * identgate explain 6667,40000 --policy policy.json --client-address 192.0.2.7 --owner-uid 1000 --owner-name alice
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../../protocol/errors.js';
import { MIN_KEY_CHARS, type Policy } from '../../worker/policy/schema.js';
import { ROUTES, WIRE_VERSION, WireErrorSchema } from '../../protocol/wire.js';
import { readSecretFile } from './config.js';
import { EXPLAIN_FLAGS, flagsHelp, parseFlags, POLICY_FLAGS } from './flags.js';

export const POLICY_USAGE = `identgate policy check FILE
identgate policy get --worker URL --admin-token-file FILE
identgate policy put FILE --worker URL --admin-token-file FILE

check: validates a policy file (docs/policy.md) offline, with the worker's own
  parser: exit 0, or exit 1 printing every field error as PUT /v1/policy would.
get:   prints the worker's policy as GET /v1/policy answers it ({ v, version,
  policy }, the key redacted); put sends such a document back unchanged.
put:   checks FILE, then replaces the worker's policy with it (PUT /v1/policy).

${flagsHelp(POLICY_FLAGS)}
Exit status: 0 done, 1 the policy is invalid or the worker refused it, 2 usage error or the worker failed.
`;

export const EXPLAIN_USAGE = `identgate explain SERVERPORT,CLIENTPORT (--worker URL --admin-token-file FILE | --policy FILE) [options]

Says which rule answers an ident query and why each earlier rule did not:
asked of a worker (POST /v1/explain) or decided here from a policy file. A
field not given is assumed as the worker assumes it (a query from 127.0.0.1 on
port 113, by gateway "explain", about a connection whose owner is unknown) and
listed under "assumed".

${flagsHelp(EXPLAIN_FLAGS)}
Exit status: 0 explained, 1 the policy file is invalid, 2 usage error or the worker failed.
`;

/** The worker answered, but not with success: exit 1 for a refusal of the request, 2 otherwise. */
class WorkerRefused extends ConfigError {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

interface Worker {
  url: URL;
  token: string;
}

function workerOf(values: { worker?: URL | undefined; 'admin-token-file'?: string | undefined }): Worker {
  if (values.worker === undefined) throw new ConfigError('--worker URL is needed (with --admin-token-file FILE)');
  if (values['admin-token-file'] === undefined)
    throw new ConfigError('--worker needs --admin-token-file FILE (tokens are never taken from the command line)');
  return { url: values.worker, token: readSecretFile(values['admin-token-file'], '--admin-token-file')[0]! };
}

/** One admin request; resolves the JSON of a 2xx answer, throws WorkerRefused naming the worker's error. */
async function ask(worker: Worker, route: string, init: { method: string; body?: string }): Promise<unknown> {
  const target = new URL(worker.url.pathname.replace(/\/$/, '') + route, worker.url);
  let response: Response;
  try {
    response = await fetch(target, {
      method: init.method,
      headers: {
        authorization: `Bearer ${worker.token}`,
        accept: 'application/json',
        ...(init.body !== undefined && { 'content-type': 'application/json' }),
      },
      ...(init.body !== undefined && { body: init.body }),
    });
  } catch (error) {
    throw new ConfigError(`${target.origin}: ${(error as Error).message}`);
  }
  const body: unknown = await response.json().catch(() => undefined);
  if (response.ok) return body;
  const wire = WireErrorSchema.safeParse(body);
  const reason = wire.success ? `${wire.data.error.code}: ${wire.data.error.message}` : `HTTP ${response.status}`;
  throw new WorkerRefused(`${target.origin} answered ${response.status} ${reason}`, response.status);
}

function readDocument(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`${path}: cannot read it (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * A policy document parsed as PUT /v1/policy parses it, or its errors as PUT reports them (PUT's message is
 * these joined by "; "). A GET envelope ({ v, version, policy }) is read as its policy, and a "[redacted]" key
 * as some key (GET shows the key so; PUT keeps the worker's).
 */
async function readPolicy(text: string): Promise<{ policy: Policy; issues?: undefined } | { issues: string[] }> {
  const { parsePolicy, PolicyError } = await import('../../worker/policy/index.js');
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {
    // parsePolicy reports the text as not JSON.
  }
  if (isObject(json) && json.v === WIRE_VERSION && isObject(json.policy)) json = json.policy;
  if (isObject(json) && json.key === '[redacted]') json = { ...json, key: 'k'.repeat(MIN_KEY_CHARS) };
  try {
    return { policy: parsePolicy(json) };
  } catch (error) {
    if (!(error instanceof PolicyError)) throw error;
    return { issues: error.issues.map((issue) => `${issue.path}: ${issue.message}`) };
  }
}

/** Prints a document's policy errors, one line each; whether there were any. */
function reportIssues(file: string, read: { issues?: string[] | undefined }): boolean {
  for (const issue of read.issues ?? []) process.stderr.write(`identgate: ${file}: ${issue}\n`);
  return read.issues !== undefined;
}

function refusal(error: unknown): number {
  if (!(error instanceof WorkerRefused)) throw error;
  process.stderr.write(`identgate: ${error.message}\n`);
  return error.status >= 400 && error.status < 500 && error.status !== 401 ? 1 : 2;
}

/** Runs `identgate policy ARGS`; resolves the exit status. */
export async function policy(argv: string[]): Promise<number> {
  const { values, help, positionals } = parseFlags(POLICY_FLAGS, argv, true, 'policy');
  const [action, file, ...extra] = positionals;
  if (help || action === undefined) {
    process.stdout.write(POLICY_USAGE);
    return help ? 0 : 2;
  }
  if (extra.length > 0) throw new ConfigError(`unexpected ${JSON.stringify(extra[0])} (see 'identgate policy --help')`);
  if (action === 'check' || action === 'put') {
    if (file === undefined) throw new ConfigError(`identgate policy ${action} needs a FILE`);
    const text = readDocument(file);
    if (reportIssues(file, await readPolicy(text))) return 1;
    if (action === 'check') {
      process.stdout.write(`${file}: a valid policy\n`);
      return 0;
    }
    try {
      const answer = (await ask(workerOf(values), ROUTES.policy, { method: 'PUT', body: text })) as { version: string };
      process.stdout.write(`policy replaced: version ${answer.version}\n`);
      return 0;
    } catch (error) {
      return refusal(error);
    }
  }
  if (action === 'get') {
    if (file !== undefined) throw new ConfigError(`unexpected ${JSON.stringify(file)} (see 'identgate policy --help')`);
    try {
      process.stdout.write(
        `${JSON.stringify(await ask(workerOf(values), ROUTES.policy, { method: 'GET' }), null, 2)}\n`,
      );
      return 0;
    } catch (error) {
      return refusal(error);
    }
  }
  throw new ConfigError(
    `identgate policy ${JSON.stringify(action)}: expected check, get or put (see 'identgate policy --help')`,
  );
}

function ports(text: string | undefined): { serverPort: number; clientPort: number } {
  const match = text === undefined ? null : /^\s*(\d{1,5})\s*,\s*(\d{1,5})\s*$/.exec(text);
  const [serverPort, clientPort] = match ? [Number(match[1]), Number(match[2])] : [0, 0];
  if (!match || serverPort < 1 || serverPort > 65535 || clientPort < 1 || clientPort > 65535)
    throw new ConfigError(
      `identgate explain needs SERVERPORT,CLIENTPORT, each 1..65535 (e.g. 6667,40000)${text === undefined ? '' : `, not ${JSON.stringify(text)}`}`,
    );
  return { serverPort, clientPort };
}

interface ExplainAnswer {
  rule: string;
  ruleIndex: number | null;
  answer: { type: 'USERID'; opsys: string; charset?: string; userId: string } | { type: 'ERROR'; error: string };
  skipped: readonly { rule: string; failed: string }[];
  skippedCount: number;
  delegate?: { kind: string };
  assumed: string[];
}

function explanationText(found: ExplainAnswer): string {
  const answer =
    found.answer.type === 'USERID'
      ? `USERID : ${found.answer.opsys}${found.answer.charset ? `,${found.answer.charset}` : ''} : ${found.answer.userId}`
      : `ERROR : ${found.answer.error}`;
  const lines = [
    `rule: ${found.rule}${found.ruleIndex === null ? '' : ` (rules[${found.ruleIndex}])`}`,
    `${found.delegate ? `answer (if the ${found.delegate.kind} delegate yields none)` : 'answer'}: ${answer}`,
  ];
  if (found.skippedCount > 0) {
    const listed = found.skipped.map((skip) => `${skip.rule} (${skip.failed})`).join(', ');
    const more = found.skippedCount - found.skipped.length;
    lines.push(`skipped: ${listed}${more > 0 ? `, and ${more} more` : ''}`);
  }
  if (found.assumed.length > 0) lines.push(`assumed: ${found.assumed.join(', ')}`);
  return `${lines.join('\n')}\n`;
}

/** Runs `identgate explain ARGS`; resolves the exit status. */
export async function explainCommand(argv: string[]): Promise<number> {
  const { values, help, positionals } = parseFlags(EXPLAIN_FLAGS, argv, true, 'explain');
  if (help) {
    process.stdout.write(EXPLAIN_USAGE);
    return 0;
  }
  if (positionals.length > 1)
    throw new ConfigError(`unexpected ${JSON.stringify(positionals[1])} (see 'identgate explain --help')`);
  const query = ports(positionals[0]);
  if ((values.worker === undefined) === (values.policy === undefined))
    throw new ConfigError(
      'identgate explain needs exactly one of --worker URL (with --admin-token-file) or --policy FILE',
    );
  if (values['owner-name'] !== undefined && values['owner-uid'] === undefined)
    throw new ConfigError('--owner-name needs --owner-uid (an owner has a uid, and maybe a name)');
  const connection = {
    ...(values['server-address'] !== undefined && { localAddress: values['server-address'] }),
    ...(values['client-address'] !== undefined && { remoteAddress: values['client-address'] }),
  };
  const question = {
    query,
    ...(values.gateway !== undefined && { gateway: values.gateway }),
    ...(Object.keys(connection).length > 0 && { connection }),
    ...(values['owner-uid'] !== undefined && {
      owner: { uid: values['owner-uid'], userName: values['owner-name'] ?? null },
    }),
  };
  let found: ExplainAnswer;
  if (values.worker !== undefined) {
    try {
      found = (await ask(workerOf(values), ROUTES.explain, {
        method: 'POST',
        body: JSON.stringify(question),
      })) as ExplainAnswer;
    } catch (error) {
      return refusal(error);
    }
  } else {
    const read = await readPolicy(readDocument(values.policy!));
    if (reportIssues(values.policy!, read) || read.issues !== undefined) return 1;
    const { compilePolicy, explain } = await import('../../worker/policy/index.js');
    const { explainRequest } = await import('../../worker/routes/explain.js');
    let asked;
    try {
      asked = explainRequest(question);
    } catch (error) {
      throw new ConfigError(`the question does not make a lookup request: ${(error as Error).message}`);
    }
    const { request, assumed } = asked;
    found = { ...explain(compilePolicy(read.policy), request), assumed } as ExplainAnswer;
  }
  process.stdout.write(values.json ? `${JSON.stringify(found)}\n` : explanationText(found));
  return 0;
}
