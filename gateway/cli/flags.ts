/**
 * Every command's flags, one row each: the parseArgs options, the `--help` text and docs/operations.md's flag table
 * (`npm run docs:flags`) all come from these tables. A row's `parse` turns the text into a typed value or throws a
 * ConfigError naming the flag; rules between flags are in config.ts.
 */
import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import { isErrorToken, isToken, type ErrorToken } from '../../protocol/index.js';
import { ConfigError } from '../../protocol/errors.js';
import { CLAIMS_DEFAULTS } from '../claims/registry.js';
import { parseForwardCidr } from '../delegate/forward.js';
import { RESOLVER_DEFAULTS } from '../resolver/types.js';
import { LAST_GOOD_DEFAULTS } from '../resolver/last-good.js';
import { PER_ADDRESS_BURST_FACTOR, SERVER_DEFAULTS } from '../server/server.js';
import { TRANSPORT_CHOICES, type TransportChoice } from '../server/transport/index.js';
import { AUDIT_RETENTION_DAYS } from '../../worker/audit/retention.js';
import { parseAddressBlock, type AddressBlock } from '../nat/address-block.js';

export interface Flag<T = unknown> {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  readonly multiple?: boolean;
  /** The value's name in help and docs: `--deadline MS`. */
  readonly placeholder?: string;
  /** The value when the flag is not given (help and docs show it); none: undefined, or decided in config.ts. */
  readonly default?: T;
  /** How help and docs show the default, when not String(default). */
  readonly defaultText?: string;
  /** One line (or a few, split by \n) for `--help`. */
  readonly help: string;
  /** The docs table's text, when it says more than `help`. */
  readonly docs?: string;
  readonly section: string;
  /** Text to value; throws ConfigError naming `flag`. Without it the text itself (or the boolean). */
  readonly parse?: (value: string, flag: string) => T;
}

export type FlagTable = Readonly<Record<string, Flag>>;

/** The typed values of a table's flags: what `parse` returns, undefined where the flag was not given. */
export type FlagValues<F extends FlagTable> = {
  -readonly [N in keyof F]:
    | (F[N] extends { multiple: true } ? FlagValue<F[N]>[] : FlagValue<F[N]>)
    | (F[N] extends { default: unknown } ? never : undefined);
};
type FlagValue<F> = F extends { parse: (value: string, flag: string) => infer T }
  ? T
  : F extends { type: 'boolean' }
    ? boolean
    : string;

// ---------------------------------------------------------------- value parsers

export interface HostPort {
  hostname: string;
  port: number;
}

/**
 * Parses "ADDR:PORT", "[IPv6]:PORT" or ":PORT"/"PORT" (all addresses, dual-stack). ADDR is an IP address (a name
 * would be resolved at bind time, and a typo would only show there as a resolver error).
 */
export function parseHostPort(value: string, flag: string): HostPort {
  const match =
    /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d+)$/.exec(value) ?? (/^\d+$/.test(value) ? [value, undefined, '', value] : null);
  if (!match) {
    throw new ConfigError(`${flag} ${JSON.stringify(value)}: expected ADDRESS:PORT, e.g. 127.0.0.1:113 or [::]:113`);
  }
  const port = Number(match[3]);
  if (port > 65535)
    throw new ConfigError(`${flag} ${JSON.stringify(value)}: port ${match[3]} is out of range (0..65535)`);
  const hostname = match[1] ?? (match[2] || '::');
  if (match[1] !== undefined && isIP(hostname) !== 6)
    throw new ConfigError(`${flag} ${JSON.stringify(value)}: ${hostname} is not an IPv6 address`);
  if (match[1] === undefined && isIP(hostname) === 0)
    throw new ConfigError(
      `${flag} ${JSON.stringify(value)}: ${hostname} is not an IP address (e.g. 127.0.0.1, 0.0.0.0 or [::1])`,
    );
  return { hostname, port };
}

export function positiveInt(value: string, flag: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1)
    throw new ConfigError(`${flag} ${JSON.stringify(value)}: expected a positive whole number`);
  return Number(value);
}

function forwardCidr(value: string, flag: string): string {
  try {
    parseForwardCidr(value);
  } catch (error) {
    throw new ConfigError(`${flag} ${(error as Error).message}`);
  }
  return value;
}

function oneOf<const T extends string>(choices: readonly T[], expected = choices.join(', ')) {
  return (value: string, flag: string): T => {
    if (!(choices as readonly string[]).includes(value))
      throw new ConfigError(`${flag} ${JSON.stringify(value)}: expected ${expected}`);
    return value as T;
  };
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const parseLogLevel = oneOf(LOG_LEVELS, `one of ${LOG_LEVELS.join(', ')}`);

function errorToken(expected: string) {
  return (value: string, flag: string): ErrorToken => {
    if (!isErrorToken(value)) throw new ConfigError(`${flag} ${JSON.stringify(value)}: expected ${expected}`);
    return value;
  };
}

function parseUpstream(value: string, flag: string): URL {
  let upstream: URL;
  try {
    upstream = new URL(value);
  } catch {
    throw new ConfigError(
      `${flag} ${JSON.stringify(value)}: not a URL; expected e.g. http://127.0.0.1:8787 or https://identgate.example.workers.dev`,
    );
  }
  if (upstream.protocol !== 'http:' && upstream.protocol !== 'https:')
    throw new ConfigError(`${flag} ${upstream}: only http: and https: are supported`);
  return upstream;
}

/** Days of audit records kept (worker/audit/retention.ts). */
function parseRetention(value: string, flag: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 36_500)
    throw new ConfigError(`${flag} ${JSON.stringify(value)}: expected a whole number of days, 1 to 36500`);
  return Number(value);
}

/** The audit flags, the same for the embedded worker (serve) and the Node worker (docs/audit.md). */
function auditFlags(section: string, where: string) {
  return {
    audit: {
      type: 'string',
      placeholder: 'FILE',
      section,
      help: `${where}record every decision, the assigned idents and the gateway fleet in this\nSQLite file (created and migrated at start; docs/audit.md)`,
      docs: `${where}the audit trail, assigned idents and gateway fleet in this SQLite file ([docs/audit.md](audit.md))`,
    },
    'audit-retention': {
      type: 'string',
      placeholder: 'DAYS',
      default: AUDIT_RETENTION_DAYS,
      section,
      help: 'with --audit: delete records older than DAYS (checked at start and hourly)',
      parse: parseRetention,
    },
  } as const satisfies FlagTable;
}

/** The defaults of `identgate serve` that belong to no other component. */
export const SERVE_DEFAULTS = {
  listen: '[::]:113',
  deadlineMs: RESOLVER_DEFAULTS.deadlineMs,
  shutdownGraceMs: 5_000,
  fallbackError: 'UNKNOWN-ERROR',
  ownerLookup: 'auto',
  natLookup: 'auto',
  logLevel: 'info',
  transport: 'auto',
  workers: 1,
} as const;

// ---------------------------------------------------------------- identgate serve

export const SERVE_FLAGS = {
  reply: {
    type: 'string',
    placeholder: 'NAME',
    section: 'Answering',
    help: 'answer every query with this user id',
  },
  opsys: {
    type: 'string',
    placeholder: 'OS',
    defaultText: 'OTHER',
    section: 'Answering',
    help: "with --reply: the reply's operating system field",
  },
  charset: {
    type: 'string',
    placeholder: 'CS',
    section: 'Answering',
    help: "with --reply: the reply's character set (UTF-8 for a non-ASCII user id)",
  },
  'reply-error': {
    type: 'string',
    placeholder: 'TOKEN',
    section: 'Answering',
    help: 'answer every query with this error (NO-USER, HIDDEN-USER, X-...)',
    parse: errorToken('INVALID-PORT, NO-USER, HIDDEN-USER, UNKNOWN-ERROR or X-<token>'),
  },
  policy: {
    type: 'string',
    placeholder: 'FILE',
    section: 'Answering',
    help: 'the policy of the worker embedded in this process (the default way to answer;\nwithout a file: reveal a found owner, else NO-USER); reloaded on SIGHUP',
    docs: 'the embedded policy worker answers ([docs/policy.md](policy.md)); without a file: reveal a found owner (opsys `UNIX`), else `NO-USER`',
  },
  upstream: {
    type: 'string',
    placeholder: 'URL',
    section: 'Answering',
    help: 'ask the policy worker over HTTP (Workers, wrangler dev, identgate worker)',
    parse: parseUpstream,
  },
  'secret-file': {
    type: 'string',
    placeholder: 'FILE',
    section: 'Answering',
    help: 'with --upstream: the shared HMAC secrets, one per line (the first signs)',
  },
  listen: {
    type: 'string',
    short: 'l',
    multiple: true,
    placeholder: 'ADDR:PORT',
    defaultText: SERVE_DEFAULTS.listen,
    section: 'Listening',
    help: 'repeatable; dual-stack by default. With systemd socket activation (LISTEN_FDS)\nand no --listen, the passed sockets are used',
    docs: 'repeatable; `127.0.0.1:113`, `[::1]:113`, `:113`; with `LISTEN_FDS` and no `--listen`, the passed sockets',
    parse: parseHostPort,
  },
  'run-as': {
    type: 'string',
    placeholder: 'USER[:GROUP]',
    section: 'Listening',
    help: 'switch to this user after binding, before accepting or starting any child\n(start as root; uid 0 and gid 0 are refused)',
    parse: (value, flag) => {
      if (!/^[A-Za-z0-9_.][A-Za-z0-9_.-]*(?::[A-Za-z0-9_.][A-Za-z0-9_.-]*)?$/.test(value))
        throw new ConfigError(`${flag} ${JSON.stringify(value)}: expected USER or USER:GROUP`);
      return value;
    },
  },
  transport: {
    type: 'string',
    placeholder: 'auto|native|node',
    default: SERVE_DEFAULTS.transport,
    section: 'Listening',
    help: 'how connections are read and written: native = libuv through the addon\n(prebuilt, or `identgate build-addons`; about half the CPU per connection),\nnode = node:net; auto = native when the addon is there and loads, else node',
    docs: 'how connections are read and written; see [Transport](#transport)',
    parse: oneOf<TransportChoice>(TRANSPORT_CHOICES),
  },
  'gateway-name': {
    type: 'string',
    placeholder: 'NAME',
    defaultText: 'the host name',
    section: 'Policy worker',
    help: "this host's name in the policy and in the worker's logs",
    parse: (value, flag) => {
      if (!isToken(value))
        throw new ConfigError(
          `${flag} ${JSON.stringify(value)}: expected 1..64 printable characters without ':', ',' or white space`,
        );
      return value;
    },
  },
  deadline: {
    type: 'string',
    placeholder: 'MS',
    default: SERVE_DEFAULTS.deadlineMs,
    section: 'Policy worker',
    help: 'answer within MS of the query, else the fallback',
    parse: positiveInt,
  },
  'fallback-error': {
    type: 'string',
    placeholder: 'TOKEN',
    default: SERVE_DEFAULTS.fallbackError,
    section: 'Policy worker',
    help: 'the answer when the worker fails',
    parse: errorToken('NO-USER, HIDDEN-USER, UNKNOWN-ERROR or X-<token>'),
  },
  'owner-lookup': {
    type: 'string',
    placeholder: 'auto|on|off',
    default: SERVE_DEFAULTS.ownerLookup,
    section: 'Policy worker',
    help: 'find the local owner of the queried connection',
    docs: 'see [Owner lookup](#owner-lookup)',
    parse: oneOf(['auto', 'on', 'off'], 'auto, on or off'),
  },
  'forward-allow': {
    type: 'string',
    multiple: true,
    placeholder: 'CIDR',
    section: 'Policy worker',
    help: "where forward rules may send queries, besides loopback and\nthis host's addresses (repeatable)",
    docs: "where `forward` rules (and `forward` lines of user files) may send queries, besides loopback and this host's own addresses; repeatable. See docs/apps.md",
    parse: forwardCidr,
  },
  'nat-lookup': {
    type: 'string',
    placeholder: 'auto|on|off',
    default: SERVE_DEFAULTS.natLookup,
    section: 'NAT and containers',
    help: 'when no local socket owns the connection, ask connection tracking for the inner\nhost of a translated one (ctnetlink, else /proc/net/nf_conntrack); auto = when available',
    docs: 'see [docs/nat.md](nat.md#the-nat-lookup---nat-lookup-autoonoff)',
    parse: oneOf(['auto', 'on', 'off'], 'auto, on or off'),
  },
  'accept-forwarded-from': {
    type: 'string',
    multiple: true,
    placeholder: 'CIDR',
    section: 'NAT and containers',
    help: "repeatable: queries from these routers (oidentd -f, identgate forward) name this host's\nport and the remote port only; answer for the one connection with those two ports",
    docs: 'repeatable; see [docs/nat.md](nat.md#accepting-forwarded-queries---accept-forwarded-from-cidr) for what is trusted',
    parse: (value, flag): AddressBlock => {
      const block = parseAddressBlock(value);
      if (typeof block === 'string')
        throw new ConfigError(
          `${flag} ${JSON.stringify(value)}: ${block}; expected a router's address or CIDR, e.g. 10.0.0.1 or 10.0.0.0/24`,
        );
      return block;
    },
  },
  'docker-socket': {
    type: 'string',
    placeholder: 'PATH',
    section: 'NAT and containers',
    help: "the Docker Engine API's Unix socket: tell the policy the container holding the\ninner address (name, labels)",
    docs: 'see [docs/nat.md](nat.md#containers---docker-socket-path)',
    parse: (value, flag) => {
      if (value === '') throw new ConfigError(`${flag}: expected a path, e.g. /run/docker.sock`);
      return value;
    },
  },
  'upstream-connections': {
    type: 'string',
    placeholder: 'N',
    default: RESOLVER_DEFAULTS.connections,
    section: 'Policy worker',
    help: 'with --upstream: HTTP connections to the worker at most',
    parse: (value, flag) => {
      const connections = positiveInt(value, flag);
      if (connections > 1024) throw new ConfigError(`${flag} ${connections}: at most 1024`);
      return connections;
    },
  },
  'batch-hold': {
    type: 'string',
    placeholder: 'MS',
    default: RESOLVER_DEFAULTS.holdMs,
    section: 'Policy worker',
    help: 'with --upstream: while a request to the worker is in flight, queries wait up to MS\nto go in one batch before another connection takes them; 0 = never wait',
    parse: (value, flag) => {
      if (!/^\d+$/.test(value))
        throw new ConfigError(
          `${flag} ${JSON.stringify(value)}: expected a whole number of milliseconds (0 = no holding)`,
        );
      return Number(value);
    },
  },
  'stale-policy-max-age': {
    type: 'string',
    placeholder: 'SECONDS',
    default: LAST_GOOD_DEFAULTS.maxAgeMs / 1000,
    section: 'Policy worker',
    help: "with --upstream: keep the worker's policy and, when the worker fails, answer from it\nfor up to SECONDS after the worker last confirmed it; 0 = never (the fallback answers)",
    docs: 'with `--upstream`: the gateway keeps the worker\'s current policy (the rules that can match its name, docs/wire.md "Last-good policy") and, when the worker is down, slow, answers 5xx or an answer that fails its checks, answers from it with the pure evaluator, marked stale (logged, `identgate_stale_answers_total`), for at most this long after the worker last confirmed the policy; then the fallback. Rules that need the pseudonym key or the assignments get the fallback. 0 = off',
    parse: (value, flag) => {
      if (!/^\d+$/.test(value))
        throw new ConfigError(`${flag} ${JSON.stringify(value)}: expected a whole number of seconds (0 = off)`);
      return Number(value);
    },
  },
  'stale-policy-refresh': {
    type: 'string',
    placeholder: 'MS',
    default: LAST_GOOD_DEFAULTS.refreshMs,
    section: 'Policy worker',
    help: 'with --upstream: ask the worker this often whether its policy changed (100..15000)',
    parse: (value, flag) => {
      const ms = positiveInt(value, flag);
      if (ms < 100 || ms > 15_000)
        throw new ConfigError(`${flag} ${ms}: expected 100..15000 ms (a change must reach the gateway within 15 s)`);
      return ms;
    },
  },
  'hide-errors': {
    type: 'boolean',
    section: 'Policy worker',
    help: 'answer UNKNOWN-ERROR instead of any specific error (RFC 1413 §6)',
  },
  ...auditFlags('Policy worker', 'embedded worker: '),
  'idle-timeout': {
    type: 'string',
    placeholder: 'MS',
    default: SERVER_DEFAULTS.idleTimeoutMs,
    section: 'Limits',
    help: 'close a connection that makes no progress this long: no input and nothing\nin flight, or replies it does not read',
    docs: 'a connection that makes no progress for this long (no input accepted, no output drained) is closed, whatever it has pending, unless a query is still in the handler (the query deadline bounds that) (RFC 1413: 60–180 s); one sweep per server looks every min(1 s, timeout/4), so it closes up to that much later',
    parse: positiveInt,
  },
  'max-line': {
    type: 'string',
    placeholder: 'OCTETS',
    default: SERVER_DEFAULTS.maxLineOctets,
    section: 'Limits',
    help: 'close a connection sending a longer line',
    docs: 'a longer line: the lines before it are answered, then the connection is closed',
    parse: positiveInt,
  },
  'max-in-flight': {
    type: 'string',
    placeholder: 'N',
    default: SERVER_DEFAULTS.maxInFlight,
    section: 'Limits',
    help: 'stop reading a connection with N unanswered queries',
    docs: 'unanswered queries on a connection: the server stops reading it until replies go out',
    parse: positiveInt,
  },
  'max-queries': {
    type: 'string',
    placeholder: 'N',
    default: SERVER_DEFAULTS.maxQueriesPerConnection,
    section: 'Limits',
    help: 'close a connection after N queries',
    docs: 'the first N queries of a connection are answered, then it is closed',
    parse: positiveInt,
  },
  'max-connections': {
    type: 'string',
    placeholder: 'N',
    default: SERVER_DEFAULTS.maxConnections,
    section: 'Limits',
    help: 'connections at once; at the cap the stalest idle one is evicted',
    docs: 'connections at once: at the cap the idle one that has gone longest without progress is evicted (idle: nothing in flight, or replies waiting for a client that does not read them); if all are busy the new one is refused',
    parse: positiveInt,
  },
  'max-per-address': {
    type: 'string',
    placeholder: 'N',
    default: SERVER_DEFAULTS.maxConnectionsPerAddress,
    section: 'Limits',
    help: `idle connections one address may hold; beyond it a new one takes back that\naddress's longest-held answered one, or is served once (at most ${PER_ADDRESS_BURST_FACTOR}x this\nat once, busy ones included)`,
    docs: 'idle connections one address, or one IPv6 prefix, may hold; see [Per-address accounting](#per-address-accounting)',
    parse: positiveInt,
  },
  'per-address-prefix6': {
    type: 'string',
    placeholder: 'BITS',
    default: SERVER_DEFAULTS.perAddressPrefix6,
    section: 'Limits',
    help: 'IPv6 clients count per prefix of this length',
    docs: 'IPv6 clients count per prefix of this length (1–128; 128 = per address)',
    parse: (value, flag) => {
      const length = positiveInt(value, flag);
      if (length > 128)
        throw new ConfigError(`${flag} ${JSON.stringify(value)}: expected a prefix length from 1 to 128`);
      return length;
    },
  },
  'shutdown-grace': {
    type: 'string',
    placeholder: 'MS',
    default: SERVE_DEFAULTS.shutdownGraceMs,
    section: 'Limits',
    help: 'on SIGTERM, time to answer queries in flight',
    parse: positiveInt,
  },
  workers: {
    type: 'string',
    placeholder: 'N|auto',
    default: SERVE_DEFAULTS.workers,
    section: 'Processes',
    help: 'gateway processes sharing the listeners, to use several cores (auto = one per CPU);\nthe first process supervises, restarts dead workers and serves the summed --metrics',
    docs: 'gateway processes sharing the listeners (`auto` = one per CPU; see the note below)',
    parse: (value, flag) => (value === 'auto' ? 'auto' : positiveInt(value, flag)),
  },
  'claims-socket': {
    type: 'string',
    placeholder: 'PATH|off',
    defaultText: '$RUNTIME_DIRECTORY/claims.sock under systemd, else off',
    section: 'Claims API',
    help: 'serve the claims API (docs/claims.md: apps say which of their users a connection\nis for) on this Unix socket; the default is on only when systemd sets\nRUNTIME_DIRECTORY (the unit: /run/identgate/claims.sock)',
    docs: 'serve the claims API on this Unix socket ([docs/claims.md](claims.md)); on by default only when systemd sets `RUNTIME_DIRECTORY` (the shipped unit: `/run/identgate/claims.sock`); `off` turns it off',
    parse: (value, flag) => {
      if (value === 'off') return value;
      if (!value.startsWith('/'))
        throw new ConfigError(`${flag} ${JSON.stringify(value)}: expected an absolute path (or off)`);
      // sun_path holds 108 octets with its terminating NUL.
      if (Buffer.byteLength(value) > 107)
        throw new ConfigError(`${flag} ${value}: longer than a Unix socket path may be (107 octets)`);
      return value;
    },
  },
  'claims-socket-mode': {
    type: 'string',
    placeholder: 'MODE',
    default: CLAIMS_DEFAULTS.socketMode,
    defaultText: '0666',
    section: 'Claims API',
    help: 'who may connect (every local user by default: each can claim only its own connections)',
    parse: (value, flag) => {
      if (!/^0?[0-7]{3}$/.test(value))
        throw new ConfigError(`${flag} ${JSON.stringify(value)}: expected an octal mode such as 0666 or 0660`);
      return parseInt(value, 8);
    },
  },
  'claims-socket-group': {
    type: 'string',
    placeholder: 'GROUP',
    section: 'Claims API',
    help: "the socket's group (with e.g. --claims-socket-mode 0660)",
    parse: (value, flag) => {
      if (!/^(?:\d+|[A-Za-z0-9_.][A-Za-z0-9_.-]*)$/.test(value))
        throw new ConfigError(`${flag} ${JSON.stringify(value)}: expected a group name or number`);
      return value;
    },
  },
  'claim-wait': {
    type: 'string',
    placeholder: 'MS',
    defaultText: `the smaller of ${CLAIMS_DEFAULTS.waitMs} and half of --deadline`,
    section: 'Claims API',
    help: 'a query covered by a pending hold waits this long for its claim; below --deadline',
    parse: (value, flag) => {
      if (!/^\d+$/.test(value))
        throw new ConfigError(`${flag} ${JSON.stringify(value)}: expected a whole number of milliseconds`);
      return Number(value);
    },
  },
  'claims-per-uid': {
    type: 'string',
    placeholder: 'N',
    default: CLAIMS_DEFAULTS.claimsPerUid,
    section: 'Claims API',
    help: 'live claims one user may hold (beyond: 429)',
    parse: positiveInt,
  },
  console: {
    type: 'string',
    placeholder: 'ADDR:PORT',
    section: 'Console',
    help: 'serve the operator console for the embedded policy on http://ADDR:PORT/admin\n(docs/console.md); needs --admin-token-file',
    parse: parseHostPort,
  },
  'admin-token-file': {
    type: 'string',
    placeholder: 'FILE',
    section: 'Console',
    help: "--console's admin tokens, one per line (at least 16 characters each)",
  },
  metrics: {
    type: 'string',
    placeholder: 'ADDR:PORT',
    section: 'Observability',
    help: 'serve Prometheus metrics on http://ADDR:PORT/metrics',
    parse: parseHostPort,
  },
  'log-level': {
    type: 'string',
    placeholder: 'LEVEL',
    default: SERVE_DEFAULTS.logLevel,
    section: 'Observability',
    help: `${LOG_LEVELS.join('|')}; debug logs every query`,
    parse: parseLogLevel,
  },
} as const satisfies FlagTable;

// ---------------------------------------------------------------- identgate worker

export const WORKER_FLAGS = {
  listen: {
    type: 'string',
    short: 'l',
    placeholder: 'ADDR:PORT',
    default: { hostname: '127.0.0.1', port: 8787 },
    defaultText: '127.0.0.1:8787',
    section: 'Options',
    help: 'where the worker listens',
    parse: parseHostPort,
  },
  policy: {
    type: 'string',
    placeholder: 'FILE',
    section: 'Options',
    help: 'policy JSON (docs/policy.md); reloaded on change and on SIGHUP.\nWithout it: reveal a found owner, else NO-USER',
  },
  'secret-file': {
    type: 'string',
    placeholder: 'FILE',
    section: 'Options',
    help: 'HMAC secrets gateways sign with, one per line (rotation: several lines)',
  },
  'admin-token-file': {
    type: 'string',
    placeholder: 'FILE',
    section: 'Options',
    help: 'bearer tokens for the admin routes (/v1/policy, /v1/explain, /v1/audit, ...)',
  },
  ...auditFlags('Options', ''),
  'log-level': {
    type: 'string',
    placeholder: 'LEVEL',
    default: 'info',
    section: 'Options',
    help: 'every decision is logged at info',
    parse: parseLogLevel,
  },
} as const satisfies FlagTable;

// ---------------------------------------------------------------- identgate audit search

/** The filters are passed on as text: protocol/audit.ts AuditQuerySchema checks them, as the worker does. */
export const AUDIT_SEARCH_FLAGS = {
  worker: {
    type: 'string',
    placeholder: 'URL',
    section: 'Where',
    help: 'ask this policy worker (identgate worker, Workers) with an admin token',
    parse: parseUpstream,
  },
  'admin-token-file': {
    type: 'string',
    placeholder: 'FILE',
    section: 'Where',
    help: 'with --worker: the admin bearer token (its first line)',
  },
  audit: {
    type: 'string',
    placeholder: 'FILE',
    section: 'Where',
    help: 'or read this SQLite audit file directly (serve --audit / worker --audit)',
  },
  'user-id': { type: 'string', placeholder: 'ID', section: 'Filters', help: 'the user id that was answered' },
  'remote-address': { type: 'string', placeholder: 'ADDR', section: 'Filters', help: 'the querier' },
  'server-port': { type: 'string', placeholder: 'PORT', section: 'Filters', help: 'the queried port on this host' },
  'client-port': {
    type: 'string',
    placeholder: 'PORT',
    section: 'Filters',
    help: "the queried port on the querier's side",
  },
  gateway: { type: 'string', placeholder: 'NAME', section: 'Filters', help: 'the gateway that asked' },
  'owner-uid': { type: 'string', placeholder: 'UID', section: 'Filters', help: "the connection's owner" },
  'claim-user': { type: 'string', placeholder: 'USER', section: 'Filters', help: "the claim's user" },
  from: { type: 'string', placeholder: 'TIME', section: 'Filters', help: 'ISO 8601, inclusive (2026-12-04T12:03:00Z)' },
  to: { type: 'string', placeholder: 'TIME', section: 'Filters', help: 'ISO 8601, exclusive' },
  limit: {
    type: 'string',
    placeholder: 'N',
    defaultText: '100',
    section: 'Output',
    help: 'records per page, at most 1000',
  },
  cursor: {
    type: 'string',
    placeholder: 'CURSOR',
    section: 'Output',
    help: 'the page after the one that printed this cursor',
  },
  json: { type: 'boolean', section: 'Output', help: 'print the page as JSON: { "records": [...], "next": ... }' },
} as const satisfies FlagTable;

// ---------------------------------------------------------------- identgate query

export const QUERY_FLAGS = {
  port: {
    type: 'string',
    short: 'p',
    placeholder: 'PORT',
    default: 113,
    section: 'Options',
    help: 'ident server port',
    parse: (value, flag) => {
      const port = positiveInt(value, flag);
      if (port > 65535) throw new ConfigError(`${flag} ${port}: expected 1..65535`);
      return port;
    },
  },
  timeout: {
    type: 'string',
    short: 't',
    placeholder: 'MS',
    default: 10_000,
    section: 'Options',
    help: 'give up after MS milliseconds',
    parse: positiveInt,
  },
  json: { type: 'boolean', section: 'Options', help: 'print the parsed reply as JSON' },
} as const satisfies FlagTable;

// ---------------------------------------------------------------- identgate claim

export const CLAIM_FLAGS = {
  socket: {
    type: 'string',
    short: 's',
    placeholder: 'PATH',
    default: '/run/identgate/claims.sock',
    section: 'Options',
    help: "the gateway's claims socket",
  },
  ident: { type: 'string', placeholder: 'ID', section: 'Options', help: 'with add: the ident to ask for' },
  ttl: {
    type: 'string',
    placeholder: 'MS',
    section: 'Options',
    help: 'with pending: how long the hold lasts',
    parse: positiveInt,
  },
  all: { type: 'boolean', section: 'Options', help: 'with release: all of your claims' },
  json: { type: 'boolean', section: 'Options', help: "print the gateway's JSON answer" },
} as const satisfies FlagTable;

// ---------------------------------------------------------------- parsing, help, docs

/**
 * Parses argv against a table: unknown flags, missing values and bad values are a ConfigError naming the flag.
 *
 * @example
 * const { values } = parseFlags(QUERY_FLAGS, ['--port', '1113', 'localhost', '1,2'], true); // values.port === 1113
 */
export function parseFlags<F extends FlagTable>(
  table: F,
  argv: readonly string[],
  allowPositionals = false,
  command?: string,
): { values: FlagValues<F>; given: ReadonlySet<keyof F & string>; help: boolean; positionals: string[] } {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {
    help: { type: 'boolean', short: 'h' },
  };
  for (const [name, flag] of Object.entries(table)) {
    options[name] = {
      type: flag.type,
      ...(flag.short && { short: flag.short }),
      ...(flag.multiple && { multiple: true }),
    };
  }
  let parsed: { values: Record<string, string | boolean | (string | boolean)[] | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals, strict: true });
  } catch (error) {
    const message = (error as Error).message.split('\n')[0]!.replace(/\. To specify .*$/, '');
    throw new ConfigError(command ? `${message} (see 'identgate ${command} --help')` : message);
  }
  const values: Record<string, unknown> = {};
  const given = new Set<keyof F & string>();
  for (const [name, flag] of Object.entries(table)) {
    const raw = parsed.values[name];
    if (raw !== undefined) given.add(name);
    const one = (value: string | boolean) =>
      typeof value === 'string' && flag.parse ? flag.parse(value, `--${name}`) : value;
    values[name] = raw === undefined ? flag.default : Array.isArray(raw) ? raw.map(one) : one(raw);
  }
  return { values: values as FlagValues<F>, given, help: Boolean(parsed.values.help), positionals: parsed.positionals };
}

function defaultText(flag: Flag): string | undefined {
  return flag.defaultText ?? (flag.default === undefined ? undefined : String(flag.default));
}

function label(name: string, flag: Flag): string {
  const short = flag.short ? `-${flag.short}, ` : '    ';
  return `  ${short}--${name}${flag.placeholder ? ` ${flag.placeholder}` : ''}`;
}

const HELP_COLUMN = 32;

/**
 * The flag part of a command's `--help`: one block per section, in table order, `-h, --help` last.
 *
 * @example
 * flagsHelp(QUERY_FLAGS) // "Options:\n  -p, --port PORT ... ident server port (default 113)\n..."
 */
export function flagsHelp(table: FlagTable): string {
  const sections = new Map<string, string[]>();
  const rows: [string, Flag][] = [
    ...Object.entries(table),
    ['help', { type: 'boolean', short: 'h', section: '', help: 'this text' }],
  ];
  for (const [name, flag] of rows) {
    const section = flag.section || [...sections.keys()].at(-1) || 'Options';
    const shown = defaultText(flag);
    const lines = (shown === undefined ? flag.help : `${flag.help} (default ${shown})`).split('\n');
    const head = label(name, flag);
    const out =
      head.length < HELP_COLUMN - 1
        ? [head.padEnd(HELP_COLUMN) + lines[0]]
        : [head, ' '.repeat(HELP_COLUMN) + lines[0]];
    for (const line of lines.slice(1)) out.push(' '.repeat(HELP_COLUMN) + line);
    sections.set(section, [...(sections.get(section) ?? []), ...out]);
  }
  return [...sections].map(([section, lines]) => `${section}:\n${lines.join('\n')}\n`).join('\n');
}

/** A literal default as code; a described one ("the host name") as text. */
function docsDefault(flag: Flag): string {
  const text = defaultText(flag);
  if (text === undefined) return '—';
  return text.includes(' ') ? cell(text) : `\`${cell(text)}\``;
}

function cell(text: string): string {
  return text.replace(/\n/g, ' ').replace(/\|/g, '\\|');
}

/**
 * A table's rows as docs/operations.md shows them: flag, default, what; one table per section.
 *
 * @example
 * flagsMarkdown(SERVE_FLAGS) // "**Answering**\n\n| flag | default | what |\n|---|---|---|\n| `--reply NAME` | — | ..."
 */
export function flagsMarkdown(table: FlagTable): string {
  const sections = new Map<string, string[]>();
  for (const [name, flag] of Object.entries(table)) {
    const flagText = `${flag.short ? `-${flag.short}, ` : ''}--${name}${flag.placeholder ? ` ${flag.placeholder}` : ''}`;
    const row = `| \`${cell(flagText)}\` | ${docsDefault(flag)} | ${cell(flag.docs ?? flag.help)} |`;
    sections.set(flag.section, [...(sections.get(flag.section) ?? []), row]);
  }
  return [...sections]
    .map(([section, rows]) => `**${section}**\n\n| flag | default | what |\n|---|---|---|\n${rows.join('\n')}\n`)
    .join('\n');
}

export const DOCS_MARKERS = {
  start: '<!-- serve flags: generated from gateway/cli/flags.ts by `npm run docs:flags`; edit there -->',
  end: '<!-- end of serve flags -->',
} as const;

export const WORKER_DOCS_MARKERS = {
  start: '<!-- worker flags: generated from gateway/cli/flags.ts by `npm run docs:flags`; edit there -->',
  end: '<!-- end of worker flags -->',
} as const;

function withTable(markdown: string, markers: { start: string; end: string }, table: FlagTable): string {
  const start = markdown.indexOf(markers.start);
  const end = markdown.indexOf(markers.end);
  if (start < 0 || end < start) throw new ConfigError(`the flag table markers are missing: ${markers.start}`);
  return `${markdown.slice(0, start + markers.start.length)}\n\n${flagsMarkdown(table)}\n${markdown.slice(end)}`;
}

/**
 * docs/operations.md with the serve and the worker flag tables between their markers regenerated from SERVE_FLAGS
 * and WORKER_FLAGS.
 *
 * @example
 * writeFileSync(path, withServeFlagTable(readFileSync(path, 'utf8')));
 */
export function withServeFlagTable(markdown: string): string {
  return withTable(withTable(markdown, DOCS_MARKERS, SERVE_FLAGS), WORKER_DOCS_MARKERS, WORKER_FLAGS);
}

// ---------------------------------------------------------------- identgate build-addons

export const BUILD_ADDONS_FLAGS = {
  out: {
    type: 'string',
    placeholder: 'DIR',
    section: 'Options',
    help: "build into DIR instead of this package's dist/ (where the gateway looks first)",
  },
  cc: { type: 'string', placeholder: 'CC', default: 'cc', section: 'Options', help: 'the C compiler' },
} as const satisfies FlagTable;

// ---------------------------------------------------------------- identgate policy, identgate explain

/** The policy worker to ask, with an admin token (policy get|put, explain). */
function adminFlags(section: string) {
  return {
    worker: {
      type: 'string',
      placeholder: 'URL',
      section,
      help: 'the policy worker (identgate worker, Workers, wrangler dev)',
      parse: parseUpstream,
    },
    'admin-token-file': {
      type: 'string',
      placeholder: 'FILE',
      section,
      help: 'with --worker: the admin bearer token (its first line)',
    },
  } as const satisfies FlagTable;
}

export const POLICY_FLAGS = adminFlags('Options');

function uid(value: string, flag: string): number {
  if (!/^\d+$/.test(value) || Number(value) > 0xffffffff)
    throw new ConfigError(`${flag} ${JSON.stringify(value)}: expected a uid, 0..4294967295`);
  return Number(value);
}

export const EXPLAIN_FLAGS = {
  ...adminFlags('Where'),
  policy: {
    type: 'string',
    placeholder: 'FILE',
    section: 'Where',
    help: 'or decide here, with this policy file (docs/policy.md)',
  },
  gateway: { type: 'string', placeholder: 'NAME', section: 'The question', help: 'the gateway asking' },
  'server-address': {
    type: 'string',
    placeholder: 'ADDR',
    section: 'The question',
    help: "the ident server's own address (the connection's local end)",
  },
  'client-address': {
    type: 'string',
    placeholder: 'ADDR',
    section: 'The question',
    help: "the querier's address",
  },
  'owner-uid': {
    type: 'string',
    placeholder: 'UID',
    section: 'The question',
    help: "the queried connection's owner (default: unknown)",
    parse: uid,
  },
  'owner-name': {
    type: 'string',
    placeholder: 'NAME',
    section: 'The question',
    help: "with --owner-uid: the owner's user name",
  },
  json: { type: 'boolean', section: 'Output', help: "print the explanation as JSON (the worker's answer)" },
} as const satisfies FlagTable;

/** `identgate completion` has no flags but --help. */
export const COMPLETION_FLAGS = {} as const satisfies FlagTable;
