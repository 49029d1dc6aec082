/**
 * The one error base: every error class identgate exports extends IdentgateError, has one code from the single list,
 * no code is used by two unrelated classes or by none, and the CLI tells user errors from bugs by `instanceof`.
 */
import { describe, expect, it } from 'vitest';
import { isUserError } from '../../gateway/cli/commands.js';
import * as gateway from '../../gateway/index.js';
import * as identgate from '../../index.js';
import * as protocol from '../../protocol/index.js';
import * as worker from '../../worker/index.js';
import * as cluster from '../../gateway/daemon/cluster.js';
import * as owner from '../../gateway/owner/index.js';
import * as userFiles from '../../gateway/delegate/oidentd-conf.js';
import * as resolverTypes from '../../gateway/resolver/types.js';
import * as privileges from '../../gateway/daemon/privileges.js';
import * as nodeWorker from '../../worker/node.js';
import { ConfigError, IDENTGATE_ERROR_CODES, IdentgateError } from '../../protocol/errors.js';

type ErrorClass = abstract new (...args: never[]) => IdentgateError;

const query = { serverPort: 6193, clientPort: 23 };
/** Constructor arguments for the classes that take more than a message. */
const ARGUMENTS: Record<string, unknown[]> = {
  IdentTimeoutError: [query, 1000],
  IdentConnectError: ['::1', 113, { cause: new Error('ECONNREFUSED') }],
  IdentMalformedReplyError: ['not a reply', 'garbage'],
  IdentPortMismatchError: [query, { serverPort: 1, clientPort: 2 }, '1, 2 : ERROR : NO-USER'],
  LineTooLongError: [1000],
  PolicyError: [[{ path: 'rules[0]', message: 'bad' }]],
  ResolverFailure: ['refused', 'connect ECONNREFUSED'],
  UserFileSyntaxError: [3, 'unterminated string'],
  ClaimsApiError: [403, 'no_connection', 'not yours'],
  WorkerListenError: ['127.0.0.1:8787', Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE' })],
};

function errorClasses(): Map<string, ErrorClass> {
  const classes = new Map<string, ErrorClass>();
  for (const module of [
    identgate,
    protocol,
    gateway,
    owner,
    worker,
    cluster,
    resolverTypes,
    userFiles,
    privileges,
    nodeWorker,
  ]) {
    for (const [name, value] of Object.entries(module)) {
      if (typeof value === 'function' && value.prototype instanceof Error) classes.set(name, value as ErrorClass);
    }
  }
  return classes;
}

/** One instance of every concrete class (abstract bases have no code). */
function instances(): [string, IdentgateError][] {
  const made: [string, IdentgateError][] = [];
  for (const [name, Class] of errorClasses()) {
    if (!(Class.prototype instanceof IdentgateError)) continue;
    const error = new (Class as unknown as new (...args: unknown[]) => IdentgateError)(...(ARGUMENTS[name] ?? ['x']));
    if (error.code !== undefined) made.push([name, error]);
  }
  return made;
}

describe('identgate errors', () => {
  it('has every exported error class extend IdentgateError', () => {
    const outside = [...errorClasses()]
      .filter(([, Class]) => Class !== IdentgateError && !(Class.prototype instanceof IdentgateError))
      .map(([name]) => name)
      // The worker's HTTP rejection (a status and a wire error code for the response body), not an identgate failure.
      .filter((name) => name !== 'RequestRejected');
    expect(outside).toEqual([]);
  });

  it('gives every error a code from the single list and its class name as name', () => {
    for (const [name, error] of instances()) {
      expect(IDENTGATE_ERROR_CODES, name).toContain(error.code);
      expect(error.name, name).toBe(name);
    }
  });

  it('uses each code in exactly one class (a subclass sharing its parent code on purpose aside), and every code', () => {
    const byCode = new Map<string, Set<string>>();
    for (const [name, error] of instances()) {
      // IdentPortMismatchError is an IdentMalformedReplyError: same code, told apart by instanceof.
      if (error instanceof identgate.IdentMalformedReplyError && name !== 'IdentMalformedReplyError') continue;
      byCode.set(error.code, (byCode.get(error.code) ?? new Set()).add(name));
    }
    expect([...byCode].filter(([, names]) => names.size > 1)).toEqual([]);
    // A code no class raises is dead.
    expect(IDENTGATE_ERROR_CODES.filter((code) => !byCode.has(code))).toEqual([]);
  });

  it('prints user errors as one line by instanceof and userError, never by code or message', () => {
    expect(isUserError(new ConfigError('--listen "x": expected ADDRESS:PORT'))).toBe(true);
    expect(isUserError(new gateway.ResolverConfigError('deadline must be positive'))).toBe(true);
    expect(isUserError(new identgate.IdentBindError('cannot listen on [::]:113: in use'))).toBe(true);
    expect(isUserError(new worker.PolicyError([{ path: 'default', message: 'missing' }]))).toBe(true);
    // A handler's bug and look-alikes keep their stack.
    expect(isUserError(new identgate.IdentHandlerFailedError('handler failed'))).toBe(false);
    expect(isUserError(Object.assign(new Error('looks like ours'), { code: 'ERR_IDENTGATE_CONFIG' }))).toBe(false);
    expect(isUserError(Object.assign(new Error('x'), { name: 'ConfigError' }))).toBe(false);
  });
});
