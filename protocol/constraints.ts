/**
 * What a rule allows an app to answer for its users (a claimed ident, a forwarded reply, an oidentd
 * user file's `reply`): pure, so the worker and the gateway run the same check (docs/internals.md).
 */

export interface IdentConstraints {
  /** Globs (`*` any run, `?` one character); the name must match one. Absent: any name. */
  readonly pattern?: string[] | undefined;
  /** Globs the name must match none of. */
  readonly deny?: string[] | undefined;
  /** Longest name accepted, in characters (1..512). */
  readonly maxLength: number;
  /** true: the name may be another local account's (checked by the gateway only). */
  readonly localNames: boolean;
}

/** The default maximum length of an app-supplied ident: IRC servers keep about 10; 32 leaves room. */
export const DEFAULT_IDENT_MAX_LENGTH = 32;

export interface CompiledConstraints {
  readonly source: IdentConstraints;
  readonly pattern: RegExp | null;
  readonly deny: RegExp | null;
}

function globSource(glob: string): string {
  let source = '';
  for (const char of glob) {
    if (char === '*') source += '[^]*';
    else if (char === '?') source += '[^]';
    else if ('\\^$.+()[]{}|/'.includes(char)) source += `\\${char}`;
    else source += char;
  }
  return source;
}

function globList(globs: readonly string[] | undefined): RegExp | null {
  if (globs === undefined || globs.length === 0) return null;
  return new RegExp(`^(?:${globs.map(globSource).join('|')})$`, 'u');
}

/** Compiles constraints once (per policy version, or per delegated answer at the gateway). */
export function compileConstraints(source: IdentConstraints): CompiledConstraints {
  return { source, pattern: globList(source.pattern), deny: globList(source.deny) };
}

// Controls, white space (an IRC user name cannot carry it), DEL; ':' would confuse RFC 1413 readers.
// eslint-disable-next-line no-control-regex
const FORBIDDEN = /[\x00-\x20\x7f\u0085\u00a0\u1680\u2000-\u200b\u2028\u2029\u202f\u205f\u3000\ufeff:]/u;

/**
 * Why `name` may not be answered under these constraints, or undefined when it may.
 *
 * @example
 * identViolation(compileConstraints({ maxLength: 4, localNames: false }), 'alice') // 'is longer than 4 characters'
 */
export function identViolation(constraints: CompiledConstraints, name: string): string | undefined {
  if (name.length === 0) return 'is empty';
  if ([...name].length > constraints.source.maxLength)
    return `is longer than ${constraints.source.maxLength} characters`;
  if (FORBIDDEN.test(name)) return 'contains white space, a control character or ":"';
  if (constraints.pattern !== null && !constraints.pattern.test(name))
    return `does not match the rule's pattern (${JSON.stringify(constraints.source.pattern)})`;
  if (constraints.deny !== null && constraints.deny.test(name))
    return `is denied by the rule (${JSON.stringify(constraints.source.deny)})`;
  return undefined;
}
