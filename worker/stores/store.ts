/**
 * The interface every policy store sits behind (memory, KV, file): current() gives the policy with
 * its compiled form and a content-derived version (a short SHA-256 of its JSON); replace() stores a new one.
 */
import { compilePolicy, type CompiledPolicy, type Policy } from '../policy/index.js';
import { IdentgateError } from '../../protocol/errors.js';

/** One policy as served: what it is, its compiled form and its version. */
export interface PolicySnapshot {
  readonly version: string;
  readonly policy: Policy;
  readonly compiled: CompiledPolicy;
}

export interface PolicyStore {
  /** The policy to decide with now. */
  current(): Promise<PolicySnapshot>;
  /**
   * The same policy when the store holds it without waiting (the memory and
   * file stores once loaded), else undefined; lets an in-process caller
   * decide synchronously.
   */
  peek?(): PolicySnapshot | undefined;
  /**
   * Stores a policy that has already passed parsePolicy; answers its version. `document` is the JSON it was parsed
   * from: a store that keeps text (a file, KV) writes that, so an operator's key order and layout survive a PUT.
   */
  replace(policy: Policy, document?: unknown): Promise<{ version: string }>;
}

/** Thrown when a store cannot produce any policy (for example, unreadable KV value and no earlier one). */
export class PolicyStoreError extends IdentgateError {
  readonly code = 'ERR_POLICY_STORE';
  override readonly userError = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PolicyStoreError';
  }
}

const encoder = new TextEncoder();

/**
 * The version of a policy: the first 16 hex digits of SHA-256 over its JSON text.
 *
 * @example
 * await policyVersion(DEFAULT_POLICY) === await policyVersion(structuredClone(DEFAULT_POLICY)); // true
 */
export async function policyVersion(policy: Policy): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', encoder.encode(JSON.stringify(policy)));
  let hex = '';
  for (const byte of new Uint8Array(digest).subarray(0, 8)) hex += byte.toString(16).padStart(2, '0');
  return hex;
}

/**
 * Compiles a policy and names its version. Pass `previous` to reuse its compiled
 * form when the version did not change (compile once per version).
 *
 * @example
 * let snapshot = await snapshotOf(policy);
 * snapshot = await snapshotOf(samePolicyReadAgain, snapshot); // not compiled again
 */
export async function snapshotOf(policy: Policy, previous?: PolicySnapshot): Promise<PolicySnapshot> {
  const version = await policyVersion(policy);
  if (previous && previous.version === version) return previous;
  return { version, policy, compiled: await compilePolicy(policy) };
}
