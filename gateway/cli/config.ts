/**
 * Command-line configuration, parsed once into typed objects from the flag tables (flags.ts) and the environment
 * (systemd's LISTEN_FDS): nothing else reads argv or process.env. Every mistake is a one-line ConfigError (exit 2).
 *
 * @example
 * const config = parseServeArgs(['--listen', '127.0.0.1:1113', '--reply', 'nobody'], {});
 * // config.listen -> [{ hostname: '127.0.0.1', port: 1113 }]
 */
import { readFileSync } from 'node:fs';
import { hostPort } from '../describe.js';
import { availableParallelism, hostname as osHostname } from 'node:os';
import { CLAIMS_DEFAULTS } from '../claims/registry.js';
import { replyRuleViolation, type IdentAnswer } from '../../protocol/index.js';
import { ConfigError } from '../../protocol/errors.js';
import type { ListenTarget } from '../server/server.js';
import type { TransportChoice } from '../server/transport/index.js';
import type { AddressBlock } from '../nat/address-block.js';
import {
  CLAIM_FLAGS,
  parseFlags,
  parseHostPort,
  QUERY_FLAGS,
  SERVE_DEFAULTS,
  SERVE_FLAGS,
  WORKER_FLAGS,
  type HostPort,
  type LogLevel,
} from './flags.js';

export { ConfigError, parseHostPort, SERVE_DEFAULTS, type HostPort, type LogLevel };

/**
 * Reads secrets from a file: one per line, surrounding white space ignored,
 * blank lines and lines starting with # skipped. Several lines = rotation (the
 * first signs, all verify).
 */
export function readSecretFile(path: string, flag = '--secret-file'): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(
      `${flag} ${path}: cannot read it (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
    );
  }
  const secrets = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'));
  if (secrets.length === 0) throw new ConfigError(`${flag} ${path}: the file holds no secret (one per line)`);
  const short = secrets.find((secret) => secret.length < 16);
  if (short !== undefined)
    throw new ConfigError(
      `${flag} ${path}: every secret must be at least 16 characters (generate one with: openssl rand -hex 32)`,
    );
  return secrets;
}

// ---------------------------------------------------------------- query

export interface QueryConfig {
  help: boolean;
  hostname: string;
  port: number;
  serverPort: number;
  clientPort: number;
  timeoutMs: number;
  json: boolean;
}

export function parseQueryArgs(argv: string[]): QueryConfig {
  const { values, help, positionals } = parseFlags(QUERY_FLAGS, argv, true, 'query');
  if (help) return { help: true, hostname: '', port: 0, serverPort: 0, clientPort: 0, timeoutMs: 0, json: false };
  if (positionals.length !== 2)
    throw new ConfigError('usage: identgate query HOST SERVERPORT,CLIENTPORT [--port 113] [--timeout MS] [--json]');
  const [host, pair] = positionals as [string, string];
  const ports = /^(\d{1,5}),(\d{1,5})$/.exec(pair.replace(/\s+/g, ''));
  const serverPort = Number(ports?.[1]);
  const clientPort = Number(ports?.[2]);
  if (!ports || serverPort < 1 || serverPort > 65535 || clientPort < 1 || clientPort > 65535) {
    throw new ConfigError(
      `ports ${JSON.stringify(pair)}: expected SERVERPORT,CLIENTPORT with each in 1..65535, e.g. 6193,23`,
    );
  }
  return {
    help: false,
    hostname: host.replace(/^\[(.*)\]$/, '$1'),
    port: values.port ?? 113,
    serverPort,
    clientPort,
    timeoutMs: values.timeout ?? 10_000,
    json: Boolean(values.json),
  };
}

// ---------------------------------------------------------------- serve

export type Answerer =
  | { kind: 'fixed'; answer: IdentAnswer }
  | { kind: 'embedded'; policyFile: string | undefined; audit: AuditConfig | undefined }
  | {
      kind: 'upstream';
      upstream: URL;
      secrets: string[];
      connections: number;
      holdMs: number;
      /** --stale-policy-max-age in ms; 0: no last-good policy. */
      staleMaxAgeMs: number;
      staleRefreshMs: number;
    };

/** --audit FILE and --audit-retention DAYS. */
export interface AuditConfig {
  path: string;
  retentionDays: number;
}

export interface ServeConfig {
  help: boolean;
  listen: ListenTarget[];
  answerer: Answerer;
  gatewayName: string;
  deadlineMs: number;
  fallback: IdentAnswer;
  ownerLookup: 'auto' | 'on' | 'off';
  /** CIDRs forward delegates may reach besides loopback and this host's addresses (--forward-allow). */
  forwardAllow: string[];
  hideErrors: boolean;
  runAs: string | undefined;
  metrics: HostPort | undefined;
  /** The operator console for the embedded policy (--console, docs/console.md); undefined when off. */
  console: { listen: HostPort; adminTokens: string[] } | undefined;
  logLevel: LogLevel;
  limits: {
    idleTimeoutMs: number;
    maxLineOctets: number;
    maxInFlight: number;
    maxQueriesPerConnection: number;
    maxConnections: number;
    maxConnectionsPerAddress: number;
    perAddressPrefix6: number;
  };
  shutdownGraceMs: number;
  /** Gateway processes sharing the listeners (node:cluster); 1 = this process alone. */
  workers: number;
  /** How connections are read and written (IdentServerOptions.transport). */
  transport: TransportChoice;
  /** The claims API (docs/claims.md); undefined when off. */
  claims: ClaimsConfig | undefined;
  /** Conntrack lookups for connections with no local owner (gateway/nat/conntrack.ts). */
  natLookup: 'auto' | 'on' | 'off';
  /** Routers whose queries are taken as forwarded (gateway/nat/forwarded.ts). */
  acceptForwardedFrom: AddressBlock[];
  /** The Docker Engine API socket (gateway/containers/docker.ts). */
  dockerSocket: string | undefined;
}

export interface ClaimsConfig {
  socket: { path: string; mode: number; group: string | undefined };
  /** Longest a held query waits for its claim (--claim-wait); below the deadline. */
  waitMs: number;
  claimsPerUid: number;
}

/**
 * A --workers supervisor using the native transport binds the listeners
 * itself and hands them to each worker as descriptors 4, 5, ... (after the
 * cluster's IPC channel on 3); this variable says how many.
 */
export const INHERITED_LISTENERS_ENV = 'IDENTGATE_INHERITED_LISTENERS';
export const FIRST_INHERITED_FD = 4;

function inheritedListenTargets(env: NodeJS.ProcessEnv, primaryPid: number | undefined): ListenTarget[] {
  const value = env[INHERITED_LISTENERS_ENV];
  if (primaryPid === undefined || value === undefined) return [];
  const count = Number(value);
  if (!Number.isInteger(count) || count < 1)
    throw new ConfigError(
      `${INHERITED_LISTENERS_ENV}=${value}: expected a positive number of descriptors from the supervisor`,
    );
  return Array.from({ length: count }, (_, i) => ({ fd: FIRST_INHERITED_FD + i }));
}

/**
 * systemd socket activation: LISTEN_PID/LISTEN_FDS name descriptors 3..3+n-1
 * (sd_listen_fds(3)). `primaryPid` is the supervising process of a --workers
 * cluster worker: the descriptors were passed to it, and it shares them.
 */
export function systemdListenTargets(env: NodeJS.ProcessEnv, pid: number, primaryPid?: number): ListenTarget[] {
  if (
    !env.LISTEN_FDS ||
    (env.LISTEN_PID !== String(pid) && (primaryPid === undefined || env.LISTEN_PID !== String(primaryPid)))
  )
    return [];
  const count = Number(env.LISTEN_FDS);
  if (!Number.isInteger(count) || count < 1)
    throw new ConfigError(`LISTEN_FDS=${env.LISTEN_FDS}: expected a positive number of descriptors from systemd`);
  return Array.from({ length: count }, (_, i) => ({ fd: 3 + i }));
}

/**
 * `identgate serve`'s flags (gateway/cli/flags.ts SERVE_FLAGS) and environment as one typed config; the rules
 * between flags (one way to answer, what goes with --upstream) are here. Throws ConfigError.
 *
 * @example
 * parseServeArgs(['--upstream', 'http://127.0.0.1:8787', '--secret-file', '/etc/identgate/secret']).answerer.kind // 'upstream'
 */
export function parseServeArgs(argv: string[], env: NodeJS.ProcessEnv = {}, pid = 0, primaryPid?: number): ServeConfig {
  const { values, help, given } = parseFlags(SERVE_FLAGS, argv, false, 'serve');

  const fromSystemd = systemdListenTargets(env, pid, primaryPid);
  const listenFlags = values.listen ?? [];
  const inherited = inheritedListenTargets(env, primaryPid);
  let listen: ListenTarget[] =
    fromSystemd.length > 0 && listenFlags.length === 0
      ? fromSystemd
      : listenFlags.length
        ? listenFlags
        : [parseHostPort(SERVE_DEFAULTS.listen, '--listen')];
  assertDistinct(listenFlags);
  let transport: TransportChoice = values.transport;
  if (inherited.length > 0) {
    // The supervisor bound the listeners for the native transport: this worker adopts them.
    listen = inherited;
    transport = 'native';
  }

  const modes = [
    values.reply !== undefined && '--reply',
    values['reply-error'] !== undefined && '--reply-error',
    values.upstream !== undefined && '--upstream',
  ].filter(Boolean);
  if (modes.length > 1) throw new ConfigError(`${modes.join(' and ')} cannot be combined: pick one way to answer`);
  for (const flag of ['policy', 'audit'] as const) {
    if (given.has(flag) && modes.length)
      throw new ConfigError(`--${flag} applies to the embedded worker only; it cannot be combined with ${modes[0]}`);
  }
  if (given.has('audit-retention') && !given.has('audit'))
    throw new ConfigError('--audit-retention goes with --audit FILE');
  if ((values.opsys !== undefined || values.charset !== undefined) && values.reply === undefined)
    throw new ConfigError('--opsys and --charset go with --reply NAME');

  let answerer: Answerer;
  if (values.reply !== undefined) {
    const answer: IdentAnswer = {
      type: 'USERID',
      opsys: values.opsys ?? 'OTHER',
      charset: values.charset,
      userId: values.reply,
    };
    const violation = replyRuleViolation(answer);
    if (violation) throw new ConfigError(`--reply ${JSON.stringify(values.reply)}: ${violation}`);
    answerer = { kind: 'fixed', answer };
  } else if (values['reply-error'] !== undefined) {
    answerer = { kind: 'fixed', answer: { type: 'ERROR', error: values['reply-error'] } };
  } else if (values.upstream !== undefined) {
    if (values['secret-file'] === undefined)
      throw new ConfigError(
        '--upstream needs --secret-file FILE (the shared HMAC secret; secrets are never taken from the command line)',
      );
    answerer = {
      kind: 'upstream',
      upstream: values.upstream,
      secrets: readSecretFile(values['secret-file']),
      connections: values['upstream-connections'],
      holdMs: values['batch-hold'],
      staleMaxAgeMs: values['stale-policy-max-age'] * 1000,
      staleRefreshMs: values['stale-policy-refresh'],
    };
  } else {
    const upstreamOnly = [
      'upstream-connections',
      'batch-hold',
      'secret-file',
      'stale-policy-max-age',
      'stale-policy-refresh',
    ] as const;
    for (const flag of upstreamOnly) {
      if (given.has(flag)) throw new ConfigError(`--${flag} goes with --upstream URL`);
    }
    const audit =
      values.audit === undefined ? undefined : { path: values.audit, retentionDays: values['audit-retention'] };
    answerer = { kind: 'embedded', policyFile: values.policy, audit };
  }

  if (values.console !== undefined && answerer.kind !== 'embedded')
    throw new ConfigError(
      "--console serves the embedded policy; with --upstream use the worker's own /admin, with --reply there is no policy",
    );
  if (values.console !== undefined && values['admin-token-file'] === undefined)
    throw new ConfigError('--console needs --admin-token-file FILE (the tokens that may sign in)');
  if (values.console === undefined && values['admin-token-file'] !== undefined)
    throw new ConfigError('--admin-token-file goes with --console ADDR:PORT');
  const workers = values.workers === 'auto' ? availableParallelism() : values.workers;
  if (values.console !== undefined && workers > 1)
    throw new ConfigError('--console needs one gateway process (--workers 1): each would hold its own policy edits');
  const acceptForwardedFrom = values['accept-forwarded-from'] ?? [];
  const dockerSocket = values['docker-socket'];
  if (dockerSocket !== undefined && values['nat-lookup'] === 'off')
    throw new ConfigError(
      '--docker-socket needs the NAT lookup (containers are found by the inner address); drop --nat-lookup off',
    );
  if (answerer.kind === 'fixed') {
    const factFlags = (['nat-lookup', 'accept-forwarded-from', 'docker-socket'] as const)
      .filter((flag) => given.has(flag))
      .map((flag) => `--${flag}`);
    if (factFlags.length > 0)
      throw new ConfigError(
        `${factFlags.join(' and ')} ${factFlags.length > 1 ? 'give' : 'gives'} the policy facts; ${modes[0]} answers without one`,
      );
  }

  return {
    help,
    listen,
    answerer,
    gatewayName: values['gateway-name'] ?? SERVE_FLAGS['gateway-name'].parse(osHostname(), '--gateway-name'),
    deadlineMs: values.deadline,
    fallback: { type: 'ERROR', error: values['fallback-error'] },
    ownerLookup: values['owner-lookup'],
    forwardAllow: values['forward-allow'] ?? [],
    hideErrors: Boolean(values['hide-errors']),
    runAs: values['run-as'],
    metrics: values.metrics,
    console:
      values.console === undefined
        ? undefined
        : { listen: values.console, adminTokens: readSecretFile(values['admin-token-file']!, '--admin-token-file') },
    logLevel: values['log-level'],
    limits: {
      idleTimeoutMs: values['idle-timeout'],
      maxLineOctets: values['max-line'],
      maxInFlight: values['max-in-flight'],
      maxQueriesPerConnection: values['max-queries'],
      maxConnections: values['max-connections'],
      maxConnectionsPerAddress: values['max-per-address'],
      perAddressPrefix6: values['per-address-prefix6'],
    },
    shutdownGraceMs: values['shutdown-grace'],
    workers,
    transport,
    claims: claimsConfig(values, given, env, { answerer, workers }),
    natLookup: values['nat-lookup'],
    acceptForwardedFrom,
    dockerSocket,
  };
}

/** Two --listen flags for one socket would fail at bind time as "already in use"; say what is wrong instead. */
function assertDistinct(targets: HostPort[]): void {
  const seen = new Map<string, string>();
  for (const { hostname, port } of targets) {
    if (port === 0) continue; // each asks for its own free port
    const key = `${hostname.includes(':') ? canonicalIPv6(hostname) : hostname}|${port}`;
    const shown = hostPort(hostname, port);
    const earlier = seen.get(key);
    if (earlier !== undefined)
      throw new ConfigError(
        `--listen ${shown}: the same address is given twice${earlier === shown ? '' : ` (as ${earlier})`}`,
      );
    seen.set(key, shown);
  }
  for (const { hostname, port } of targets) {
    if (hostname === '0.0.0.0' && port !== 0 && seen.has(`::|${port}`))
      throw new ConfigError(
        `--listen 0.0.0.0:${port}: [::]:${port} already covers IPv4 (dual-stack); give one of the two`,
      );
  }
}

function canonicalIPv6(address: string): string {
  try {
    return new URL(`http://[${address}]/`).hostname.slice(1, -1);
  } catch {
    return address; // a scoped address (fe80::1%eth0): compared as written
  }
}

type ServeValues = ReturnType<typeof parseFlags<typeof SERVE_FLAGS>>['values'];

/**
 * The claims API: on by default only as a service (systemd's RuntimeDirectory= sets $RUNTIME_DIRECTORY), and only
 * where it can work; asked for with --claims-socket where it cannot, a ConfigError says why.
 */
function claimsConfig(
  values: ServeValues,
  given: ReadonlySet<string>,
  env: NodeJS.ProcessEnv,
  { answerer, workers }: { answerer: Answerer; workers: number },
): ClaimsConfig | undefined {
  const flag = values['claims-socket'];
  const runtimeDirectory = env.RUNTIME_DIRECTORY?.split(':')[0];
  const path =
    flag === 'off'
      ? undefined
      : (flag ??
        (runtimeDirectory ? `${runtimeDirectory.replace(/\/$/, '')}/${CLAIMS_DEFAULTS.socketName}` : undefined));
  const dependents = (['claims-socket-mode', 'claims-socket-group', 'claim-wait', 'claims-per-uid'] as const).filter(
    (name) => given.has(name),
  );
  if (path === undefined) {
    if (dependents.length > 0) throw new ConfigError(`--${dependents[0]} goes with --claims-socket PATH`);
    return undefined;
  }
  const unavailable =
    answerer.kind === 'fixed'
      ? 'it needs a policy (not --reply or --reply-error)'
      : values['owner-lookup'] === 'off'
        ? 'it needs owner lookup (not --owner-lookup off) to check every claim'
        : workers > 1
          ? 'it needs --workers 1 (claims live in one gateway process)'
          : undefined;
  if (unavailable !== undefined) {
    if (flag !== undefined || dependents.length > 0) throw new ConfigError(`--claims-socket: ${unavailable}`);
    return undefined;
  }
  const deadlineMs = values.deadline;
  const waitMs = values['claim-wait'] ?? Math.min(CLAIMS_DEFAULTS.waitMs, Math.floor(deadlineMs / 2));
  if (waitMs >= deadlineMs)
    throw new ConfigError(`--claim-wait ${waitMs}: must be below --deadline (${deadlineMs} ms)`);
  return {
    socket: { path, mode: values['claims-socket-mode'], group: values['claims-socket-group'] },
    waitMs,
    claimsPerUid: values['claims-per-uid'],
  };
}

// ---------------------------------------------------------------- claim

export type ClaimCommand =
  | { action: 'add'; local: HostPort; remote: HostPort; user: string; ident: string | undefined }
  | { action: 'list' }
  | { action: 'release'; ids: string[] }
  | { action: 'release-all' }
  | { action: 'pending'; remote: HostPort; ttlMs: number };

export interface ClaimConfig {
  help: boolean;
  socketPath: string;
  json: boolean;
  command: ClaimCommand | undefined;
}

const CLAIM_USAGE_LINE =
  'usage: identgate claim add LOCAL REMOTE USER [--ident ID] | list | release ID...|--all | pending REMOTE --ttl MS';

/** IP-ADDRESS:PORT with both parts (a claim is about one exact connection). */
function parseEndpoint(value: string, what: string): HostPort {
  const wrong = () =>
    new ConfigError(
      `${what} ${JSON.stringify(value)}: expected IP-ADDRESS:PORT, e.g. 192.0.2.1:40000 or [2001:db8::1]:6697`,
    );
  if (!/^(?:\[[^\]]+\]|[^:[\]]+):\d+$/.test(value)) throw wrong();
  let endpoint: HostPort;
  try {
    endpoint = parseHostPort(value, what);
  } catch {
    throw wrong();
  }
  if (endpoint.port === 0) throw wrong();
  return endpoint;
}

/**
 * `identgate claim`'s subcommand, arguments and flags (flags.ts CLAIM_FLAGS). Throws ConfigError.
 *
 * @example
 * parseClaimArgs(['add', '192.0.2.1:40000', '203.0.113.5:6697', 'alice']).command?.action // 'add'
 */
export function parseClaimArgs(argv: string[]): ClaimConfig {
  const { values, help, given, positionals } = parseFlags(CLAIM_FLAGS, argv, true, 'claim');
  const base = { help, socketPath: values.socket, json: Boolean(values.json) };
  if (help) return { ...base, command: undefined };
  const [action, ...args] = positionals;
  const only = (...allowed: string[]) => {
    for (const flag of ['ident', 'ttl', 'all'])
      if (given.has(flag as keyof typeof CLAIM_FLAGS) && !allowed.includes(flag))
        throw new ConfigError(`--${flag} does not go with claim ${action}`);
  };
  let command: ClaimCommand;
  switch (action) {
    case 'add':
      only('ident');
      if (args.length !== 3)
        throw new ConfigError('usage: identgate claim add LOCAL-ADDRESS:PORT REMOTE-ADDRESS:PORT USER [--ident ID]');
      command = {
        action: 'add',
        local: parseEndpoint(args[0]!, 'LOCAL'),
        remote: parseEndpoint(args[1]!, 'REMOTE'),
        user: args[2]!,
        ident: values.ident,
      };
      break;
    case 'list':
      only();
      if (args.length !== 0) throw new ConfigError('usage: identgate claim list [--json]');
      command = { action: 'list' };
      break;
    case 'release':
      only('all');
      if (values.all && args.length === 0) command = { action: 'release-all' };
      else if (!values.all && args.length > 0) command = { action: 'release', ids: args };
      else throw new ConfigError('usage: identgate claim release ID... | identgate claim release --all');
      break;
    case 'pending':
      only('ttl');
      if (args.length !== 1 || values.ttl === undefined)
        throw new ConfigError('usage: identgate claim pending REMOTE-ADDRESS:PORT --ttl MS');
      command = { action: 'pending', remote: parseEndpoint(args[0]!, 'REMOTE'), ttlMs: values.ttl };
      break;
    default:
      throw new ConfigError(
        action === undefined
          ? CLAIM_USAGE_LINE
          : `unknown claim command ${JSON.stringify(action)}; ${CLAIM_USAGE_LINE}`,
      );
  }
  return { ...base, command };
}

// ---------------------------------------------------------------- worker

export interface WorkerConfig {
  help: boolean;
  listen: HostPort;
  policyFile: string | undefined;
  secrets: string[];
  adminTokens: string[];
  logLevel: LogLevel;
  audit: AuditConfig | undefined;
}

export function parseWorkerArgs(argv: string[]): WorkerConfig {
  const { values, help, given } = parseFlags(WORKER_FLAGS, argv, false, 'worker');
  if (help)
    return {
      help,
      listen: { hostname: '', port: 0 },
      policyFile: undefined,
      secrets: [],
      adminTokens: [],
      logLevel: 'info',
      audit: undefined,
    };
  if (given.has('audit-retention') && !given.has('audit'))
    throw new ConfigError('--audit-retention goes with --audit FILE');
  if (values['secret-file'] === undefined)
    throw new ConfigError(
      'identgate worker needs --secret-file FILE (the HMAC secret gateways sign with; one per line)',
    );
  const adminFile = values['admin-token-file'];
  return {
    help,
    listen: values.listen,
    policyFile: values.policy,
    secrets: readSecretFile(values['secret-file']),
    adminTokens: adminFile === undefined ? [] : readSecretFile(adminFile, '--admin-token-file'),
    logLevel: values['log-level'],
    audit: values.audit === undefined ? undefined : { path: values.audit, retentionDays: values['audit-retention'] },
  };
}
