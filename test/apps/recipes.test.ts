/**
 * The recipes of docs/apps.md are what they say: each file is shown verbatim in the doc, each
 * policy parses and names the app's users the way the recipe says, each app configuration points
 * where its rule does (same port, same file), and each user-file format the app writes, taken from
 * the fixtures, is answered through the recipe's rule as the app meant.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createDelegateRunner, UserFiles } from '../../gateway/delegate/index.js';
import type { IdentAnswer } from '../../protocol/reply.js';
import type { LookupRequest } from '../../protocol/wire.js';
import { compilePolicy, decide, parsePolicy } from '../../worker/policy/index.js';
import { APPS_DOC, readRecipe, recipeNames, RECIPES_DIR } from '../helpers/recipes.js';

const FIXTURES = join(import.meta.dirname, '../fixtures/oidentd');
const doc = readFileSync(APPS_DOC, 'utf8');

/** The fenced block after each `<!-- examples/apps/... -->` marker in docs/apps.md. */
function shownInDoc(): Map<string, string> {
  const shown = new Map<string, string>();
  for (const match of doc.matchAll(/<!-- (examples\/apps\/[^ ]+) -->\n```[a-z]*\n([\s\S]*?)```\n/g))
    shown.set(match[1]!, match[2]!);
  return shown;
}

function ownerRequest(userName: string, overrides: Partial<LookupRequest> = {}): LookupRequest {
  return {
    v: 1,
    id: 'recipe',
    gateway: 'gw',
    query: { serverPort: 40001, clientPort: 6697 },
    connection: { localAddress: '192.0.2.1', localPort: 113, remoteAddress: '198.51.100.7', remotePort: 50000 },
    owner: { uid: process.getuid!(), userName },
    ...overrides,
  };
}

const decideRecipe = (app: string, request: LookupRequest) =>
  decide(compilePolicy(parsePolicy(readRecipe(app).policy)), request);

/** Runs a recipe's userFile delegate against a home whose .oidentd.conf holds `fixture`. */
async function answerFromFixture(
  app: string,
  owner: string,
  fixture: string,
  request: LookupRequest,
): Promise<IdentAnswer> {
  const decision = decideRecipe(app, request);
  expect(decision.delegate?.kind).toBe('userfile');
  const home = await mkdtemp(join(tmpdir(), 'identgate-recipe-'));
  try {
    await chmod(home, 0o755);
    await writeFile(join(home, '.oidentd.conf'), readFileSync(join(FIXTURES, fixture)), { mode: 0o644 });
    const passwd = {
      homeDirectory: async () => home,
      uidOf: async (name: string) => (name === owner ? process.getuid!() : null),
    };
    const runner = createDelegateRunner({ passwd: passwd as never, userFiles: new UserFiles({ passwd }) });
    return (await runner.run(decision.delegate!, request, decision.answer, performance.now() + 1_000)).answer;
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

describe('docs/apps.md', () => {
  it('shows every recipe file verbatim, and only recipe files', () => {
    const shown = shownInDoc();
    const files = recipeNames().flatMap((app) =>
      readdirSync(join(RECIPES_DIR, app)).map((name) => `examples/apps/${app}/${name}`),
    );
    expect([...shown.keys()].sort()).toEqual(files.sort());
    for (const [path, text] of shown)
      expect(text, path).toBe(readFileSync(join(RECIPES_DIR, '..', '..', path), 'utf8'));
  });

  it('has a recipe for each app issue 13 names', () => {
    expect(recipeNames()).toEqual([
      'matrix-appservice-irc',
      'quassel',
      'soju',
      'thelounge-identd',
      'thelounge-oidentd',
      'webircgateway',
      'znc',
    ]);
  });

  it('every recipe policy parses, and other users keep their own names', () => {
    for (const app of recipeNames()) {
      const decision = decideRecipe(app, ownerRequest('carol'));
      expect(decision, app).toMatchObject({
        rule: 'default',
        answer: { type: 'USERID', opsys: 'UNIX', userId: 'carol' },
      });
    }
  });
});

describe('ZNC', () => {
  it('answers the ident identfile writes (global { reply "%ident%" }) for the znc user', async () => {
    expect(readRecipe('znc').files['znc.conf']).toMatch(/^LoadModule = identfile$/m);
    const answer = await answerFromFixture('znc', 'znc', 'znc-identfile.conf', ownerRequest('znc'));
    expect(answer).toEqual({ type: 'USERID', opsys: 'OTHER', userId: 'alice' });
  });

  it('reads the file identfile writes by default (~/.oidentd.conf)', () => {
    expect(decideRecipe('znc', ownerRequest('znc')).delegate).toMatchObject({ files: ['.oidentd.conf'] });
  });
});

describe('TheLounge', () => {
  it('oidentd mode: reads the file its config names and answers the exact connection it wrote', async () => {
    const config = readRecipe('thelounge-oidentd').files['config.js']!;
    expect(config).toMatch(/oidentd: "~\/\.oidentd\.conf"/);
    const decision = decideRecipe('thelounge-oidentd', ownerRequest('thelounge'));
    expect(decision.delegate).toMatchObject({ kind: 'userfile', files: ['.oidentd.conf'] });
    const request = ownerRequest('thelounge');
    expect(await answerFromFixture('thelounge-oidentd', 'thelounge', 'thelounge-oidentd.conf', request)).toEqual({
      type: 'USERID',
      opsys: 'OTHER',
      userId: 'alice',
    });
    const otherServer = { ...request, connection: { ...request.connection, remoteAddress: '203.0.113.1' } };
    expect(await answerFromFixture('thelounge-oidentd', 'thelounge', 'thelounge-oidentd.conf', otherServer)).toEqual({
      type: 'ERROR',
      error: 'HIDDEN-USER',
    });
  });

  it("identd mode: forwards to the port TheLounge's identd listens on", () => {
    const port = Number(
      /identd: \{ enable: true, port: (\d+) \}/.exec(readRecipe('thelounge-identd').files['config.js']!)![1],
    );
    expect(decideRecipe('thelounge-identd', ownerRequest('thelounge')).delegate).toMatchObject({
      kind: 'forward',
      host: '127.0.0.1',
      port,
    });
  });
});

describe('Quassel', () => {
  it("forwards to the address and port of the core's ident server", () => {
    const args = readRecipe('quassel').files['quasselcore.args']!;
    const host = /--ident-listen=(\S+)/.exec(args)![1];
    const port = Number(/--ident-port=(\d+)/.exec(args)![1]);
    expect(decideRecipe('quassel', ownerRequest('quasselcore')).delegate).toMatchObject({
      kind: 'forward',
      host,
      port,
    });
  });

  it("answers its oidentd mode's stanzas through a userFile rule", async () => {
    const policy = readRecipe('thelounge-oidentd').policy as { rules: { match: { ownerName: string } }[] };
    policy.rules[0]!.match.ownerName = 'quasselcore';
    const decision = decide(compilePolicy(parsePolicy(policy)), ownerRequest('quasselcore'));
    expect(decision.delegate?.kind).toBe('userfile');
  });
});

describe('soju and webircgateway', () => {
  it('soju: no ident listener, and one stable pseudonym for the soju account', () => {
    expect(readRecipe('soju').files['soju.conf']).not.toMatch(/^listen ident:/m);
    const first = decideRecipe('soju', ownerRequest('soju'));
    expect(first).toMatchObject({ rule: 'soju', answer: { type: 'USERID', opsys: 'OTHER' } });
    expect(
      decideRecipe('soju', ownerRequest('soju', { query: { serverPort: 40002, clientPort: 6667 } })).answer,
    ).toEqual(first.answer);
  });

  it('webircgateway: its own identd off (it would take port 113), random idents for its Unix user', () => {
    expect(readRecipe('webircgateway').files['config.conf']).toMatch(/^identd = false$/m);
    const decision = decideRecipe('webircgateway', ownerRequest('webircgateway'));
    expect(decision.rule).toBe('webircgateway');
    expect((decision.answer as { userId: string }).userId).toMatch(/^[a-z0-9]{8}$/);
  });
});

describe('matrix-appservice-irc', () => {
  it("forwards to the address and port of the bridge's ident server", () => {
    const config = readRecipe('matrix-appservice-irc').files['config.yaml']!;
    const port = Number(/port: (\d+)/.exec(config)![1]);
    const host = /address: "([^"]+)"/.exec(config)![1];
    expect(decideRecipe('matrix-appservice-irc', ownerRequest('matrix-appservice-irc')).delegate).toMatchObject({
      kind: 'forward',
      host,
      port,
    });
  });
});
