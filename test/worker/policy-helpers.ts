/**
 * Shared builders for the policy engine tests: a lookup request with
 * overridable facts, and a one-rule policy compiler.
 */
import type { LookupRequest } from '../../protocol/wire.js';
import {
  compilePolicy,
  parsePolicy,
  type CompiledPolicy,
  type PolicyAction,
  type PolicyMatch,
} from '../../worker/policy/index.js';

export interface Facts {
  gateway?: string;
  serverAddress?: string;
  clientAddress?: string;
  serverPort?: number;
  clientPort?: number;
  owner?: { uid: number; userName: string | null } | null;
}

/** alice (uid 1000) on 198.51.100.1:6193, asked about by 192.0.2.7 through gateway gw-eu-1. */
export function request(facts: Facts = {}): LookupRequest {
  return {
    v: 1,
    id: 'q-1',
    gateway: facts.gateway ?? 'gw-eu-1',
    query: { serverPort: facts.serverPort ?? 6193, clientPort: facts.clientPort ?? 23 },
    connection: {
      localAddress: facts.serverAddress ?? '198.51.100.1',
      localPort: 113,
      remoteAddress: facts.clientAddress ?? '192.0.2.7',
      remotePort: 40000,
    },
    owner: facts.owner === undefined ? { uid: 1000, userName: 'alice' } : facts.owner,
  };
}

/** A policy whose only rule "r" has `match` and answers HIDDEN-USER; the default answers NO-USER. */
export function oneRule(
  match: PolicyMatch,
  action: PolicyAction = { error: 'HIDDEN-USER' },
  extra: Record<string, unknown> = {},
): CompiledPolicy {
  return compilePolicy(
    parsePolicy({
      version: 1,
      rules: [{ name: 'r', match, action, ...extra }],
      default: { action: { error: 'NO-USER' } },
    }),
  );
}

export const KEY = 'test-key-0123456789abcdef';
