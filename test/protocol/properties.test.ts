import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  formatReply,
  formatRequest,
  LineSplitter,
  LineTooLongError,
  parseReply,
  parseRequest,
  parseRequestOctets,
  replyRuleViolation,
  STANDARD_ERRORS,
  type IdentAnswer,
} from '../../protocol/index.js';

const port = fc.integer({ min: 1, max: 65535 });
const tokenChar = fc.constantFrom(
  ...'!"#$%&\'()*+-./0123456789;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~'.split(''),
);
const token = fc.array(tokenChar, { minLength: 1, maxLength: 64 }).map((chars) => chars.join(''));
// User ids: anything but NUL, CR, LF, not starting with white space; ASCII or with charset UTF-8.
const userId = fc
  .string({ unit: 'grapheme', minLength: 1, maxLength: 120 })
  .map((text) => text.replace(/[\0\r\n]/g, '_').replace(/^[ \t]+/, ''))
  .filter((text) => text.length > 0 && new TextEncoder().encode(text).length <= 512);
const errorToken = fc.oneof(
  fc.constantFrom(...STANDARD_ERRORS),
  fc
    .array(
      tokenChar.filter((c) => c !== ':'),
      { minLength: 1, maxLength: 63 },
    )
    .map((c) => `X${c.join('')}`),
);
const answer: fc.Arbitrary<IdentAnswer> = fc.oneof(
  fc.record({ type: fc.constant('USERID' as const), opsys: token, charset: fc.constant('UTF-8'), userId }),
  fc.record({
    type: fc.constant('USERID' as const),
    opsys: token,
    userId: userId.map((u) => u.replace(/[^\x20-\x7e]/g, 'x')),
  }),
  fc.record({ type: fc.constant('ERROR' as const), error: errorToken }),
) as fc.Arbitrary<IdentAnswer>;

describe('protocol properties', () => {
  it('parseRequest never throws and only accepts ports in 1..65535', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (line) => {
        const query = parseRequest(line);
        if (query) {
          expect(query.serverPort).toBeGreaterThanOrEqual(1);
          expect(query.clientPort).toBeLessThanOrEqual(65535);
        }
      }),
      { numRuns: 5_000 },
    );
  });

  it('parseRequestOctets never throws on arbitrary octets', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (octets) => void parseRequestOctets(octets)),
      { numRuns: 5_000 },
    );
  });

  it('formatRequest then parseRequest gives the ports back, whatever white space surrounds them', () => {
    const ws = fc.array(fc.constantFrom(' ', '\t'), { maxLength: 4 }).map((a) => a.join(''));
    fc.assert(
      fc.property(port, port, ws, ws, ws, ws, (serverPort, clientPort, a, b, c, d) => {
        expect(parseRequest(formatRequest({ serverPort, clientPort }).trimEnd())).toEqual({ serverPort, clientPort });
        expect(parseRequest(`${a}${serverPort}${b},${c}${clientPort}${d}`)).toEqual({ serverPort, clientPort });
      }),
    );
  });

  it('parseReply never throws on arbitrary octets', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (octets) => void parseReply(octets)),
      { numRuns: 5_000 },
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (line) => void parseReply(line)),
      { numRuns: 5_000 },
    );
  });

  it('every valid answer formats to one line that parses back to the same answer', () => {
    fc.assert(
      fc.property(port, port, answer, (serverPort, clientPort, given) => {
        expect(replyRuleViolation(given)).toBeUndefined();
        const line = formatReply({ serverPort, clientPort }, given);
        expect(line.endsWith('\r\n')).toBe(true);
        expect(line.slice(0, -2)).not.toMatch(/[\r\n]/);
        const parsed = parseReply(line.slice(0, -2));
        expect(parsed).toMatchObject({ serverPort, clientPort, type: given.type });
        if (given.type === 'USERID')
          expect(parsed).toMatchObject({
            opsys: given.opsys,
            userId: given.userId,
            charset: given.charset ?? 'US-ASCII',
          });
        else expect(parsed).toMatchObject({ error: given.error });
      }),
      { numRuns: 2_000 },
    );
  });

  it('formatReply throws rather than write an answer that breaks a rule', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 600 }), fc.string({ maxLength: 70 }), (userId, opsys) => {
        const given = { type: 'USERID', opsys, userId } as IdentAnswer;
        if (replyRuleViolation(given)) expect(() => formatReply({ serverPort: 1, clientPort: 2 }, given)).toThrow();
        else expect(formatReply({ serverPort: 1, clientPort: 2 }, given)).toMatch(/^1, 2 : USERID : /);
      }),
      { numRuns: 3_000 },
    );
  });

  it('framing gives the same lines however the input is split, and never a line over the cap', () => {
    const line = fc.string({ maxLength: 30 }).map((s) => s.replace(/[\r\n]/g, ''));
    const ending = fc.constantFrom('\n', '\r\n');
    fc.assert(
      fc.property(
        fc.array(fc.tuple(line, ending), { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (lines, cuts) => {
          const text = lines.map(([l, e]) => l + e).join('');
          const octets = new TextEncoder().encode(text);
          const points = [...new Set(cuts.map((c) => c % (octets.length + 1)))].sort((a, b) => a - b);
          const splitter = new LineSplitter(1000);
          const got: string[] = [];
          let from = 0;
          for (const point of [...points, octets.length]) {
            got.push(...splitter.push(octets.subarray(from, point)).map((l) => new TextDecoder().decode(l)));
            from = point;
          }
          expect(got).toEqual(lines.map(([l]) => l));
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it('the pull and push modes of the splitter agree, including on over-long lines', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 60 }), { maxLength: 12 }), (chunks) => {
        const push = new LineSplitter(40);
        const pull = new LineSplitter(40);
        const outcome = (run: () => Uint8Array[]) => {
          try {
            return run().map((l) => [...l].join(','));
          } catch (error) {
            expect(error).toBeInstanceOf(LineTooLongError);
            return [...(error as LineTooLongError).lines.map((l) => [...l].join(',')), 'TOO-LONG'];
          }
        };
        for (const chunk of chunks) {
          const a = outcome(() => push.push(chunk));
          const b = outcome(() => {
            pull.feed(chunk);
            const lines: Uint8Array[] = [];
            try {
              for (let l = pull.nextLine(); l !== undefined; l = pull.nextLine()) lines.push(l);
            } catch (error) {
              (error as LineTooLongError).lines = lines;
              throw error;
            }
            return lines;
          });
          expect(b).toEqual(a);
          if (a.at(-1) === 'TOO-LONG') return;
        }
      }),
      { numRuns: 2_000 },
    );
  });

  it('a splitter that detaches after each chunk gives the same lines when the caller reuses one buffer for every chunk', () => {
    const line = fc.string({ maxLength: 30 }).map((s) => s.replace(/[\r\n]/g, ''));
    const ending = fc.constantFrom('\n', '\r\n');
    fc.assert(
      fc.property(
        fc.array(fc.tuple(line, ending), { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        fc.nat({ max: 3 }),
        (lines, cuts, taking) => {
          const octets = new TextEncoder().encode(lines.map(([l, e]) => l + e).join(''));
          const points = [...new Set(cuts.map((c) => c % (octets.length + 1)))].sort((a, b) => a - b);
          // One read buffer for every chunk, as the native transport has; it is scribbled over between chunks.
          const shared = new Uint8Array(octets.length + 1);
          const splitter = new LineSplitter(1000);
          const got: string[] = [];
          let from = 0;
          for (const point of [...points, octets.length]) {
            shared.set(octets.subarray(from, point));
            splitter.feed(shared.subarray(0, point - from));
            // Take at most `taking` lines per chunk (a connection with queries in flight leaves the rest).
            for (let i = 0; i < taking; i++) {
              const next = splitter.nextLine();
              if (next === undefined) break;
              got.push(new TextDecoder().decode(next));
            }
            splitter.detach();
            shared.fill(0x0a);
            from = point;
          }
          for (let next = splitter.nextLine(); next !== undefined; next = splitter.nextLine())
            got.push(new TextDecoder().decode(next));
          expect(got).toEqual(lines.map(([l]) => l));
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it('detach keeps nothing when every fed octet was taken', () => {
    const splitter = new LineSplitter();
    splitter.feed(new TextEncoder().encode('1, 2\r\n'));
    expect(new TextDecoder().decode(splitter.nextLine())).toBe('1, 2');
    splitter.detach();
    expect(splitter.pendingOctets).toBe(0);
    expect(splitter.hasLine()).toBe(false);
  });
});
