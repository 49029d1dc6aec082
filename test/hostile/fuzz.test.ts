/**
 * A time-bounded random-input run against one live IdentServer with
 * fast-check: each run sends a byte stream built from a grammar mixing valid
 * queries, near-misses and junk, cut at random points into writes, and either
 * half-closes or ends with a sentinel query. The reply stream must hold exactly
 * one well-formed line per complete request line (in order, ports re-formatted,
 * never echoed), or stop at an over-long line and close. Afterwards the server
 * holds no connection and this process no extra handles. IDENTGATE_FUZZ_SECONDS
 * lengthens the run (default 6 s).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_LINE_OCTETS, parseRequestOctets } from '../../protocol/index.js';
import { connectRaw } from '../helpers/raw-peer.js';
import { startServer, TRANSPORTS } from '../helpers/server.js';
import { expectDocumentedCodes, expectNoEcho, guardEscapes, latencyBound, probe, replyLines } from './support.js';

guardEscapes();

const FUZZ_SECONDS = Number(process.env.IDENTGATE_FUZZ_SECONDS ?? 6);
const SENTINEL = '65535, 65535';
const enc = (text: string) => Buffer.from(text, 'latin1');

const port = fc.integer({ min: 1, max: 65535 }).map(String);
const blank = fc.constantFrom('', ' ', '  ', '\t', ' \t ');
const lineEnd = fc.constantFrom('\r\n', '\r\n', '\r\n', '\n', '\r\r\n');

/** A well-formed query with random white space and line end. */
const validQuery = fc
  .tuple(blank, port, blank, blank, port, blank, lineEnd)
  .map(([a, s, b, c, p, d, end]) => enc(`${a}${s}${b},${c}${p}${d}${end}`));

/** Almost a query: out-of-range, too many digits, wrong separators, stray CRs. */
const nearMiss = fc
  .oneof(
    fc.constantFrom(
      '0, 1',
      '1, 0',
      '65536, 1',
      '1, 65536',
      '000001, 2',
      '99999999999, 1',
      '1,',
      ',1',
      '1 2',
      '1,,2',
      '1;2',
      '-1, 2',
      '+1, 2',
      '1.0, 2',
      '0x1, 2',
      '1e3, 2',
      '',
    ),
    fc.tuple(port, port).map(([s, c]) => `${s}, ${c} x`),
    fc.tuple(port, port).map(([s, c]) => `${s}\r, ${c}`),
    fc.tuple(port, port).map(([s, c]) => `${s}, ${c}\r`),
    fc.tuple(port, port).map(([s, c]) => `${s}\u00a0, ${c}`),
    fc.tuple(port, port).map(([s, c]) => `${'0'.repeat(8)}${s}, ${c}`),
  )
  .chain((text) => lineEnd.map((end) => enc(`${text}${end}`)));

/** Random octets, line ends included. */
const junk = fc.uint8Array({ minLength: 1, maxLength: 64 }).map((bytes) => Buffer.from(bytes));

/** Rarely: a line at or just past the cap. */
const longLine = fc
  .constantFrom(DEFAULT_MAX_LINE_OCTETS - 1, DEFAULT_MAX_LINE_OCTETS, DEFAULT_MAX_LINE_OCTETS + 1, 4096)
  .map((n) => enc(`${' '.repeat(n - 3)}1,2\r\n`));

const token = fc.oneof(
  { arbitrary: validQuery, weight: 6 },
  { arbitrary: nearMiss, weight: 3 },
  { arbitrary: junk, weight: 2 },
  { arbitrary: longLine, weight: 1 },
);

const scenario = fc.record({
  tokens: fc.array(token, { maxLength: 40 }),
  cuts: fc.array(fc.nat(), { maxLength: 12 }),
  halfClose: fc.boolean(),
  pauses: fc.boolean(),
});

/** What the server must do with `stream`: the complete lines it answers, and whether it closes on an over-long line. */
function model(stream: Buffer, halfClose: boolean): { lines: Buffer[]; overLong: boolean } {
  const lines: Buffer[] = [];
  let start = 0;
  for (let lf = stream.indexOf(0x0a); lf !== -1; lf = stream.indexOf(0x0a, start)) {
    const end = lf > start && stream[lf - 1] === 0x0d ? lf - 1 : lf;
    if (end - start > DEFAULT_MAX_LINE_OCTETS) return { lines, overLong: true };
    lines.push(stream.subarray(start, end));
    start = lf + 1;
  }
  const rest = stream.length - start;
  const allowed = DEFAULT_MAX_LINE_OCTETS + (stream[stream.length - 1] === 0x0d ? 1 : 0);
  if (halfClose && rest > allowed) return { lines, overLong: true };
  return { lines, overLong: false };
}

/** The reply the fuzz handler gives a valid query; INVALID-PORT lines are checked by expectNoEcho. */
function expectedReply(line: Buffer): string | undefined {
  const query = parseRequestOctets(line);
  if (!query) return undefined;
  return query.serverPort % 2 === 1
    ? `${query.serverPort}, ${query.clientPort} : USERID : OTHER : fuzz`
    : `${query.serverPort}, ${query.clientPort} : ERROR : NO-USER`;
}

describe.each(TRANSPORTS)('IdentServer fuzzed with random input (%s transport)', (transport) => {
  it(
    `answers one well-formed line per complete request line, in order, for ${FUZZ_SECONDS} s of random input`,
    { timeout: FUZZ_SECONDS * 1000 + 30_000 },
    async () => {
      const {
        server,
        port: serverPort,
        errors,
      } = await startServer(
        (tx) => {
          // Odd server ports answer at once, even ones on a later turn: replies still come back in order.
          if (tx.req.serverPort % 2 === 1) tx.replyWithUser('fuzz');
          else setImmediate(() => tx.replyWithError('NO-USER'));
        },
        { transport },
      );
      const handlesBefore = process.getActiveResourcesInfo().length;
      let runs = 0;
      let source = 0;

      await fc.assert(
        fc.asyncProperty(scenario, async ({ tokens, cuts, halfClose, pauses }) => {
          runs++;
          // A fresh source address per run keeps the per-address cap out of the way.
          const peer = await connectRaw(serverPort, '127.0.0.1', `127.0.1.${(source++ % 250) + 1}`);
          try {
            const body = Buffer.concat(tokens);
            const stream = halfClose ? body : Buffer.concat([body, enc(`\r\n${SENTINEL}\r\n`)]);
            const { lines, overLong } = model(stream, halfClose);
            const points = [...new Set(cuts.map((cut) => cut % (stream.length + 1)))].sort((a, b) => a - b);
            let from = 0;
            for (const point of [...points, stream.length]) {
              if (point > from) peer.write(stream.subarray(from, point));
              from = point;
              if (pauses) await new Promise((resolve) => setImmediate(resolve));
            }
            if (halfClose) peer.socket.end();

            const received =
              halfClose || overLong ? await peer.closed(3_000) : (await peer.lines(lines.length, 3_000), peer.text());
            const replies = replyLines(received);
            expect(replies).toHaveLength(lines.length);
            lines.forEach((line, i) => {
              const want = expectedReply(line);
              if (want) expect(replies[i]).toBe(want);
              else {
                expect(replies[i]).toMatch(/ : ERROR : INVALID-PORT$/);
                expectNoEcho(line, replies[i]!);
              }
            });
            if (!halfClose && !overLong) expect(replies.at(-1)).toBe(`${SENTINEL} : USERID : OTHER : fuzz`);
          } finally {
            peer.socket.destroy();
          }
        }),
        { numRuns: 1_000_000, interruptAfterTimeLimit: FUZZ_SECONDS * 1000, markInterruptAsFailure: false },
      );

      expect(runs).toBeGreaterThan(10);
      await expect.poll(() => server.connectionCount, { timeout: 5_000 }).toBe(0);
      // Closed sockets release their handles on a later turn; a leak would grow with the run count.
      await expect
        .poll(() => process.getActiveResourcesInfo().length, { timeout: 5_000 })
        .toBeLessThanOrEqual(handlesBefore + 5);
      const fresh = await probe(serverPort);
      expect(fresh.line).toBe('400, 500 : ERROR : NO-USER');
      expect(fresh.ms).toBeLessThan(latencyBound(1_000));
      expect(
        errors.map((e) => e.code).filter((code) => code !== 'ERR_IDENT_LINE_TOO_LONG' && code !== 'ERR_IDENT_SOCKET'),
      ).toEqual([]);
      expectDocumentedCodes(errors);
    },
  );
});
