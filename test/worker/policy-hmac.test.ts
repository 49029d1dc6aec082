import { createHash, createHmac } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createHmacSha256, sha256 } from '../../worker/policy/hmac.js';

const hex = (octets: Uint8Array) => Buffer.from(octets).toString('hex');
const utf8 = (text: string) => new TextEncoder().encode(text);

describe('pure-JS HMAC-SHA256', () => {
  it('matches the RFC 4231 test case 2', () => {
    expect(hex(createHmacSha256(utf8('Jefe'))(utf8('what do ya want for nothing?')))).toBe(
      '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
    );
  });

  it('matches SHA-256 of the empty message', () => {
    expect(hex(sha256(new Uint8Array(0)))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });

  it('agrees with node:crypto for any key and message, across block boundaries', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.uint8Array({ maxLength: 300 }), (key, message) => {
        expect(hex(createHmacSha256(key)(message))).toBe(createHmac('sha256', key).update(message).digest('hex'));
        expect(hex(sha256(message))).toBe(createHash('sha256').update(message).digest('hex'));
      }),
      { numRuns: 300 },
    );
  });
});
