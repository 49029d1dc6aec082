import { once } from 'node:events';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDelegateRunner, UserFiles } from '../../../gateway/delegate/index.js';
import type { IdentAnswer } from '../../../protocol/reply.js';
import type { LookupRequest, UserFileCapability, UserFileDelegate } from '../../../protocol/wire.js';

const FALLBACK: IdentAnswer = { type: 'USERID', opsys: 'OTHER', userId: 'ufallback' };
const uid = process.getuid!();
let home: string;

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'identgate-userfile-'));
  await chmod(home, 0o755);
});
afterAll(async () => {
  await rm(home, { recursive: true, force: true });
});

const passwd = {
  homeDirectory: async (asked: number) => (asked === uid ? home : null),
  uidOf: async (name: string) => (name === 'someone' ? uid + 1 : name === 'owner' ? uid : null),
};
const runner = createDelegateRunner({
  passwd: passwd as never,
  userFiles: new UserFiles({ passwd }),
  random: () => 0,
});

const request: LookupRequest = {
  v: 1,
  id: 't-1',
  gateway: 'gw',
  query: { serverPort: 40001, clientPort: 6667 },
  connection: { localAddress: '192.0.2.1', localPort: 113, remoteAddress: '198.51.100.7', remotePort: 50000 },
  owner: { uid, userName: 'znc' },
};

function delegate(
  allow: UserFileCapability[] = ['reply', 'hide', 'random', 'numeric', 'random_numeric'],
): UserFileDelegate {
  return {
    kind: 'userfile',
    files: ['.oidentd.conf'],
    allow,
    opsys: 'OTHER',
    accept: { maxLength: 16, localNames: false },
  };
}

async function answerFor(text: string, d = delegate(), r: LookupRequest = request) {
  const path = join(home, '.oidentd.conf');
  await writeFile(path, text);
  await chmod(path, 0o644);
  return runner.run(d, r, FALLBACK, performance.now() + 500);
}

describe('answering from the owner oidentd user file', () => {
  it('answers a reply', async () => {
    expect(await answerFor('global { reply "alice" }\n')).toEqual({
      answer: { type: 'USERID', opsys: 'OTHER', userId: 'alice' },
      outcome: 'userfile',
    });
  });

  it('answers hide with HIDDEN-USER, numeric with the uid, random and random_numeric as oidentd does', async () => {
    expect((await answerFor('global { hide }')).answer).toEqual({ type: 'ERROR', error: 'HIDDEN-USER' });
    expect((await answerFor('global { numeric }')).answer).toMatchObject({ userId: String(uid) });
    expect((await answerFor('global { random }')).answer).toMatchObject({ userId: '00000000000' });
    expect((await answerFor('global { random_numeric }')).answer).toMatchObject({ userId: 'user0' });
  });

  it('answers the fallback for a capability the rule does not grant', async () => {
    const result = await answerFor('global { hide }', delegate(['reply']));
    expect(result.answer).toEqual(FALLBACK);
    expect(result.outcome).toMatch(/'hide' is not granted/);
  });

  it("answers the fallback for another local account's name, but the owner's own name is fine", async () => {
    expect((await answerFor('global { reply "someone" }')).outcome).toMatch(/another local account/);
    expect((await answerFor('global { reply "owner" }')).answer).toMatchObject({ userId: 'owner' });
  });

  it('answers the fallback when no entry matches, when the file is broken, and when the owner is unknown', async () => {
    expect((await answerFor('lport 1 { reply "alice" }')).outcome).toMatch(/no entry of .* matches/);
    expect((await answerFor('lport undefined { reply "alice" }')).outcome).toMatch(/broken: line 1: bad port/);
    expect((await answerFor('global { reply "alice" }', delegate(), { ...request, owner: null })).outcome).toBe(
      'fallback: owner unknown',
    );
  });

  it('follows a forward entry only when the rule grants forward', async () => {
    const server = createServer((socket) =>
      socket.once('data', () => socket.end('40001, 6667 : USERID : UNIX : fwd\r\n')),
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    try {
      const text = `global { forward 127.0.0.1 ${port} }`;
      expect((await answerFor(text)).outcome).toMatch(/'forward' is not granted/);
      expect((await answerFor(text, delegate(['forward']))).answer).toMatchObject({ userId: 'fwd' });
    } finally {
      server.close();
    }
  });
});
