import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DEFAULT_POLICY, parsePolicy, PolicyError, redactPolicy } from '../../worker/policy/index.js';

const base = { version: 1, rules: [], default: { action: { error: 'NO-USER' } } };
const withRule = (rule: object, extra: object = {}) => ({
  ...base,
  ...extra,
  rules: [
    { name: 'ok', action: { reveal: 'name' } },
    { name: 'r', action: { reveal: 'name' }, ...rule },
  ],
});

function problem(json: unknown): string {
  try {
    parsePolicy(json);
  } catch (error) {
    expect(error).toBeInstanceOf(PolicyError);
    expect((error as PolicyError).code).toBe('ERR_POLICY_INVALID');
    return (error as PolicyError).message;
  }
  throw new Error('the policy parsed');
}

describe('parsePolicy', () => {
  it('accepts a minimal policy and the built-in default', () => {
    expect(parsePolicy(base)).toEqual(base);
    expect(parsePolicy(DEFAULT_POLICY)).toEqual(DEFAULT_POLICY);
  });

  it('accepts JSON text', () => {
    expect(parsePolicy(JSON.stringify(base))).toEqual(base);
    expect(problem('{')).toMatch(/^\(root\): not JSON/);
  });

  it('names the path of a bad CIDR', () => {
    expect(problem(withRule({ match: { clientAddress: '10.0.0.0/33' } }))).toBe(
      'rules[1].match.clientAddress: not a CIDR: 10.0.0.0/33 (IPv4 prefix length must be 0..32)',
    );
    expect(problem(withRule({ match: { serverAddress: ['::/0', '2001:db8::1/32'] } }))).toMatch(
      /^rules\[1\]\.match\.serverAddress\[1\]: not a CIDR: 2001:db8::1\/32 \(host bits set; did you mean 2001:db8::\/32\?\)$/,
    );
    expect(problem(withRule({ match: { clientAddress: '10.0.0.1/8' } }))).toContain('did you mean 10.0.0.0/8?');
    expect(problem(withRule({ match: { clientAddress: '010.0.0.0/8' } }))).toContain('not a CIDR: 010.0.0.0/8');
    expect(problem(withRule({ match: { clientAddress: [] } }))).toBe(
      'rules[1].match.clientAddress: must list at least one CIDR',
    );
  });

  it('names the path of a bad port, range or uid', () => {
    expect(problem(withRule({ match: { serverPort: 0 } }))).toBe(
      'rules[1].match.serverPort: must be an integer in 1..65535, got 0',
    );
    expect(problem(withRule({ match: { clientPort: ['22', '7000-6000'] } }))).toBe(
      'rules[1].match.clientPort[1]: range 7000-6000 is empty (start is after end)',
    );
    expect(problem(withRule({ match: { ownerUid: 'root' } }))).toMatch(
      /^rules\[1\]\.match\.ownerUid: not a number or range/,
    );
  });

  it('names an unknown field', () => {
    expect(problem(withRule({ match: { remoteAddress: '10.0.0.0/8' } }))).toBe(
      'rules[1].match.remoteAddress: unknown field',
    );
    expect(problem({ ...base, rule: [] })).toBe('rule: unknown field');
  });

  it('names a bad action', () => {
    expect(problem(withRule({ action: {} }))).toMatch(/^rules\[1\]\.action: an action needs one of "reveal", "userId"/);
    expect(problem(withRule({ action: { reveal: 'name', error: 'NO-USER' } }))).toMatch(
      /^rules\[1\]\.action: an action may have only one of "reveal", "error"/,
    );
    expect(problem(withRule({ action: { reveal: 'login' } }))).toBe('rules[1].action.reveal: must be "name" or "uid"');
    expect(problem(withRule({ action: { error: 'NOPE' } }))).toMatch(
      /^rules\[1\]\.action\.error: must be INVALID-PORT/,
    );
    expect(problem(withRule({ action: { random: { chars: 0 } } }))).toMatch(/^rules\[1\]\.action\.random\.chars: /);
    expect(problem(withRule({ action: { random: { chars: 4, alphabet: 'a a' } } }))).toMatch(
      /^rules\[1\]\.action\.random\.alphabet: must be printable ASCII/,
    );
    expect(problem(withRule({ action: { reveal: 'uid', ifNoName: 'uid' } }))).toMatch(
      /^rules\[1\]\.action\.ifNoName: /,
    );
  });

  it('checks fixed and listed user ids against the reply rules', () => {
    expect(problem(withRule({ action: { userId: 'a\r\nb' } }))).toBe(
      'rules[1].action.userId: user id must not contain NUL, CR or LF',
    );
    expect(problem(withRule({ action: { random: { from: ['ok', 'jürgen'] } } }))).toBe(
      'rules[1].action.random.from[1]: a non-ASCII user id needs charset UTF-8',
    );
    expect(parsePolicy(withRule({ action: { userId: 'jürgen' }, charset: 'UTF-8' })).rules[1]).toMatchObject({
      charset: 'UTF-8',
    });
  });

  it('checks opsys and charset are tokens and only on user id answers', () => {
    expect(problem(withRule({ opsys: 'UN IX' }))).toMatch(/^rules\[1\]\.opsys: must be 1\.\.64 printable ASCII/);
    expect(problem(withRule({ charset: 'a,b' }))).toMatch(/^rules\[1\]\.charset: /);
    expect(problem({ ...base, default: { action: { error: 'NO-USER' }, opsys: 'UNIX' } })).toBe(
      'default.opsys: an error answer has no opsys or charset; remove it',
    );
  });

  it('requires unique rule names and reserves "default"', () => {
    expect(problem(withRule({ name: 'ok' }))).toBe('rules[1].name: duplicate rule name "ok" (also rules[0])');
    expect(problem(withRule({ name: 'default' }))).toBe('rules[1].name: "default" is reserved for the policy default');
  });

  it('requires a key of at least 16 characters when a pseudonym rule exists', () => {
    expect(problem(withRule({ action: { pseudonym: {} } }))).toBe(
      'key: required: rules[1] uses a pseudonym, which is keyed by this secret',
    );
    expect(problem(withRule({ action: { pseudonym: {} } }, { key: 'short' }))).toBe(
      'key: must be at least 16 characters',
    );
    expect(problem(withRule({ action: { pseudonym: { length: 52 } } }, { key: 'k'.repeat(16) }))).toMatch(
      /^rules\[1\]\.action\.pseudonym\.length: /,
    );
  });

  it('checks the version', () => {
    expect(problem({ ...base, version: 2 })).toBe('version: must be 1 (the only policy format version)');
  });

  it('redactPolicy hides the key', () => {
    const policy = parsePolicy(withRule({ action: { pseudonym: {} } }, { key: 'k'.repeat(16) }));
    expect(redactPolicy(policy).key).toBe('[redacted]');
    expect(policy.key).toBe('k'.repeat(16));
  });

  it('parses examples/policy.json', () => {
    const text = readFileSync(new URL('../../examples/policy.json', import.meta.url), 'utf8');
    expect(() => parsePolicy(JSON.parse(text))).not.toThrow();
  });
});
