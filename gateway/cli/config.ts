/**
 * Command-line configuration, parsed once into typed objects (node:util
 * parseArgs). Nothing else in identgate reads argv or process.env: systemd's
 * LISTEN_FDS arrive here too. Every mistake becomes a ConfigError with one line
 * that names the flag and what to do; the CLI prints it and exits 2.
 *
 * @example
 * const config = parseServeArgs(['--listen', '127.0.0.1:1113', '--reply', 'nobody'], {});
 * // config.listen -> [{ hostname: '127.0.0.1', port: 1113 }]
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, hostname as osHostname } from 'node:os';
import { isIP } from 'node:net';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError } from '../../protocol/errors.js';
import { isErrorToken, isToken, replyRuleViolation, type IdentAnswer } from '../../protocol/index.js';
import type { ListenTarget } from '../server/server.js';
import { TRANSPORT_CHOICES, type TransportChoice } from '../server/transport/index.js';
import { SERVER_DEFAULTS } from '../server/server.js';

export { ConfigError };

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export interface HostPort {
  hostname: string;
  port: number;
}

/** Parses "ADDR:PORT", "[IPv6]:PORT" or ":PORT"/"PORT" (all addresses, dual-stack). */
export function parseHostPort(value: string, flag: string): HostPort {
  const match =
    /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value) ??
    (/^\d{1,5}$/.test(value) ? [value, undefined, '', value] : null);
  const port = match ? Number(match[3]) : NaN;
  if (!match || !Number.isInteger(port) || port > 65535) {
    throw new ConfigError(`${flag} ${JSON.stringify(value)}: expected ADDRESS:PORT, e.g. 127.0.0.1:113 or [::]:113`);
  }
  const hostname = match[1] ?? (match[2] || '::');
  if (match[1] !== undefined && isIP(hostname) !== 6)
    throw new ConfigError(`${flag} ${JSON.stringify(value)}: ${hostname} is not an IPv6 address`);
  return { hostname, port };
}

function positiveInt(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < 1)
    throw new ConfigError(`${flag} ${JSON.stringify(value)}: expected a positive whole number`);
  return Number(value);
}

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

function parse<T extends ParseArgsConfig['options']>(argv: string[], options: T, positionals = false) {
  try {
    return parseArgs({
      args: argv,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: positionals,
      strict: true,
    });
  } catch (error) {
    throw new ConfigError((error as Error).message.split('\n')[0]!.replace(/\. To specify .*$/, ''));
  }
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
  const { values, positionals } = parse(
    argv,
    { port: { type: 'string', short: 'p' }, timeout: { type: 'string', short: 't' }, json: { type: 'boolean' } },
    true,
  );
  if (values.help)
    return { help: true, hostname: '', port: 0, serverPort: 0, clientPort: 0, timeoutMs: 0, json: false };
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
  const port = positiveInt(values.port as string | undefined, '--port', 113);
  if (port > 65535) throw new ConfigError(`--port ${port}: expected 1..65535`);
  return {
    help: false,
    hostname: host.replace(/^\[(.*)\]$/, '$1'),
    port,
    serverPort,
    clientPort,
    timeoutMs: positiveInt(values.timeout as string | undefined, '--timeout', 10_000),
    json: Boolean(values.json),
  };
}

// ---------------------------------------------------------------- serve

export type Answerer =
  | { kind: 'fixed'; answer: IdentAnswer }
  | { kind: 'embedded'; policyFile: string | undefined }
  | { kind: 'upstream'; upstream: URL; secrets: string[]; connections: number; holdMs: number };

export interface ServeConfig {
  help: boolean;
  listen: ListenTarget[];
  answerer: Answerer;
  gatewayName: string;
  deadlineMs: number;
  fallback: IdentAnswer;
  ownerLookup: 'auto' | 'on' | 'off';
  hideErrors: boolean;
  runAs: string | undefined;
  metrics: HostPort | undefined;
  logLevel: LogLevel;
  limits: {
    idleTimeoutMs: number;
    maxLineOctets: number;
    maxInFlight: number;
    maxQueriesPerConnection: number;
    maxConnections: number;
    maxConnectionsPerAddress: number;
  };
  shutdownGraceMs: number;
  /** Gateway processes sharing the listeners (node:cluster); 1 = this process alone. */
  workers: number;
  /** How connections are read and written (IdentServerOptions.transport). */
  transport: TransportChoice;
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

const serveOptions = {
  listen: { type: 'string', multiple: true, short: 'l' },
  reply: { type: 'string' },
  opsys: { type: 'string' },
  charset: { type: 'string' },
  'reply-error': { type: 'string' },
  policy: { type: 'string' },
  upstream: { type: 'string' },
  'secret-file': { type: 'string' },
  'gateway-name': { type: 'string' },
  deadline: { type: 'string' },
  'fallback-error': { type: 'string' },
  'owner-lookup': { type: 'string' },
  'upstream-connections': { type: 'string' },
  'batch-hold': { type: 'string' },
  'hide-errors': { type: 'boolean' },
  'run-as': { type: 'string' },
  metrics: { type: 'string' },
  'log-level': { type: 'string' },
  'idle-timeout': { type: 'string' },
  'max-line': { type: 'string' },
  'max-in-flight': { type: 'string' },
  'max-queries': { type: 'string' },
  'max-connections': { type: 'string' },
  'max-per-address': { type: 'string' },
  'shutdown-grace': { type: 'string' },
  workers: { type: 'string' },
  transport: { type: 'string' },
} as const;

export const SERVE_DEFAULTS = { listen: '[::]:113', deadlineMs: 1_000, shutdownGraceMs: 5_000 } as const;

/** How the gateway talks to an upstream worker: HTTP connections at most, and how long a partial batch waits (gateway/resolver/resolver.ts). */
export const UPSTREAM_DEFAULTS = { connections: 4, holdMs: 20 } as const;

export function parseServeArgs(argv: string[], env: NodeJS.ProcessEnv = {}, pid = 0, primaryPid?: number): ServeConfig {
  const { values: v } = parse(argv, serveOptions);
  const values = v as Record<string, string | string[] | boolean | undefined>;
  const str = (name: keyof typeof serveOptions) => values[name] as string | undefined;

  const fromSystemd = systemdListenTargets(env, pid, primaryPid);
  const listenFlags = (values.listen as string[] | undefined) ?? [];
  const inherited = inheritedListenTargets(env, primaryPid);
  let listen: ListenTarget[] =
    fromSystemd.length > 0 && listenFlags.length === 0
      ? fromSystemd
      : (listenFlags.length ? listenFlags : [SERVE_DEFAULTS.listen]).map((value) => parseHostPort(value, '--listen'));

  let transport = (str('transport') ?? 'auto') as TransportChoice;
  if (!TRANSPORT_CHOICES.includes(transport))
    throw new ConfigError(`--transport ${JSON.stringify(transport)}: expected ${TRANSPORT_CHOICES.join(', ')}`);
  if (inherited.length > 0) {
    // The supervisor bound the listeners for the native transport: this worker adopts them.
    listen = inherited;
    transport = 'native';
  }

  const modes = [
    str('reply') !== undefined && '--reply',
    str('reply-error') !== undefined && '--reply-error',
    str('upstream') !== undefined && '--upstream',
  ].filter(Boolean);
  if (modes.length > 1) throw new ConfigError(`${modes.join(' and ')} cannot be combined: pick one way to answer`);
  if (str('policy') !== undefined && modes.length)
    throw new ConfigError(`--policy applies to the embedded worker only; it cannot be combined with ${modes[0]}`);
  if ((str('opsys') !== undefined || str('charset') !== undefined) && str('reply') === undefined)
    throw new ConfigError('--opsys and --charset go with --reply NAME');

  let answerer: Answerer;
  if (str('reply') !== undefined) {
    const answer: IdentAnswer = {
      type: 'USERID',
      opsys: str('opsys') ?? 'OTHER',
      charset: str('charset'),
      userId: str('reply')!,
    };
    const violation = replyRuleViolation(answer);
    if (violation) throw new ConfigError(`--reply ${JSON.stringify(str('reply'))}: ${violation}`);
    answerer = { kind: 'fixed', answer };
  } else if (str('reply-error') !== undefined) {
    const error = str('reply-error')!;
    if (!isErrorToken(error))
      throw new ConfigError(
        `--reply-error ${JSON.stringify(error)}: expected INVALID-PORT, NO-USER, HIDDEN-USER, UNKNOWN-ERROR or X-<token>`,
      );
    answerer = { kind: 'fixed', answer: { type: 'ERROR', error } };
  } else if (str('upstream') !== undefined) {
    let upstream: URL;
    try {
      upstream = new URL(str('upstream')!);
    } catch {
      throw new ConfigError(
        `--upstream ${JSON.stringify(str('upstream'))}: not a URL; expected e.g. http://127.0.0.1:8787 or https://identgate.example.workers.dev`,
      );
    }
    if (upstream.protocol !== 'http:' && upstream.protocol !== 'https:')
      throw new ConfigError(`--upstream ${upstream}: only http: and https: are supported`);
    const connections = positiveInt(
      str('upstream-connections'),
      '--upstream-connections',
      UPSTREAM_DEFAULTS.connections,
    );
    if (connections > 1024) throw new ConfigError(`--upstream-connections ${connections}: at most 1024`);
    const hold = str('batch-hold') ?? String(UPSTREAM_DEFAULTS.holdMs);
    if (!/^\d+$/.test(hold))
      throw new ConfigError(
        `--batch-hold ${JSON.stringify(hold)}: expected a whole number of milliseconds (0 = no holding)`,
      );
    if (str('secret-file') === undefined)
      throw new ConfigError(
        '--upstream needs --secret-file FILE (the shared HMAC secret; secrets are never taken from the command line)',
      );
    answerer = {
      kind: 'upstream',
      upstream,
      secrets: readSecretFile(str('secret-file')!),
      connections,
      holdMs: Number(hold),
    };
  } else {
    for (const flag of ['upstream-connections', 'batch-hold'] as const) {
      if (str(flag) !== undefined) throw new ConfigError(`--${flag} goes with --upstream URL`);
    }
    if (str('secret-file') !== undefined) throw new ConfigError('--secret-file goes with --upstream URL');
    answerer = { kind: 'embedded', policyFile: str('policy') };
  }

  const fallbackError = str('fallback-error') ?? 'UNKNOWN-ERROR';
  if (!isErrorToken(fallbackError))
    throw new ConfigError(
      `--fallback-error ${JSON.stringify(fallbackError)}: expected NO-USER, HIDDEN-USER, UNKNOWN-ERROR or X-<token>`,
    );

  const ownerLookup = str('owner-lookup') ?? 'auto';
  if (ownerLookup !== 'auto' && ownerLookup !== 'on' && ownerLookup !== 'off')
    throw new ConfigError(`--owner-lookup ${JSON.stringify(ownerLookup)}: expected auto, on or off`);

  const logLevel = (str('log-level') ?? 'info') as LogLevel;
  if (!LOG_LEVELS.includes(logLevel))
    throw new ConfigError(`--log-level ${JSON.stringify(logLevel)}: expected one of ${LOG_LEVELS.join(', ')}`);

  const gatewayName = str('gateway-name') ?? osHostname();
  if (!isToken(gatewayName) || gatewayName.length > 128)
    throw new ConfigError(
      `--gateway-name ${JSON.stringify(gatewayName)}: expected 1..64 printable characters without ':', ',' or white space`,
    );

  const runAs = str('run-as');
  if (runAs !== undefined && !/^[A-Za-z0-9_.][A-Za-z0-9_.-]*(?::[A-Za-z0-9_.][A-Za-z0-9_.-]*)?$/.test(runAs))
    throw new ConfigError(`--run-as ${JSON.stringify(runAs)}: expected USER or USER:GROUP`);

  const maxLineOctets = positiveInt(str('max-line'), '--max-line', SERVER_DEFAULTS.maxLineOctets);
  return {
    help: Boolean(values.help),
    listen,
    answerer,
    gatewayName,
    deadlineMs: positiveInt(str('deadline'), '--deadline', SERVE_DEFAULTS.deadlineMs),
    fallback: { type: 'ERROR', error: fallbackError },
    ownerLookup,
    hideErrors: Boolean(values['hide-errors']),
    runAs,
    metrics: str('metrics') === undefined ? undefined : parseHostPort(str('metrics')!, '--metrics'),
    logLevel,
    limits: {
      idleTimeoutMs: positiveInt(str('idle-timeout'), '--idle-timeout', SERVER_DEFAULTS.idleTimeoutMs),
      maxLineOctets,
      maxInFlight: positiveInt(str('max-in-flight'), '--max-in-flight', SERVER_DEFAULTS.maxInFlight),
      maxQueriesPerConnection: positiveInt(
        str('max-queries'),
        '--max-queries',
        SERVER_DEFAULTS.maxQueriesPerConnection,
      ),
      maxConnections: positiveInt(str('max-connections'), '--max-connections', SERVER_DEFAULTS.maxConnections),
      maxConnectionsPerAddress: positiveInt(
        str('max-per-address'),
        '--max-per-address',
        SERVER_DEFAULTS.maxConnectionsPerAddress,
      ),
    },
    shutdownGraceMs: positiveInt(str('shutdown-grace'), '--shutdown-grace', SERVE_DEFAULTS.shutdownGraceMs),
    workers: str('workers') === 'auto' ? availableParallelism() : positiveInt(str('workers'), '--workers', 1),
    transport,
  };
}

// ---------------------------------------------------------------- worker

export interface WorkerConfig {
  help: boolean;
  listen: HostPort;
  policyFile: string | undefined;
  secrets: string[];
  adminTokens: string[];
  logLevel: LogLevel;
}

export function parseWorkerArgs(argv: string[]): WorkerConfig {
  const { values } = parse(argv, {
    listen: { type: 'string', short: 'l' },
    policy: { type: 'string' },
    'secret-file': { type: 'string' },
    'admin-token-file': { type: 'string' },
    'log-level': { type: 'string' },
  });
  const help = Boolean(values.help);
  if (help)
    return {
      help,
      listen: { hostname: '', port: 0 },
      policyFile: undefined,
      secrets: [],
      adminTokens: [],
      logLevel: 'info',
    };
  const secretFile = values['secret-file'] as string | undefined;
  if (secretFile === undefined)
    throw new ConfigError(
      'identgate worker needs --secret-file FILE (the HMAC secret gateways sign with; one per line)',
    );
  const logLevel = ((values['log-level'] as string | undefined) ?? 'info') as LogLevel;
  if (!LOG_LEVELS.includes(logLevel))
    throw new ConfigError(`--log-level ${JSON.stringify(logLevel)}: expected one of ${LOG_LEVELS.join(', ')}`);
  const adminFile = values['admin-token-file'] as string | undefined;
  return {
    help,
    listen: parseHostPort((values.listen as string | undefined) ?? '127.0.0.1:8787', '--listen'),
    policyFile: values.policy as string | undefined,
    secrets: readSecretFile(secretFile),
    adminTokens: adminFile === undefined ? [] : readSecretFile(adminFile, '--admin-token-file'),
    logLevel,
  };
}
