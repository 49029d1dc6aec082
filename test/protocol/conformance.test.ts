import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  formatReply,
  LineSplitter,
  LineTooLongError,
  parseReply,
  parseRequest,
  parseRequestOctets,
  replyRuleViolation,
  type IdentAnswer,
} from '../../protocol/index.js';

interface Vectors {
  requests: { line: string; expect: { query: [number, number] } | 'INVALID-PORT' }[];
  framing: { chunks: string[]; lines: string[] }[];
  framing_limits: { max_line_octets: number };
  replies: { line: string; expect: Record<string, unknown> }[];
  bad_replies: string[];
  server_reply_rules: {
    user_id_max_octets: number;
    user_id_forbidden_octets: number[];
    standard_errors: string[];
    custom_error_pattern: string;
  };
}

const vectors = JSON.parse(readFileSync(new URL('../fixtures/rfc1413.json', import.meta.url), 'utf8')) as Vectors;
const bytes = (text: string) => new TextEncoder().encode(text);
const text = (octets: Uint8Array) => new TextDecoder().decode(octets);

describe('request vectors', () => {
  for (const { line, expect: expected } of vectors.requests) {
    it(`${JSON.stringify(line)} is ${expected === 'INVALID-PORT' ? 'INVALID-PORT' : expected.query.join(',')}`, () => {
      const want =
        expected === 'INVALID-PORT' ? undefined : { serverPort: expected.query[0], clientPort: expected.query[1] };
      expect(parseRequest(line)).toEqual(want);
      expect(parseRequestOctets(bytes(line))).toEqual(want);
    });
  }
});

describe('framing vectors', () => {
  for (const { chunks, lines } of vectors.framing) {
    it(`${JSON.stringify(chunks)} frames as ${JSON.stringify(lines)}`, () => {
      const splitter = new LineSplitter(vectors.framing_limits.max_line_octets);
      const got = chunks.flatMap((chunk) => splitter.push(bytes(chunk)).map(text));
      expect(got).toEqual(lines);
    });
  }

  it('a line of exactly the cap is accepted, one octet more is refused', () => {
    const max = vectors.framing_limits.max_line_octets;
    expect(new LineSplitter(max).push(bytes('1'.repeat(max) + '\r\n'))).toHaveLength(1);
    expect(() => new LineSplitter(max).push(bytes('1'.repeat(max + 1) + '\n'))).toThrow(LineTooLongError);
  });

  it('more than the cap without a line end is refused even when it arrives in pieces', () => {
    const max = vectors.framing_limits.max_line_octets;
    const splitter = new LineSplitter(max);
    splitter.push(bytes('1'.repeat(max)));
    expect(() => splitter.push(bytes('2'))).toThrow(LineTooLongError);
  });

  it('a CR at the cap waits for its LF', () => {
    const max = vectors.framing_limits.max_line_octets;
    const splitter = new LineSplitter(max);
    expect(splitter.push(bytes('1'.repeat(max) + '\r'))).toEqual([]);
    expect(splitter.push(bytes('\n')).map(text)).toEqual(['1'.repeat(max)]);
  });
});

describe('reply vectors', () => {
  for (const { line, expect: expected } of vectors.replies) {
    it(`reads ${JSON.stringify(line)}`, () => {
      const reply = parseReply(line);
      expect(reply).toMatchObject(expected);
      expect(parseReply(bytes(line))).toMatchObject(expected);
    });
  }
  for (const line of vectors.bad_replies) {
    it(`refuses ${JSON.stringify(line)}`, () => {
      expect(parseReply(line)).toBeUndefined();
    });
  }
  it('keeps the raw octets of a user id in an unknown charset', () => {
    const line = new Uint8Array([...bytes('1, 2 : USERID : OTHER , KOI8-R : '), 0xf0, 0xc5, 0xd4, 0xd1]);
    const reply = parseReply(line);
    expect(reply?.type).toBe('USERID');
    if (reply?.type !== 'USERID') return;
    expect([...reply.userIdOctets]).toEqual([0xf0, 0xc5, 0xd4, 0xd1]);
    expect(reply.charset).toBe('KOI8-R');
  });
});

describe('server reply rules', () => {
  const rules = vectors.server_reply_rules;
  const user = (userId: string, extra: Partial<IdentAnswer> = {}): IdentAnswer =>
    ({ type: 'USERID', opsys: 'UNIX', userId, ...extra }) as IdentAnswer;

  it('accepts a user id of the maximum length and refuses one octet more', () => {
    expect(replyRuleViolation(user('a'.repeat(rules.user_id_max_octets)))).toBeUndefined();
    expect(replyRuleViolation(user('a'.repeat(rules.user_id_max_octets + 1)))).toMatch(/512 octets/);
  });

  it('counts octets, not characters, in a UTF-8 user id', () => {
    expect(replyRuleViolation(user('ö'.repeat(256), { charset: 'UTF-8' }))).toBeUndefined();
    expect(replyRuleViolation(user('ö'.repeat(257), { charset: 'UTF-8' }))).toMatch(/512 octets/);
  });

  for (const octet of rules.user_id_forbidden_octets) {
    it(`refuses a user id containing octet ${octet}`, () => {
      expect(replyRuleViolation(user(`a${String.fromCharCode(octet)}b`))).toMatch(/NUL, CR or LF/);
    });
  }

  it('accepts the standard errors and X-tokens, and nothing else', () => {
    for (const error of rules.standard_errors)
      expect(replyRuleViolation({ type: 'ERROR', error } as IdentAnswer)).toBeUndefined();
    const pattern = new RegExp(rules.custom_error_pattern);
    for (const error of [
      'X-RATE-LIMITED',
      'XY',
      `X${'a'.repeat(63)}`,
      `X${'a'.repeat(64)}`,
      'X',
      'X A',
      'X:A',
      'NOPE',
      'no-user',
    ]) {
      const ok = pattern.test(error) || rules.standard_errors.includes(error);
      expect(replyRuleViolation({ type: 'ERROR', error } as IdentAnswer) === undefined, error).toBe(ok);
    }
  });

  it('refuses opsys and charset tokens with separators or white space', () => {
    for (const opsys of ['', 'UN IX', 'UN:IX', 'UN,IX', 'A'.repeat(65)])
      expect(replyRuleViolation(user('bob', { opsys }))).toBeDefined();
    expect(replyRuleViolation(user('bob', { charset: 'UTF 8' }))).toBeDefined();
    expect(replyRuleViolation(user('bob', { opsys: 'A'.repeat(64) }))).toBeUndefined();
  });

  it('refuses a non-ASCII user id unless the charset is UTF-8', () => {
    expect(replyRuleViolation(user('jörg'))).toMatch(/UTF-8/);
    expect(formatReply({ serverPort: 1, clientPort: 2 }, user('jörg', { charset: 'UTF-8' }))).toBe(
      '1, 2 : USERID : UNIX , UTF-8 : jörg\r\n',
    );
  });

  it('formats the RFC example replies', () => {
    expect(formatReply({ serverPort: 6193, clientPort: 23 }, user('stjohns'))).toBe(
      '6193, 23 : USERID : UNIX : stjohns\r\n',
    );
    expect(formatReply({ serverPort: 6195, clientPort: 23 }, { type: 'ERROR', error: 'NO-USER' })).toBe(
      '6195, 23 : ERROR : NO-USER\r\n',
    );
  });
});
