/**
 * Resolver construction: unusable options fail at once with a one-line
 * ResolverConfigError that says what to fix, before any socket is opened.
 */
import { describe, expect, it } from 'vitest';
import { createEmbeddedResolver } from '../../../gateway/resolver/embedded.js';
import { createHttpResolver } from '../../../gateway/resolver/http.js';
import { ResolverConfigError } from '../../../gateway/resolver/types.js';

function configError(make: () => unknown): ResolverConfigError {
  try {
    make();
  } catch (error) {
    expect(error).toBeInstanceOf(ResolverConfigError);
    expect((error as ResolverConfigError).code).toBe('ERR_RESOLVER_CONFIG');
    expect((error as Error).message).not.toContain('\n');
    return error as ResolverConfigError;
  }
  throw new Error('expected a ResolverConfigError');
}

describe('resolver configuration', () => {
  it('rejects a negative or non-numeric batch hold', () => {
    expect(
      configError(() => createHttpResolver({ upstream: 'http://127.0.0.1:1', secrets: ['s'], holdMs: -1 })).message,
    ).toContain('batch hold');
    expect(
      configError(() => createHttpResolver({ upstream: 'http://127.0.0.1:1', secrets: ['s'], holdMs: Number.NaN }))
        .message,
    ).toContain('batch hold');
  });

  it('rejects an upstream that is not a URL', () => {
    expect(configError(() => createHttpResolver({ upstream: 'worker:8787/x y', secrets: ['s'] })).message).toMatch(
      /not a URL|http/,
    );
    expect(configError(() => createHttpResolver({ upstream: 'not a url', secrets: ['s'] })).message).toContain(
      'is not a URL',
    );
  });

  it('rejects an upstream that is not http or https', () => {
    expect(configError(() => createHttpResolver({ upstream: 'ftp://127.0.0.1/', secrets: ['s'] })).message).toContain(
      'http:// or https://',
    );
  });

  it('rejects an upstream with credentials, a query or a fragment', () => {
    configError(() => createHttpResolver({ upstream: 'http://user:pw@127.0.0.1:8787', secrets: ['s'] }));
    configError(() => createHttpResolver({ upstream: 'http://127.0.0.1:8787/?a=1', secrets: ['s'] }));
    configError(() => createHttpResolver({ upstream: 'http://127.0.0.1:8787/#x', secrets: ['s'] }));
  });

  it('rejects an empty list of secrets and names the flag to pass', () => {
    expect(configError(() => createHttpResolver({ upstream: 'http://127.0.0.1:8787', secrets: [] })).message).toBe(
      'no secret configured: pass --secret-file',
    );
    expect(configError(() => createHttpResolver({ upstream: 'http://127.0.0.1:8787', secrets: [''] })).message).toBe(
      'no secret configured: pass --secret-file',
    );
  });

  it('rejects a deadline, batch size or connection count out of range', () => {
    const base = { upstream: 'http://127.0.0.1:8787', secrets: ['s'] };
    configError(() => createHttpResolver({ ...base, deadlineMs: 0 }));
    configError(() => createHttpResolver({ ...base, deadlineMs: Number.NaN }));
    configError(() => createHttpResolver({ ...base, maxBatch: 0 }));
    configError(() => createHttpResolver({ ...base, maxBatch: 257 }));
    configError(() => createHttpResolver({ ...base, connections: 0 }));
    configError(() => createHttpResolver({ ...base, connections: 1.5 }));
  });

  it('rejects a fallback answer that breaks an RFC 1413 reply rule', () => {
    const message = configError(() =>
      createHttpResolver({
        upstream: 'http://127.0.0.1:8787',
        secrets: ['s'],
        fallback: { type: 'USERID', opsys: 'UNIX', userId: 'a\r\nb' },
      }),
    ).message;
    expect(message).toContain('fallback');
    configError(() =>
      createEmbeddedResolver({
        app: { fetch: () => new Response('') },
        fallback: { type: 'ERROR', error: 'NOPE' as 'NO-USER' },
      }),
    );
  });

  it('accepts a valid configuration and closes without having connected', async () => {
    const resolver = createHttpResolver({
      upstream: new URL('https://identgate.example.workers.dev/base/'),
      secrets: ['s'],
      deadlineMs: 500,
      maxBatch: 256,
    });
    await resolver.close();
  });
});
