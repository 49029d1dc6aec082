/**
 * Issue 4, end to end with real Debian clients: `identgate serve` on
 * 127.0.0.1:113 in a network namespace of its own, answering from its
 * embedded policy (reveal the owner's name) with owner lookup on, is asked by
 * Net::Ident, libident and POE::Component::Client::Ident about a TCP
 * connection that the dedicated system user identgate-interop holds, and each
 * client must be told that user's name; the gateway, the clients asking and
 * the listener all run as root, so the name can only come from the owner
 * lookup. Asked about ports between which no connection exists (one of them
 * root's listening socket), each client must reach its error path with
 * NO-USER, while the same gateway still names the held connection's owner.
 * The whole scenario runs in peers/gateway-scenario.mjs (see
 * gateway-scenario.ts); each test is one namespace, torn down at its end.
 */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileC } from './compile.js';
import {
  ensureTestUser,
  fieldsOf,
  gatewayQueries,
  requireBuiltGateway,
  runGatewayScenario,
  stepOf,
  TEST_USER,
  type ScenarioStep,
  type TestUser,
} from './gateway-scenario.js';
import { NETNS_TOOLS, requireTools } from './netns.js';

const POLICY = { version: 1, rules: [], default: { action: { reveal: 'name', ifUnknown: 'NO-USER' } } };

let user: TestUser;
let policyDir: string;
let identQuery: string;

beforeAll(async () => {
  await requireTools([
    ...NETNS_TOOLS,
    { command: 'setpriv', debianPackage: 'util-linux' },
    { command: 'useradd', debianPackage: 'passwd' },
    { command: 'perl', module: 'Net::Ident', debianPackage: 'libnet-ident-perl' },
    { command: 'perl', module: 'POE::Component::Client::Ident', debianPackage: 'libpoe-component-client-ident-perl' },
    { command: 'cc', debianPackage: 'gcc' },
    { command: 'cc', file: '/usr/include/ident.h', debianPackage: 'libident-dev' },
  ]);
  await requireBuiltGateway();
  user = ensureTestUser();
  policyDir = await mkdtemp(join(tmpdir(), 'identgate-gateway-interop-'));
  await writeFile(join(policyDir, 'policy.json'), JSON.stringify(POLICY));
  identQuery = await compileC('ident-query', ['ident']);
  // ident_lookup runs as the test user, who must be able to reach the executable.
  await chmod(dirname(identQuery), 0o755);
});

afterAll(async () => {
  if (policyDir) await rm(policyDir, { recursive: true, force: true });
  if (identQuery) await rm(dirname(identQuery), { recursive: true, force: true });
});

function ownerScenario(steps: readonly ScenarioStep[]) {
  return runGatewayScenario({
    gatewayArgs: ['--policy', join(policyDir, 'policy.json'), '--owner-lookup', 'on'],
    user,
    identQuery,
    steps,
  });
}

describe(`real clients asking identgate serve on port 113 about a connection held by ${TEST_USER}`, () => {
  it('tells a root Net::Ident server the name of the user whose connection it accepted', async () => {
    const report = await ownerScenario([{ client: 'net-ident-accept' }]);
    const step = stepOf(report, 0);
    expect(step.stderr).toBe('');
    expect(step.code).toBe(0);
    expect(step.holder?.uid).toBe(user.uid);
    const [serverPort, clientPort, querierUid] = (fieldsOf(step.stdout, 'CONN') ?? []).map(Number);
    expect(serverPort).toBe(step.holder?.clientPort);
    expect(querierUid).toBe(0);
    expect(fieldsOf(step.stdout, 'USERID'), report.gateway.stderr).toEqual(['UNIX', TEST_USER]);
    expect(gatewayQueries(report)).toEqual([
      {
        query: { serverPort, clientPort },
        remoteAddress: '127.0.0.1',
        owner: { uid: user.uid, userName: TEST_USER },
        answer: { type: 'USERID', opsys: 'UNIX', userId: TEST_USER },
      },
    ]);
    expect(report.gateway.stdout).toContain('owner lookup: sock_diag');
  });

  it("tells Net::Ident the name when it asks with the held connection's ports (lookupFromInAddr)", async () => {
    const report = await ownerScenario([{ client: 'net-ident-ports', connection: 'held' }]);
    const step = stepOf(report, 0);
    expect(step.code).toBe(0);
    expect(report.held.uid).toBe(user.uid);
    expect(fieldsOf(step.stdout, 'CONN')).toEqual([
      String(report.held.serverPort),
      String(report.held.clientPort),
      '0',
    ]);
    expect(fieldsOf(step.stdout, 'USERID'), report.gateway.stderr).toEqual(['UNIX', TEST_USER]);
  });

  it("tells libident (id_query with the held connection's ports) the name", async () => {
    const report = await ownerScenario([{ client: 'libident-query', connection: 'held' }]);
    const step = stepOf(report, 0);
    const { serverPort, clientPort } = report.held;
    expect(step.stdout, report.gateway.stderr).toBe(
      `USERID\t${serverPort}\t${clientPort}\tUNIX\t(null)\t${TEST_USER}\n`,
    );
    expect(step.code).toBe(0);
    expect(gatewayQueries(report).map((logged) => logged.owner)).toEqual([{ uid: user.uid, userName: TEST_USER }]);
  });

  it(`tells libident's ident_lookup, run by ${TEST_USER} on its own connection, that user's name`, async () => {
    const report = await ownerScenario([{ client: 'libident-lookup' }]);
    const step = stepOf(report, 0);
    expect(step.code, step.stderr).toBe(0);
    const [serverPort, clientPort] = (fieldsOf(step.stdout, 'CONN') ?? []).map(Number);
    expect(fieldsOf(step.stdout, 'USERID'), report.gateway.stderr).toEqual([
      String(serverPort),
      String(clientPort),
      'UNIX',
      '(null)',
      TEST_USER,
    ]);
    expect(gatewayQueries(report)).toEqual([
      {
        query: { serverPort, clientPort },
        remoteAddress: '127.0.0.1',
        owner: { uid: user.uid, userName: TEST_USER },
        answer: { type: 'USERID', opsys: 'UNIX', userId: TEST_USER },
      },
    ]);
  });

  it('delivers the name to POE::Component::Client::Ident as ident_client_reply', async () => {
    const report = await ownerScenario([{ client: 'poe', connection: 'held' }]);
    const step = stepOf(report, 0);
    expect(step.stdout, report.gateway.stderr).toBe(`USERID\tUNIX\t${TEST_USER}\n`);
    expect(step.code).toBe(0);
    expect(gatewayQueries(report).map((logged) => logged.query)).toEqual([
      { serverPort: report.held.serverPort, clientPort: report.held.clientPort },
    ]);
  });
});

describe('real clients asking identgate serve on port 113 about a connection that does not exist', () => {
  // Each test first asks about the held connection with the same client: the
  // control that owner lookup works in that very namespace.
  it('gives Net::Ident the ERROR NO-USER (opsys "ERROR", error "NO-USER")', async () => {
    const report = await ownerScenario([
      { client: 'net-ident-ports', connection: 'held' },
      { client: 'net-ident-ports', connection: 'absent' },
    ]);
    expect(fieldsOf(stepOf(report, 0).stdout, 'USERID'), report.gateway.stderr).toEqual(['UNIX', TEST_USER]);
    const step = stepOf(report, 1);
    expect(step.stdout).toBe(`CONN\t${report.absent.serverPort}\t${report.absent.clientPort}\t0\nERROR\tNO-USER\n`);
    expect(step.code).toBe(0);
    expect(gatewayQueries(report)[1]).toMatchObject({
      query: report.absent,
      owner: null,
      answer: { type: 'ERROR', error: 'NO-USER' },
    });
  });

  it("gives libident the ERROR NO-USER as id_parse's server-error result", async () => {
    const report = await ownerScenario([
      { client: 'libident-query', connection: 'held' },
      { client: 'libident-query', connection: 'absent' },
    ]);
    expect(stepOf(report, 0).stdout, report.gateway.stderr).toContain(`\tUNIX\t(null)\t${TEST_USER}\n`);
    const step = stepOf(report, 1);
    expect(step.stdout).toBe(`ERROR\t${report.absent.serverPort}\t${report.absent.clientPort}\tNO-USER\n`);
    expect(step.code).toBe(0);
  });

  it('gives POE::Component::Client::Ident the ERROR NO-USER as ident_client_error', async () => {
    const report = await ownerScenario([
      { client: 'poe', connection: 'held' },
      { client: 'poe', connection: 'absent' },
    ]);
    expect(stepOf(report, 0).stdout, report.gateway.stderr).toBe(`USERID\tUNIX\t${TEST_USER}\n`);
    const step = stepOf(report, 1);
    expect(step.stdout).toBe('ERROR\tNO-USER\n');
    expect(step.code).toBe(0);
    expect(gatewayQueries(report).map((logged) => logged.query)).toEqual([
      { serverPort: report.held.serverPort, clientPort: report.held.clientPort },
      report.absent,
    ]);
  });
});
