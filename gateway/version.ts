/**
 * identgate's own version (package.json), for `--version` and the User-Agent a gateway sends its
 * worker (which keeps it in its fleet list). Read once, on first use.
 *
 * @example
 * identgateVersion() // "0.1.0"
 */
import { readFileSync } from 'node:fs';

let version: string | undefined;

export function identgateVersion(): string {
  if (version === undefined) {
    // package.json is two folders up from dist/gateway/, one from the sources' gateway/.
    for (const candidate of ['../../package.json', '../package.json']) {
      try {
        const pkg = JSON.parse(readFileSync(new URL(candidate, import.meta.url), 'utf8')) as {
          name?: string;
          version?: string;
        };
        if (pkg.name === 'identgate' && typeof pkg.version === 'string') {
          version = pkg.version;
          break;
        }
      } catch {
        // not this one
      }
    }
    version ??= 'unknown';
  }
  return version;
}

/** What a gateway sends as User-Agent: `identgate/0.1.0 (node v20.20.2)`. */
export function userAgent(): string {
  return `identgate/${identgateVersion()} (node ${process.version})`;
}
