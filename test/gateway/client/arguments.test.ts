/**
 * IdentClient argument checking: query ports outside 1..65535 fail at once with a TypeError or RangeError,
 * malformed constructor options with a ConfigError (as in every identgate module), each naming the argument,
 * before any connection is made.
 */
import { describe, expect, it } from 'vitest';
import { ident, IdentClient } from '../../../gateway/client/client.js';
import { ConfigError } from '../../../protocol/errors.js';
import { closedPort } from './fake-server.js';

describe('IdentClient arguments', () => {
  const outOfRange: [string, number, number][] = [
    ['serverPort 0', 0, 23],
    ['clientPort 0', 23, 0],
    ['serverPort 65536', 65536, 23],
    ['clientPort 65536', 23, 65536],
    ['a fractional port', 1.5, 23],
    ['a negative port', -1, 23],
    ['NaN', Number.NaN, 23],
  ];
  for (const [what, serverPort, clientPort] of outOfRange) {
    it(`rejects ${what} with a RangeError naming the argument`, async () => {
      // Nothing listens there: a connect attempt would fail with a different error.
      const client = new IdentClient({ port: await closedPort(), timeout: 1_000 });
      const asked = client.ident(serverPort, clientPort);
      await expect(asked).rejects.toThrow(RangeError);
      await expect(asked).rejects.toThrow(serverPort === 23 ? /clientPort/ : /serverPort/);
      await expect(asked).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
      expect(client.pendingQueries).toBe(0);
      await client.close();
    });
  }

  it('rejects a port given as a string with a TypeError', async () => {
    const client = new IdentClient({ port: await closedPort(), timeout: 1_000 });
    const asked = client.ident('6193' as unknown as number, 23);
    await expect(asked).rejects.toThrow(TypeError);
    await expect(asked).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await client.close();
  });

  it('accepts ports 1 and 65535', async () => {
    const client = new IdentClient({ port: await closedPort(), timeout: 1_000 });
    // They pass validation and get as far as connecting.
    await expect(client.ident(1, 65535)).rejects.toMatchObject({ code: 'ERR_IDENT_CONNECT' });
    await expect(client.ident(65535, 1)).rejects.toMatchObject({ code: 'ERR_IDENT_CONNECT' });
    await client.close();
  });

  it('uses 127.0.0.1, port 113 and a 10 s timeout by default', () => {
    const client = new IdentClient();
    expect([client.hostname, client.port, client.timeout, client.localAddress]).toEqual([
      '127.0.0.1',
      113,
      10_000,
      undefined,
    ]);
  });

  it('refuses a server port outside 1..65535', () => {
    expect(() => new IdentClient({ port: 0 })).toThrow(ConfigError);
    expect(() => new IdentClient({ port: 70000 })).toThrow(/port must be an integer in 1\.\.65535/);
  });

  it('refuses a timeout that is not a positive number of milliseconds', () => {
    expect(() => new IdentClient({ timeout: 0 })).toThrow(ConfigError);
    expect(() => new IdentClient({ timeout: -5 })).toThrow(ConfigError);
    expect(() => new IdentClient({ timeout: Number.POSITIVE_INFINITY })).toThrow(ConfigError);
    expect(() => new IdentClient({ timeout: '10' as unknown as number })).toThrow(
      /timeout must be a number of milliseconds/,
    );
  });

  it('refuses an empty hostname or localAddress', () => {
    expect(() => new IdentClient({ hostname: '' })).toThrow(ConfigError);
    expect(() => new IdentClient({ localAddress: '' })).toThrow(ConfigError);
  });

  it('makes the one-call helper reject bad ports before connecting', async () => {
    await expect(ident({ port: await closedPort(), serverPort: 0, clientPort: 23 })).rejects.toThrow(RangeError);
    await expect(ident({ port: await closedPort(), serverPort: 23, clientPort: 65536 })).rejects.toThrow(RangeError);
  });
});
