/**
 * The `identgate` commands (command-list.ts lists them): `query` asks an ident server, `serve` answers ident queries
 * (fixed reply, embedded policy, or a policy worker over HTTP), `worker` runs the policy worker on Node, and the
 * admin and packaging commands. Usage errors are one line, exit 2.
 *
 * @example
 * identgate query 127.0.0.1 400,500 --port 1113
 * identgate serve --listen 127.0.0.1:1113 --reply grimlock
 */
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ConfigError, parseClaimArgs, parseQueryArgs, parseServeArgs, parseWorkerArgs } from './config.js';
import {
  BUILD_ADDONS_FLAGS,
  CLAIM_FLAGS,
  COMPLETION_FLAGS,
  flagsHelp,
  parseFlags,
  QUERY_FLAGS,
  SERVE_FLAGS,
  WORKER_FLAGS,
} from './flags.js';
import { COMMAND_NAMES, commandNamesText, usageText } from './command-list.js';
import { packageRoot } from '../native-addons.js';
import type { Logger } from '../daemon/log.js';
import { identgateVersion } from '../version.js';
import { IdentgateError } from '../../protocol/errors.js';
import { hostPort } from '../describe.js';
import { escapeControls, jsonForTerminal } from './printable.js';

/** Holds SIGHUPs that arrive while starting (see cli.ts) until the policy can reload. */
export interface Hangups {
  ready(reload: () => void): void;
}

const QUERY_USAGE = `identgate query HOST SERVERPORT,CLIENTPORT [options]

Asks the ident server on HOST who owns the TCP connection between HOST's port
SERVERPORT and this host's port CLIENTPORT, and prints the reply line.

${flagsHelp(QUERY_FLAGS)}
Exit status: 0 USERID, 1 ERROR reply, 2 usage or network failure.
`;

export const SERVE_USAGE = `identgate serve [options]

Answers RFC 1413 ident queries. Each query is answered by exactly one of:
  --reply NAME [--opsys OTHER] [--charset CS]   the same user id for every query
  --reply-error TOKEN                           the same error (NO-USER, HIDDEN-USER, X-...)
  --upstream URL --secret-file FILE             the policy worker over HTTP (Workers, wrangler dev, identgate worker)
  [--policy FILE]                               the policy worker embedded in this process (default;
                                                without --policy: reveal a found owner, else NO-USER)

${flagsHelp(SERVE_FLAGS)}
Signals: SIGHUP reloads the policy file; SIGTERM/SIGINT stop gracefully.
`;

const CLAIM_USAGE = `identgate claim COMMAND [options]

Tells the gateway's claims API (docs/claims.md) which of this program's users
a TCP connection of this user's belongs to. The gateway takes your uid from
the kernel and accepts a claim only on a connection your uid owns.

Commands:
  add LOCAL REMOTE USER [--ident ID]  claim the connection LOCAL -> REMOTE (each IP:PORT or
                                      [IPv6]:PORT) for USER, optionally asking for ident ID;
                                      prints the claim's id
  list                                your live claims (id, connection, user, ident)
  release ID... | --all               end claims
  pending REMOTE --ttl MS             for MS, queries about your not-yet-claimed connections
                                      to REMOTE wait (up to the gateway's --claim-wait) for
                                      their claim; prints the hold's id

${flagsHelp(CLAIM_FLAGS)}
Exit status: 0 done, 1 refused by the gateway (the reason is printed), 2 usage error or no gateway.
`;

const WORKER_USAGE = `identgate worker --secret-file FILE [options]

Runs the Hono policy worker as a Node HTTP service for gateways started with
'identgate serve --upstream http://ADDR:PORT --secret-file FILE'.

${flagsHelp(WORKER_FLAGS)}`;

async function claim(argv: string[]): Promise<number> {
  const config = parseClaimArgs(argv);
  if (config.help || config.command === undefined) {
    process.stdout.write(CLAIM_USAGE);
    return 0;
  }
  const { createClaimsClient, ClaimsApiError } = await import('../claims/client.js');
  const client = createClaimsClient({ socketPath: config.socketPath });
  const print = (json: unknown, text: string) =>
    process.stdout.write(config.json ? `${JSON.stringify(json)}\n` : text.length ? `${text}\n` : '');
  const endpoint = ({ hostname, port }: { hostname: string; port: number }) => ({ address: hostname, port });
  const show = ({ address, port }: { address: string; port: number }) =>
    address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
  const command = config.command;
  try {
    switch (command.action) {
      case 'add': {
        const made = await client.claim({
          local: endpoint(command.local),
          remote: endpoint(command.remote),
          user: command.user,
          ...(command.ident !== undefined && { ident: command.ident }),
        });
        print(made, made.id);
        break;
      }
      case 'list': {
        const claims = await client.list();
        print(
          { claims },
          claims
            .map(
              (c) =>
                `${c.id}  ${show(c.local)} -> ${show(c.remote)}  ${c.user}${c.ident === undefined ? '' : `  ident ${c.ident}`}`,
            )
            .join('\n'),
        );
        break;
      }
      case 'release':
        for (const id of command.ids) await client.release(id);
        print({ released: command.ids.length }, `released ${command.ids.length}`);
        break;
      case 'release-all': {
        const released = await client.releaseAll();
        print({ released }, `released ${released}`);
        break;
      }
      case 'pending': {
        const hold = await client.pending({ remote: endpoint(command.remote), ttlMs: command.ttlMs });
        print(hold, hold.id);
        break;
      }
    }
    return 0;
  } catch (error) {
    if (!(error instanceof ClaimsApiError)) throw error;
    process.stderr.write(`identgate: ${error.message}${error.status ? ` (${error.status} ${error.reason})` : ''}\n`);
    return error.status >= 400 && error.status < 500 ? 1 : 2;
  }
}

/** Graceful stop on SIGTERM/SIGINT; a second signal exits at once. */
function onStopSignals(stop: () => Promise<void>, log: Logger): void {
  let stopping = false;
  const handle = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(1);
    stopping = true;
    log.info({ signal }, 'stopping');
    stop().then(
      () => {
        log.flush();
        process.exit(0);
      },
      (error: Error) => {
        log.error({ err: error }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handle);
  process.on('SIGINT', handle);
}

function describeListen(addresses: { address: string; port: number }[]): string {
  return addresses.map(({ address, port }) => hostPort(address, port)).join(', ');
}

async function query(argv: string[]): Promise<number> {
  const config = parseQueryArgs(argv);
  if (config.help) {
    process.stdout.write(QUERY_USAGE);
    return 0;
  }
  const { IdentClient, IdentClientError } = await import('../client/client.js');
  const client = new IdentClient({ hostname: config.hostname, port: config.port, timeout: config.timeoutMs });
  try {
    const response = await client.ident(config.serverPort, config.clientPort);
    // The server's bytes may be hostile: no control character reaches the terminal (printable.ts).
    if (config.json) {
      const { userIdOctets: _, ...printable } = response;
      process.stdout.write(`${jsonForTerminal(printable)}\n`);
    } else {
      process.stdout.write(`${escapeControls(response.raw)}\n`);
    }
    return response.isSuccess ? 0 : 1;
  } catch (error) {
    if (error instanceof IdentClientError) {
      process.stderr.write(`identgate: ${escapeControls(error.message)}\n`);
      return 2;
    }
    throw error;
  } finally {
    await client.close();
  }
}

const BUILD_ADDONS_USAGE = `identgate build-addons [options]

Rebuilds the native transport (identgate-uv.node), the sock_diag addon
(identgate-sockdiag.node) and the sock_diag helper (identgate-sockdiag) from
the C sources this package ships, with this machine's C compiler and Node's
headers. Without --out they go into this package's dist/, which the gateway
loads before the prebuilt copies under prebuilds/ (docs/operations.md).

${flagsHelp(BUILD_ADDONS_FLAGS)}
Exit status: 0 all three built, 1 one or more could not be built (the reason is printed), 2 usage error.
`;

const COMPLETION_USAGE = `identgate completion bash

Prints a bash completion script for identgate, made from the same flag tables
as --help. Load it in this shell, or install it for everyone:

  source <(identgate completion bash)
  identgate completion bash > /usr/share/bash-completion/completions/identgate
`;

async function completion(argv: string[]): Promise<number> {
  const { help, positionals } = parseFlags(COMPLETION_FLAGS, argv, true, 'completion');
  if (help || positionals.length === 0) {
    process.stdout.write(COMPLETION_USAGE);
    return help ? 0 : 2;
  }
  if (positionals.length > 1 || positionals[0] !== 'bash')
    throw new ConfigError(`identgate completion ${JSON.stringify(positionals.join(' '))}: expected bash`);
  const { bashCompletion } = await import('./completion.js');
  process.stdout.write(bashCompletion());
  return 0;
}

async function buildAddons(argv: string[]): Promise<number> {
  const { values, help } = parseFlags(BUILD_ADDONS_FLAGS, argv, false, 'build-addons');
  if (help) {
    process.stdout.write(BUILD_ADDONS_USAGE);
    return 0;
  }
  const script = pathToFileURL(`${packageRoot()}gateway/build-addons.mjs`).href;
  const { buildAddons: build } = (await import(script)) as {
    buildAddons(options: { out?: string; cc: string }): { name: string; path: string | null; reason: string | null }[];
  };
  const results = build({ ...(values.out !== undefined && { out: values.out }), cc: values.cc });
  for (const { name, path, reason } of results)
    process.stdout.write(path ? `built ${name}: ${path}\n` : `${name} not built: ${reason}\n`);
  return results.every((result) => result.path !== null) ? 0 : 1;
}

async function serve(argv: string[], hangups: Hangups): Promise<number | undefined> {
  const cluster = (await import('node:cluster')).default;
  const config = parseServeArgs(argv, process.env, process.pid, cluster.isWorker ? process.ppid : undefined);
  if (config.help) {
    process.stdout.write(SERVE_USAGE);
    return 0;
  }
  const { createLogger, logPolicyReload } = await import('../daemon/log.js');
  const log = createLogger(config.logLevel);
  if (config.workers > 1 && cluster.isPrimary) {
    const { runPrimary } = await import('../daemon/cluster.js');
    const primary = await runPrimary(config, log);
    hangups.ready(primary.reload);
    onStopSignals(primary.stop, log);
    announceListening(log, { ...primary.ready, metricsPort: primary.metricsPort, workers: config.workers });
    return undefined;
  }

  const { startGateway } = await import('../daemon/serve.js');
  const gateway = await startGateway(config, { log, clusterWorker: cluster.isWorker });
  const addresses = gateway.server.addresses.map(({ address, port }) => ({ address, port }));
  hangups.ready(() => {
    gateway.reload().then(
      (result) => logPolicyReload(log, result),
      (error: Error) => log.warn({ err: error }, 'SIGHUP: policy reload failed'),
    );
  });
  onStopSignals(() => gateway.stop(), log);
  if (cluster.isWorker) {
    const { announceReady } = await import('../daemon/cluster.js');
    announceReady({
      addresses,
      answeredBy: gateway.answeredBy,
      ownerLookup: gateway.ownerLookup,
      natLookup: gateway.natLookup,
      transport: gateway.server.transport ?? 'node',
    });
    return undefined;
  }
  const first = addresses[0]!;
  const host = first.address === '::' ? '::1' : first.address === '0.0.0.0' ? '127.0.0.1' : first.address;
  const example = { serverPort: 400, clientPort: 500 };
  announceListening(log, {
    addresses,
    tryQuery: gateway.answersUserId(example, host)
      ? `${invokedAs()} query ${host.includes(':') ? `[${host}]` : host} ${example.serverPort},${example.clientPort} --port ${first.port}`
      : undefined,
    answeredBy: gateway.answeredBy,
    ownerLookup: gateway.ownerLookup,
    natLookup: gateway.natLookup,
    transport: gateway.server.transport ?? 'node',
    metricsPort: gateway.metricsPort,
    workers: 1,
  });
  return undefined;
}

/** How to run this executable again: `identgate` when installed, `npx identgate` from a clone. */
function invokedAs(): string {
  return fileURLToPath(import.meta.url).includes('/node_modules/') ? 'identgate' : 'npx identgate';
}

/** The human line on stdout (where, how, a query to paste) and the JSON line in the log. */
function announceListening(
  log: Logger,
  state: {
    addresses: { address: string; port: number }[];
    /** A query that this gateway answers with a user id, to paste; none when it would not. */
    tryQuery?: string | undefined;
    answeredBy: string;
    ownerLookup: string;
    natLookup?: string;
    transport: string;
    metricsPort: number | undefined;
    workers: number;
  },
): void {
  const where = describeListen(state.addresses);
  log.info(
    {
      listen: where,
      answeredBy: state.answeredBy,
      ownerLookup: state.ownerLookup,
      natLookup: state.natLookup,
      transport: state.transport,
      metricsPort: state.metricsPort,
      workers: state.workers,
    },
    'identgate serving',
  );
  const processes = state.workers > 1 ? `; ${state.workers} worker processes` : '';
  const nat = state.natLookup !== undefined && state.natLookup !== 'off' ? `; nat lookup: ${state.natLookup}` : '';
  process.stdout.write(
    `identgate listening on ${where} (answers: ${state.answeredBy}; owner lookup: ${state.ownerLookup}; transport: ${state.transport}${nat}${processes})\n` +
      (state.tryQuery ? `try: ${state.tryQuery}\n` : ''),
  );
}

function isLoopback(address: string): boolean {
  return address === '::1' || address.startsWith('127.') || address.toLowerCase().startsWith('::ffff:127.');
}

async function worker(argv: string[], hangups: Hangups): Promise<number | undefined> {
  const config = parseWorkerArgs(argv);
  if (config.help) {
    process.stdout.write(WORKER_USAGE);
    return 0;
  }
  const { createLogger, logPolicyReload, workerLog } = await import('../daemon/log.js');
  const log = createLogger(config.logLevel);
  const { startNodeWorker } = await import('../../worker/node.js');
  const running = await startNodeWorker({
    hostname: config.listen.hostname,
    port: config.listen.port,
    policyFile: config.policyFile,
    secrets: config.secrets,
    adminTokens: config.adminTokens,
    log: workerLog(log, 'info'),
    audit: config.audit,
    // Decisions are logged at info: above it, the entries are not even built.
    logDecisions: log.isLevelEnabled('info'),
  });
  log.info(
    { url: running.url, policy: config.policyFile ?? 'default', audit: config.audit?.path ?? 'off' },
    'identgate worker serving',
  );
  if (config.policyFile === undefined && config.adminTokens.length > 0)
    log.warn(
      'no --policy FILE: a PUT /v1/policy is kept in memory only and lost when the worker stops; give --policy FILE to keep it',
    );
  if (!isLoopback(config.listen.hostname))
    log.warn(
      { listen: running.url },
      'listening beyond loopback over plain http: signed lookups and admin bearer tokens cross the network unencrypted; put a TLS proxy in front (docs/operations.md) or listen on 127.0.0.1',
    );
  process.stdout.write(`identgate worker listening on ${running.url}\n`);
  hangups.ready(() => {
    running.reload().then(
      (result) => logPolicyReload(log, result),
      (error: Error) => log.warn({ err: error }, 'SIGHUP: policy reload failed'),
    );
  });
  onStopSignals(() => running.close(), log);
  return undefined;
}

export async function main(argv: string[], hangups: Hangups): Promise<number | undefined> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'query':
      return query(rest);
    case 'serve':
      return serve(rest, hangups);
    case 'worker':
      return worker(rest, hangups);
    case 'claim':
      return claim(rest);
    case 'audit':
      return (await import('./audit-search.js')).audit(rest);
    case 'policy':
      return (await import('./admin.js')).policy(rest);
    case 'explain':
      return (await import('./admin.js')).explainCommand(rest);
    case 'build-addons':
      return buildAddons(rest);
    case 'completion':
      return completion(rest);
    case 'help':
      if (rest[0] !== undefined) {
        if (!COMMAND_NAMES.includes(rest[0])) throw unknownCommand(rest[0]);
        return main([rest[0], '--help'], hangups);
      }
      process.stdout.write(usageText());
      return 0;
    case undefined:
    case '--help':
    case '-h':
      process.stdout.write(usageText());
      return command === undefined ? 2 : 0;
    case '--version':
    case '-v':
      process.stdout.write(`${identgateVersion()}\n`);
      return 0;
    default:
      throw unknownCommand(command);
  }
}

function unknownCommand(command: string): ConfigError {
  return new ConfigError(
    `unknown command ${JSON.stringify(command)}: expected ${commandNamesText()} (see 'identgate --help')`,
  );
}

/** Errors a user can act on print as one line; anything else is a bug and keeps its stack. */
export function isUserError(error: unknown): error is IdentgateError {
  return error instanceof IdentgateError && error.userError;
}
