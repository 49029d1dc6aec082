import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  canonicalAddress,
  matchUserFile,
  parseUserFile,
  UserFileSyntaxError,
  type UserFileQuery,
} from '../../../gateway/delegate/oidentd-conf.js';

const FIXTURES = join(import.meta.dirname, '../../fixtures/oidentd');
const fixture = (name: string) => parseUserFile(readFileSync(join(FIXTURES, name), 'utf8'));

const query = (overrides: Partial<UserFileQuery> = {}): UserFileQuery => ({
  localPort: 40000,
  remotePort: 6667,
  localAddress: '192.0.2.1',
  remoteAddress: '198.51.100.7',
  ...overrides,
});

const replyOf = (file: ReturnType<typeof parseUserFile>, q: UserFileQuery) => matchUserFile(file, q)?.capability;

describe('oidentd user files, in the formats apps write', () => {
  it('ZNC\'s identfile module (global { reply "%ident%" } after substitution) answers every connection', () => {
    expect(replyOf(fixture('znc-identfile.conf'), query())).toEqual({ kind: 'reply', replies: ['alice'] });
  });

  it("TheLounge's oidentd mode answers only the exact connection, IPv4 and IPv6", () => {
    const file = fixture('thelounge-oidentd.conf');
    const v4 = query({ localPort: 40001, remotePort: 6697 });
    expect(replyOf(file, v4)).toEqual({ kind: 'reply', replies: ['alice'] });
    expect(replyOf(file, { ...v4, remotePort: 6667 })).toBeUndefined();
    expect(replyOf(file, { ...v4, remoteAddress: '198.51.100.8' })).toBeUndefined();
    const v6 = query({
      localPort: 40002,
      remotePort: 6697,
      localAddress: canonicalAddress('2001:db8::1')!,
      remoteAddress: canonicalAddress('2001:DB8:0:0::7')!,
    });
    expect(replyOf(file, v6)).toEqual({ kind: 'reply', replies: ['bob'] });
  });

  it("Quassel's stanzas (lport N { reply } # stanza created by Quassel) answer their port; the user's global hide the rest", () => {
    const file = fixture('quassel.conf');
    expect(replyOf(file, query({ localPort: 40003 }))).toEqual({ kind: 'reply', replies: ['carol'] });
    expect(replyOf(file, query({ localPort: 40004 }))).toEqual({ kind: 'reply', replies: ['dave'] });
    expect(replyOf(file, query({ localPort: 40009 }))).toEqual({ kind: 'hide' });
  });

  it("eggdrop's lines (lport N from ADDR { reply } ### eggdrop_... !time) answer their port and address", () => {
    const file = fixture('eggdrop.conf');
    expect(replyOf(file, query({ localPort: 40005 }))).toEqual({ kind: 'reply', replies: ['mybot'] });
    expect(replyOf(file, query({ localPort: 40005, localAddress: '192.0.2.2' }))).toBeUndefined();
  });

  it('reads every construct oidentd allows in a user file, keywords in any case, the last matching entry winning', () => {
    const file = fixture('full-syntax.conf');
    expect(file.entries).toHaveLength(7);
    expect(replyOf(file, query({ remotePort: 7000 }))).toEqual({ kind: 'random' });
    expect(replyOf(file, query({ remotePort: 6665 }))).toEqual({ kind: 'reply', replies: ['one', 'two', 'three'] });
    expect(replyOf(file, query({ localPort: 1024 }))).toEqual({ kind: 'numeric' });
    expect(replyOf(file, query({ localPort: 50000 }))).toEqual({ kind: 'random_numeric' });
    expect(replyOf(file, query({ remoteAddress: '198.51.100.9' }))).toEqual({ kind: 'hide' });
    expect(replyOf(file, query({ localPort: 40006, remotePort: 6697 }))).toEqual({
      kind: 'reply',
      replies: ['tab\tno'],
    });
    expect(replyOf(file, query({ remoteAddress: '198.51.100.10' }))).toEqual({
      kind: 'forward',
      host: '127.0.0.1',
      port: 9001,
    });
  });

  it('keeps at most 20 replies of one reply, as oidentd does', () => {
    const words = Array.from({ length: 25 }, (_, i) => `u${i}`).join(' ');
    const capability = parseUserFile(`global { reply ${words} }`).entries[0]!.capability;
    expect(capability.kind === 'reply' && capability.replies).toHaveLength(20);
  });

  it('treats a CR before the line end as white space', () => {
    expect(parseUserFile('global { reply "alice" }\r\n').entries).toHaveLength(1);
  });

  it('an empty file or one with only comments has no entries', () => {
    expect(parseUserFile('').entries).toEqual([]);
    expect(parseUserFile('# nothing\n/* here */\n').entries).toEqual([]);
  });
});

describe('oidentd user files that oidentd refuses are refused, naming the line', () => {
  const refused: [string, string, RegExp][] = [
    ['lport undefined (TheLounge before #4695)', 'lport undefined { reply "x" }', /line 1: bad port "undefined"/],
    ['spoof in a user file', 'global { spoof }', /granted by the system/],
    ['a system-file user block', 'user "znc" { default { allow spoof } }', /belong in the system-wide/],
    ['a default block', 'default { reply "x" }', /belong in the system-wide/],
    ['two capabilities in one entry', 'global { hide random }', /one capability per entry/],
    ['an unterminated string', 'global { reply "alice }\n', /line 1: unterminated string/],
    ['a bad octal escape', 'global { reply "\\777" }', /bad escape/],
    ['a host name', 'to irc.example.net { hide }', /host names are not resolved/],
    ['a service name', 'fport ircd { hide }', /service names are not looked up/],
    ['lport twice', 'lport 1 lport 2 { hide }', /only be given once/],
    ['a missing brace', 'global reply "x" }', /expected '\{'/],
    ['reply without ids', 'global { reply }', /at least one user id/],
    ['an error on line 3', '# one\n# two\nglobal { nope }', /^line 3: /],
  ];
  for (const [what, text, message] of refused) {
    it(what, () => {
      let error: unknown;
      try {
        parseUserFile(text);
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(UserFileSyntaxError);
      expect((error as Error).message).toMatch(message);
    });
  }
});

describe('canonicalAddress', () => {
  it('maps IPv4-mapped IPv6 to IPv4, expands IPv6, drops zone ids, refuses names', () => {
    expect(canonicalAddress('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(canonicalAddress('2001:DB8::1')).toBe('2001:db8:0:0:0:0:0:1');
    expect(canonicalAddress('fe80::1%eth0')).toBe('fe80:0:0:0:0:0:0:1');
    expect(canonicalAddress('localhost')).toBeUndefined();
  });
});
