/**
 * The owner lookup's error vocabulary: everything createOwnerLookup throws and
 * everything a lookup reports through `onError` is an OwnerLookupError whose
 * `code` says which (undici-style: callers branch on codes, never on message
 * text). A lookup itself never rejects: on any of these faults it answers
 * null (the ident reply then says UNKNOWN-ERROR or NO-USER, by policy).
 *
 * @example
 * createOwnerLookup('auto', { onError: (err) => { if (err.code === 'ERR_OWNER_LOOKUP_TIMEOUT') metrics.slowLookups++ } })
 */

export type OwnerLookupErrorCode =
  /** Mode 'on' (or a forced method) on a platform or machine that cannot look owners up. */
  | 'ERR_OWNER_LOOKUP_UNSUPPORTED'
  /** A lookup did not finish within its time bound; it answered null. */
  | 'ERR_OWNER_LOOKUP_TIMEOUT'
  /** The sock_diag helper failed to start, died, or answered something unreadable. */
  | 'ERR_OWNER_LOOKUP_HELPER'
  /** The kernel refused a sock_diag request, or /proc/net/tcp could not be read. */
  | 'ERR_OWNER_LOOKUP_KERNEL';

export class OwnerLookupError extends Error {
  readonly code: OwnerLookupErrorCode;
  constructor(code: OwnerLookupErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'OwnerLookupError';
    this.code = code;
  }
}
