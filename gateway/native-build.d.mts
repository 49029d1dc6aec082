/** Types of native-build.mjs (plain JavaScript: it runs before TypeScript is compiled). */
export function fortifyLevel(cc?: string): 2 | 3;
export function cFlags(options: { cc?: string; output: 'shared' | 'executable'; sanitize?: boolean }): string[];
export function compile(cc: string, args: string[], out: string): { path: string | null; reason: string | null };
export function nodeIncludeDir(): string | null;
