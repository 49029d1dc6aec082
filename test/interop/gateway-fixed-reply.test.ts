/**
 * `identgate serve --reply NAME` (a fixed answer, no policy and no owner
 * lookup) on 127.0.0.1:113 in a network namespace of its own, asked by
 * Net::Ident (Debian libnet-ident-perl): a root Perl server accepts a
 * connection from the dedicated user identgate-interop and looks it up, and
 * is told the fixed name with opsys OTHER, not the owner's; ports between
 * which no connection exists get the same fixed name, since nothing is looked
 * up. See gateway-scenario.ts for how a scenario runs.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  ensureTestUser,
  fieldsOf,
  requireBuiltGateway,
  runGatewayScenario,
  stepOf,
  type TestUser,
} from './gateway-scenario.js';
import { NETNS_TOOLS, requireTools } from './netns.js';

const FIXED_NAME = 'interop-fixed';

let user: TestUser;

beforeAll(async () => {
  await requireTools([
    ...NETNS_TOOLS,
    { command: 'setpriv', debianPackage: 'util-linux' },
    { command: 'useradd', debianPackage: 'passwd' },
    { command: 'perl', module: 'Net::Ident', debianPackage: 'libnet-ident-perl' },
  ]);
  await requireBuiltGateway();
  user = ensureTestUser();
});

describe('Net::Ident asking identgate serve --reply on port 113', () => {
  it('is told the fixed name with opsys OTHER for a connection it accepted', async () => {
    const report = await runGatewayScenario({
      gatewayArgs: ['--reply', FIXED_NAME],
      user,
      steps: [{ client: 'net-ident-accept' }],
    });
    const step = stepOf(report, 0);
    expect(step.stderr).toBe('');
    expect(step.code).toBe(0);
    expect(step.holder?.uid).toBe(user.uid);
    expect(fieldsOf(step.stdout, 'CONN')?.[0]).toBe(String(step.holder?.clientPort));
    expect(fieldsOf(step.stdout, 'USERID'), report.gateway.stderr).toEqual(['OTHER', FIXED_NAME]);
    expect(report.gateway.stdout).toContain('answers: fixed; owner lookup: off');
  });

  it('is told the same fixed name about ports between which no connection exists', async () => {
    const report = await runGatewayScenario({
      gatewayArgs: ['--reply', FIXED_NAME],
      user,
      steps: [{ client: 'net-ident-ports', connection: 'absent' }],
    });
    const step = stepOf(report, 0);
    expect(step.code).toBe(0);
    expect(step.stdout, report.gateway.stderr).toBe(
      `CONN\t${report.absent.serverPort}\t${report.absent.clientPort}\t0\nUSERID\tOTHER\t${FIXED_NAME}\n`,
    );
  });
});
