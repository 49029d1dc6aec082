/**
 * Name globs (gateway, owner names) and integer ranges (ports, uids), each compiled once into a
 * cheap test: a Set plus at most one anchored RegExp, or a flat array of inclusive bounds.
 */

/** A compiled list of names and globs. */
export interface NameMatcher {
  readonly literals: ReadonlySet<string>;
  readonly pattern: RegExp | null;
  /** The list as written, for explanations. */
  readonly source: readonly string[];
}

/** True when a name pattern contains glob characters. */
export function isGlob(pattern: string): boolean {
  return pattern.includes('*') || pattern.includes('?');
}

/** Translates one glob into the body of an anchored RegExp (u flag). */
export function globToRegExpSource(glob: string): string {
  let source = '';
  for (const char of glob) {
    if (char === '*') source += '[^]*';
    else if (char === '?') source += '[^]';
    else if ('\\^$.+()[]{}|/'.includes(char)) source += `\\${char}`;
    else source += char;
  }
  return source;
}

/**
 * Compiles a list of names and globs.
 *
 * @example
 * matchesNames(compileNames(['adm?n', 'root']), 'admin') // true
 */
export function compileNames(patterns: readonly string[]): NameMatcher {
  const literals = new Set<string>();
  const globs: string[] = [];
  for (const pattern of patterns) {
    if (isGlob(pattern)) globs.push(globToRegExpSource(pattern));
    else literals.add(pattern);
  }
  const pattern = globs.length === 0 ? null : new RegExp(`^(?:${globs.join('|')})$`, 'u');
  return { literals, pattern, source: patterns };
}

export function matchesNames(matcher: NameMatcher, name: string): boolean {
  return matcher.literals.has(name) || (matcher.pattern !== null && matcher.pattern.test(name));
}

const RANGE = /^([0-9]{1,10})(?:-([0-9]{1,10}))?$/;

/**
 * Parses `n` or `"lo-hi"` (inclusive) within [min, max].
 * Returns the bounds, or a message saying what is wrong.
 */
export function parseRange(value: number | string, min: number, max: number): [number, number] | string {
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < min || value > max)
      return `must be an integer in ${min}..${max}, got ${value}`;
    return [value, value];
  }
  const found = RANGE.exec(value);
  if (!found) return `not a number or range like "${min}-${max}": ${JSON.stringify(value)}`;
  const lo = Number(found[1]);
  const hi = found[2] === undefined ? lo : Number(found[2]);
  if (lo < min || hi > max) return `range ${value} is outside ${min}..${max}`;
  if (lo > hi) return `range ${value} is empty (start is after end)`;
  return [lo, hi];
}

/** Flattens parsed ranges into [lo0, hi0, lo1, hi1, ...], merged and sorted. */
export function compileRanges(ranges: readonly (readonly [number, number])[]): Float64Array {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const merged: number[] = [];
  for (const [lo, hi] of sorted) {
    const last = merged.length - 1;
    if (last > 0 && lo <= merged[last]! + 1) merged[last] = Math.max(merged[last]!, hi);
    else merged.push(lo, hi);
  }
  return Float64Array.from(merged);
}

export function inRanges(ranges: Float64Array, value: number): boolean {
  for (let i = 0; i < ranges.length; i += 2) {
    if (value < ranges[i]!) return false; // sorted: no later range can hold it
    if (value <= ranges[i + 1]!) return true;
  }
  return false;
}
