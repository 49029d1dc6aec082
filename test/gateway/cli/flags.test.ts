/**
 * The flag tables, without spawning processes: parseServeArgs turns every serve flag into its typed value or a
 * one-line ConfigError naming it; `--help` and docs/operations.md come from the same rows and agree with them.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SERVE_USAGE } from '../../../gateway/cli/commands.js';
import { parseQueryArgs, parseServeArgs, parseWorkerArgs } from '../../../gateway/cli/config.js';
import { SERVE_FLAGS, withServeFlagTable } from '../../../gateway/cli/flags.js';
import { RESOLVER_DEFAULTS } from '../../../gateway/resolver/types.js';
import { SERVER_DEFAULTS } from '../../../gateway/server/server.js';
import { ConfigError } from '../../../protocol/errors.js';
import { ROOT } from '../../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'identgate-flags-'));
const secretFile = join(dir, 'secret');
writeFileSync(secretFile, '# rotation\n0123456789abcdef0123\nfedcba9876543210fedc\n');
const upstream = ['--upstream', 'http://127.0.0.1:8787', '--secret-file', secretFile];

function refusal(argv: string[]): string {
  try {
    parseServeArgs(argv);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error(`accepted ${argv.join(' ')}`);
}

describe('parseServeArgs', () => {
  it('applies the defaults of every component when no flag is given', () => {
    const config = parseServeArgs([]);
    expect(config).toMatchObject({
      help: false,
      listen: [{ hostname: '::', port: 113 }],
      answerer: { kind: 'embedded', policyFile: undefined },
      gatewayName: hostname(),
      deadlineMs: RESOLVER_DEFAULTS.deadlineMs,
      fallback: { type: 'ERROR', error: 'UNKNOWN-ERROR' },
      ownerLookup: 'auto',
      hideErrors: false,
      runAs: undefined,
      metrics: undefined,
      logLevel: 'info',
      shutdownGraceMs: 5_000,
      workers: 1,
      transport: 'auto',
    });
    expect(config.limits).toEqual({
      idleTimeoutMs: SERVER_DEFAULTS.idleTimeoutMs,
      maxLineOctets: SERVER_DEFAULTS.maxLineOctets,
      maxInFlight: SERVER_DEFAULTS.maxInFlight,
      maxQueriesPerConnection: SERVER_DEFAULTS.maxQueriesPerConnection,
      maxConnections: SERVER_DEFAULTS.maxConnections,
      maxConnectionsPerAddress: SERVER_DEFAULTS.maxConnectionsPerAddress,
      perAddressPrefix6: SERVER_DEFAULTS.perAddressPrefix6,
    });
  });

  it('parses --listen, repeatable, IPv4, [IPv6] and :PORT', () => {
    expect(parseServeArgs(['-l', '127.0.0.1:1113', '--listen', '[::1]:0', '--listen', ':9']).listen).toEqual([
      { hostname: '127.0.0.1', port: 1113 },
      { hostname: '::1', port: 0 },
      { hostname: '::', port: 9 },
    ]);
    expect(refusal(['--listen', '127.0.0.1'])).toBe(
      '--listen "127.0.0.1": expected ADDRESS:PORT, e.g. 127.0.0.1:113 or [::]:113',
    );
    expect(refusal(['--listen', '[nothost]:1'])).toBe('--listen "[nothost]:1": nothost is not an IPv6 address');
    expect(refusal(['--listen', ':65536'])).toBe('--listen ":65536": port 65536 is out of range (0..65535)');
  });

  it('says an address that is not an IP address is not one, instead of resolving it', () => {
    expect(refusal(['--listen', '300.1.1.1:1113'])).toBe(
      '--listen "300.1.1.1:1113": 300.1.1.1 is not an IP address (e.g. 127.0.0.1, 0.0.0.0 or [::1])',
    );
    expect(refusal(['--metrics', 'localhost:9100'])).toMatch(/^--metrics "localhost:9100": localhost is not an IP/);
    expect(refusal(['--listen', '127.0.0.1:1234567'])).toMatch(/port 1234567 is out of range \(0\.\.65535\)$/);
  });

  it('refuses the same --listen address twice, however it is spelled', () => {
    expect(refusal(['--listen', '127.0.0.1:1113', '--listen', '127.0.0.1:1113'])).toBe(
      '--listen 127.0.0.1:1113: the same address is given twice',
    );
    expect(refusal(['--listen', '[::1]:1113', '--listen', '[0:0::1]:1113'])).toBe(
      '--listen [0:0::1]:1113: the same address is given twice (as [::1]:1113)',
    );
    expect(refusal(['--listen', ':1113', '--listen', '0.0.0.0:1113'])).toMatch(/already covers IPv4 \(dual-stack\)/);
    expect(parseServeArgs(['--listen', '127.0.0.1:0', '--listen', '127.0.0.1:0']).listen).toHaveLength(2);
  });

  it('takes systemd sockets when LISTEN_PID is this process and no --listen is given', () => {
    expect(parseServeArgs([], { LISTEN_PID: '42', LISTEN_FDS: '2' }, 42).listen).toEqual([{ fd: 3 }, { fd: 4 }]);
    expect(parseServeArgs([], { LISTEN_PID: '41', LISTEN_FDS: '2' }, 42).listen).toEqual([
      { hostname: '::', port: 113 },
    ]);
    expect(() => parseServeArgs([], { LISTEN_PID: '42', LISTEN_FDS: 'x' }, 42)).toThrow(ConfigError);
  });

  it('answers with --reply NAME, --opsys and --charset', () => {
    expect(parseServeArgs(['--reply', 'nobody']).answerer).toEqual({
      kind: 'fixed',
      answer: { type: 'USERID', opsys: 'OTHER', charset: undefined, userId: 'nobody' },
    });
    expect(parseServeArgs(['--reply', 'jörg', '--opsys', 'UNIX', '--charset', 'UTF-8']).answerer).toMatchObject({
      answer: { opsys: 'UNIX', charset: 'UTF-8', userId: 'jörg' },
    });
    expect(refusal(['--reply', 'a:b\r'])).toMatch(/^--reply "a:b\\r": /);
    expect(refusal(['--opsys', 'UNIX'])).toBe('--opsys and --charset go with --reply NAME');
  });

  it('answers with --reply-error TOKEN and refuses a non-token', () => {
    expect(parseServeArgs(['--reply-error', 'HIDDEN-USER']).answerer).toEqual({
      kind: 'fixed',
      answer: { type: 'ERROR', error: 'HIDDEN-USER' },
    });
    expect(refusal(['--reply-error', 'nope'])).toBe(
      '--reply-error "nope": expected INVALID-PORT, NO-USER, HIDDEN-USER, UNKNOWN-ERROR or X-<token>',
    );
  });

  it('allows one way to answer only', () => {
    expect(refusal(['--reply', 'a', '--reply-error', 'NO-USER'])).toBe(
      '--reply and --reply-error cannot be combined: pick one way to answer',
    );
    expect(refusal(['--reply', 'a', '--policy', 'p.json'])).toBe(
      '--policy applies to the embedded worker only; it cannot be combined with --reply',
    );
    expect(parseServeArgs(['--policy', 'p.json']).answerer).toEqual({ kind: 'embedded', policyFile: 'p.json' });
  });

  it('asks --upstream URL with the secrets of --secret-file, --upstream-connections and --batch-hold', () => {
    expect(parseServeArgs([...upstream, '--upstream-connections', '8', '--batch-hold', '0']).answerer).toEqual({
      kind: 'upstream',
      upstream: new URL('http://127.0.0.1:8787'),
      secrets: ['0123456789abcdef0123', 'fedcba9876543210fedc'],
      connections: 8,
      holdMs: 0,
      staleMaxAgeMs: 3_600_000,
      staleRefreshMs: 5_000,
    });
    expect(parseServeArgs(upstream).answerer).toMatchObject({
      connections: RESOLVER_DEFAULTS.connections,
      holdMs: RESOLVER_DEFAULTS.holdMs,
    });
    expect(refusal(['--upstream', 'not a url', '--secret-file', secretFile])).toMatch(
      /^--upstream "not a url": not a URL/,
    );
    expect(refusal(['--upstream', 'ftp://x', '--secret-file', secretFile])).toBe(
      '--upstream ftp://x/: only http: and https: are supported',
    );
    expect(refusal(['--upstream', 'http://127.0.0.1:8787'])).toMatch(/^--upstream needs --secret-file FILE/);
    expect(refusal([...upstream, '--upstream-connections', '1025'])).toBe('--upstream-connections 1025: at most 1024');
    expect(refusal([...upstream, '--batch-hold=-1'])).toBe(
      '--batch-hold "-1": expected a whole number of milliseconds (0 = no holding)',
    );
    for (const flag of ['--upstream-connections', '--batch-hold', '--secret-file'])
      expect(refusal([flag, flag === '--secret-file' ? secretFile : '4'])).toBe(`${flag} goes with --upstream URL`);
  });

  it('keeps a last-good policy for --stale-policy-max-age seconds (0 = off), refreshed every --stale-policy-refresh ms', () => {
    const args = [...upstream, '--stale-policy-max-age', '0', '--stale-policy-refresh', '100'];
    expect(parseServeArgs(args).answerer).toMatchObject({ staleMaxAgeMs: 0, staleRefreshMs: 100 });
    expect(refusal([...upstream, '--stale-policy-max-age', '1h'])).toBe(
      '--stale-policy-max-age "1h": expected a whole number of seconds (0 = off)',
    );
    expect(refusal([...upstream, '--stale-policy-refresh', '20000'])).toBe(
      '--stale-policy-refresh 20000: expected 100..15000 ms (a change must reach the gateway within 15 s)',
    );
    for (const flag of ['--stale-policy-max-age', '--stale-policy-refresh'])
      expect(refusal([flag, '600'])).toBe(`${flag} goes with --upstream URL`);
  });

  it('refuses a secret file that is missing, empty or holds a short secret', () => {
    const empty = join(dir, 'empty');
    writeFileSync(empty, '# nothing\n\n');
    const short = join(dir, 'short');
    writeFileSync(short, 'tooshort\n');
    expect(refusal(['--upstream', 'http://x', '--secret-file', join(dir, 'missing')])).toMatch(
      /--secret-file .*missing: cannot read it \(ENOENT\)/,
    );
    expect(refusal(['--upstream', 'http://x', '--secret-file', empty])).toMatch(/the file holds no secret/);
    expect(refusal(['--upstream', 'http://x', '--secret-file', short])).toMatch(/at least 16 characters/);
  });

  it('parses every positive whole-number flag and refuses anything else', () => {
    const numeric: [string, (config: ReturnType<typeof parseServeArgs>) => number][] = [
      ['--deadline', (c) => c.deadlineMs],
      ['--idle-timeout', (c) => c.limits.idleTimeoutMs],
      ['--max-line', (c) => c.limits.maxLineOctets],
      ['--max-in-flight', (c) => c.limits.maxInFlight],
      ['--max-queries', (c) => c.limits.maxQueriesPerConnection],
      ['--max-connections', (c) => c.limits.maxConnections],
      ['--max-per-address', (c) => c.limits.maxConnectionsPerAddress],
      ['--per-address-prefix6', (c) => c.limits.perAddressPrefix6],
      ['--shutdown-grace', (c) => c.shutdownGraceMs],
      ['--workers', (c) => c.workers],
    ];
    for (const [flag, read] of numeric) {
      expect(read(parseServeArgs([flag, '7'])), flag).toBe(7);
      for (const bad of ['0', '-1', '1.5', 'ten', ''])
        expect(refusal([`${flag}=${bad}`]), flag).toBe(
          `${flag} ${JSON.stringify(bad)}: expected a positive whole number`,
        );
    }
    expect(parseServeArgs(['--workers', 'auto']).workers).toBeGreaterThanOrEqual(1);
    expect(parseServeArgs(['--per-address-prefix6', '128']).limits.perAddressPrefix6).toBe(128);
    expect(refusal(['--per-address-prefix6', '129'])).toBe(
      '--per-address-prefix6 "129": expected a prefix length from 1 to 128',
    );
  });

  it('parses the choice flags and names the choices when refusing', () => {
    expect(parseServeArgs(['--owner-lookup', 'off']).ownerLookup).toBe('off');
    expect(refusal(['--owner-lookup', 'maybe'])).toBe('--owner-lookup "maybe": expected auto, on or off');
    expect(parseServeArgs(['--transport', 'node']).transport).toBe('node');
    expect(refusal(['--transport', 'uring'])).toBe('--transport "uring": expected auto, native, node');
    expect(parseServeArgs(['--log-level', 'debug']).logLevel).toBe('debug');
    expect(refusal(['--log-level', 'loud'])).toBe(
      '--log-level "loud": expected one of fatal, error, warn, info, debug, trace, silent',
    );
    expect(parseServeArgs(['--fallback-error', 'X-BUSY']).fallback).toEqual({ type: 'ERROR', error: 'X-BUSY' });
    expect(refusal(['--fallback-error', 'busy'])).toMatch(/^--fallback-error "busy": expected NO-USER/);
  });

  it('parses --gateway-name, --run-as, --metrics and --hide-errors', () => {
    const config = parseServeArgs(['--gateway-name', 'web1', '--run-as', 'identd:nogroup', '--metrics', ':9113']);
    expect([config.gatewayName, config.runAs, config.metrics]).toEqual([
      'web1',
      'identd:nogroup',
      { hostname: '::', port: 9113 },
    ]);
    expect(parseServeArgs(['--hide-errors']).hideErrors).toBe(true);
    expect(refusal(['--gateway-name', 'a b'])).toMatch(/^--gateway-name "a b": expected 1\.\.64 printable/);
    expect(refusal(['--gateway-name', 'x'.repeat(65)])).toMatch(/^--gateway-name "x+": expected 1\.\.64 printable/);
    expect(refusal(['--run-as', 'root;id'])).toBe('--run-as "root;id": expected USER or USER:GROUP');
    expect(refusal(['--metrics', 'nowhere'])).toMatch(/^--metrics "nowhere": expected ADDRESS:PORT/);
  });

  it('refuses unknown flags, missing values and positionals in one line', () => {
    expect(refusal(['--nope'])).toBe("Unknown option '--nope' (see 'identgate serve --help')");
    expect(refusal(['--deadline'])).toMatch(/^Option '--deadline <value>' argument missing/);
    expect(refusal(['stray'])).toMatch(/^Unexpected argument 'stray'/);
    expect(parseServeArgs(['-h']).help).toBe(true);
  });
});

describe('parseQueryArgs and parseWorkerArgs', () => {
  it('parses a query with --port, --timeout and --json', () => {
    expect(parseQueryArgs(['[::1]', '6193, 23', '-p', '1113', '--timeout', '500', '--json'])).toEqual({
      help: false,
      hostname: '::1',
      port: 1113,
      serverPort: 6193,
      clientPort: 23,
      timeoutMs: 500,
      json: true,
    });
    expect(parseQueryArgs(['h', '1,2'])).toMatchObject({ port: 113, timeoutMs: 10_000, json: false });
    expect(() => parseQueryArgs(['h', '1,2', '--port', '70000'])).toThrow('--port 70000: expected 1..65535');
    expect(() => parseQueryArgs(['h', '0,2'])).toThrow(/^ports "0,2": expected SERVERPORT,CLIENTPORT/);
  });

  it('parses the worker flags and needs --secret-file', () => {
    expect(parseWorkerArgs(['--secret-file', secretFile, '--policy', 'p.json'])).toMatchObject({
      listen: { hostname: '127.0.0.1', port: 8787 },
      policyFile: 'p.json',
      secrets: ['0123456789abcdef0123', 'fedcba9876543210fedc'],
      adminTokens: [],
      logLevel: 'info',
    });
    expect(() => parseWorkerArgs([])).toThrow(/^identgate worker needs --secret-file FILE/);
  });
});

describe('the serve flag table', () => {
  it('is what --help lists, every flag once', () => {
    for (const name of Object.keys(SERVE_FLAGS)) {
      expect(SERVE_USAGE.match(new RegExp(`^ {2}(?:-\\w, | {4})--${name}(?= |$)`, 'gm')), name).toHaveLength(1);
    }
  });

  it('is what docs/operations.md lists, and so is the worker table: regenerating them changes nothing (npm run docs:flags)', () => {
    const docs = readFileSync(join(ROOT, 'docs/operations.md'), 'utf8');
    expect(withServeFlagTable(docs)).toBe(docs);
  });
});
