/**
 * The owner lookup's errors: everything createOwnerLookup throws and a lookup reports through `onError` is an
 * OwnerLookupError, one class per failure with one `code`. A lookup itself never rejects: on any fault it answers null.
 *
 * @example
 * createOwnerLookup('auto', { onError: (err) => { if (err.code === 'ERR_OWNER_LOOKUP_TIMEOUT') metrics.slowLookups++ } })
 */
import { IdentgateError, type ErrorCodeOf } from '../../protocol/errors.js';

export type OwnerLookupErrorCode = OwnerLookupError['code'];

/** The base of the owner lookup's errors. Each says what an operator can check, so none keeps a stack. */
export abstract class OwnerLookupError extends IdentgateError {
  abstract override readonly code: ErrorCodeOf<'owner'>;
  override readonly userError = true;
}

/** Mode 'on' (or a forced method) on a platform or machine that cannot look owners up. */
export class OwnerLookupUnsupportedError extends OwnerLookupError {
  readonly code = 'ERR_OWNER_LOOKUP_UNSUPPORTED';
}

/** A lookup did not finish within its time bound; it answered null. */
export class OwnerLookupTimeoutError extends OwnerLookupError {
  readonly code = 'ERR_OWNER_LOOKUP_TIMEOUT';
}

/** The sock_diag helper failed to start, died, or answered something unreadable. */
export class OwnerLookupHelperError extends OwnerLookupError {
  readonly code = 'ERR_OWNER_LOOKUP_HELPER';
}

/** The kernel refused a sock_diag request, or /proc/net/tcp could not be read. */
export class OwnerLookupKernelError extends OwnerLookupError {
  readonly code = 'ERR_OWNER_LOOKUP_KERNEL';
}
