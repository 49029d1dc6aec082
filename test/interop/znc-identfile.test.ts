/**
 * Issue 13, with real Debian daemons: two users of one ZNC (both run as the one Unix user
 * identgate-znc) connect to ngIRCd, which asks port 113 of each connection; `identgate serve`
 * answers there from a policy whose rule reads the ZNC user's oidentd file (docs/apps.md, ZNC),
 * and ngIRCd must show each ZNC user with their own ident (no `~`: the lookup succeeded), not the
 * Unix user's name. ZNC's identfile module writes `global { reply "<ident>" }` before each
 * connection and restores the file after it, so the answers can only come from reading it at
 * query time. Everything runs in a network namespace of its own (peers/znc-scenario.mjs).
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GATEWAY_CLI, requireBuiltGateway } from './gateway-scenario.js';
import { NETNS_TOOLS, PEERS_DIR, requireTools, runInNetns } from './netns.js';
import { readRecipe } from '../helpers/recipes.js';

const ZNC_USER = 'identgate-znc';
const ZNC_HOME = join(tmpdir(), 'identgate-znc-home');

let workDir: string;
let policyPath: string;
let user: { uid: number; gid: number; home: string };

function zncUnixUser(): { uid: number; gid: number; home: string } {
  const lookup = () => {
    try {
      const fields = execFileSync('getent', ['passwd', ZNC_USER], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      })
        .trim()
        .split(':');
      return { uid: Number(fields[2]), gid: Number(fields[3]), home: fields[5]! };
    } catch {
      return undefined;
    }
  };
  const existing = lookup();
  if (existing) return existing;
  try {
    execFileSync(
      'useradd',
      [
        '--system',
        '--user-group',
        '--no-create-home',
        '--home-dir',
        ZNC_HOME,
        '--shell',
        '/usr/sbin/nologin',
        ZNC_USER,
      ],
      { stdio: 'pipe' },
    );
  } catch (error) {
    if (!lookup())
      throw new Error(`cannot create the test user ${ZNC_USER} with useradd (run as root): ${String(error)}`);
  }
  return lookup()!;
}

beforeAll(async () => {
  await requireTools([
    ...NETNS_TOOLS,
    { command: 'setpriv', debianPackage: 'util-linux' },
    { command: 'useradd', debianPackage: 'passwd' },
    { command: 'znc', file: '/usr/lib/znc/identfile.so', debianPackage: 'znc' },
    { command: 'ngircd', debianPackage: 'ngircd' },
  ]);
  await requireBuiltGateway();
  user = zncUnixUser();
  workDir = await mkdtemp(join(tmpdir(), 'identgate-znc-interop-'));
  policyPath = join(workDir, 'policy.json');
  // The policy of the ZNC recipe in docs/apps.md, for this test's Unix user.
  const policy = readRecipe('znc').policy as { rules: { match?: { ownerName?: string } }[] };
  for (const rule of policy.rules) if (rule.match?.ownerName === 'znc') rule.match.ownerName = ZNC_USER;
  await writeFile(policyPath, JSON.stringify(policy));
});

afterAll(async () => {
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

async function scenario(policy: string) {
  const plan = { cli: GATEWAY_CLI, policy, user, zncUsers: ['alice', 'bob'] };
  const outer = await runInNetns(process.execPath, [join(PEERS_DIR, 'znc-scenario.mjs'), JSON.stringify(plan)], {
    timeoutMs: 55_000,
  });
  return JSON.parse(outer.stdout.trim().split('\n').pop() ?? '{}') as {
    users: Record<string, string> | null;
    identFileAfter: string | null;
    fault: string | null;
    ngircd: { stdout: string } | null;
    gateway: { stdout: string; stderr: string } | null;
  };
}

describe('two ZNC users behind one Unix user, asked about by ngIRCd', () => {
  it('look the same without a userFile rule (the control: one answer for the Unix user)', async () => {
    const control = join(workDir, 'control.json');
    await writeFile(
      control,
      JSON.stringify({
        version: 1,
        rules: [{ name: 'znc-account', match: { ownerName: ZNC_USER }, action: { userId: 'zncbox' } }],
        default: { action: { reveal: 'name' } },
      }),
    );
    const report = await scenario(control);
    expect(report.fault, report.fault ?? '').toBeNull();
    expect(report.users).toEqual({ alice: 'zncbox@localhost', bob: 'zncbox@localhost' });
  });

  it('get two different idents at the IRC server, each their own', async () => {
    const report = await scenario(policyPath);
    const context = `fault: ${report.fault}\nngircd: ${report.ngircd?.stdout.slice(-2000)}\ngateway: ${report.gateway?.stderr.slice(-2000)}`;
    expect(report.fault, context).toBeNull();
    expect(report.users).toEqual({ alice: 'alice@localhost', bob: 'bob@localhost' });
    // The gateway says it answered from the user file, once per ZNC user (its debug log, one JSON line per query).
    const delegated = (report.gateway?.stderr ?? '')
      .split('\n')
      .filter((line) => line.includes('"delegated":"userfile"'));
    expect(delegated.map((line) => (JSON.parse(line) as { answer: { userId: string } }).answer.userId).sort()).toEqual([
      'alice',
      'bob',
    ]);
    // identfile put the original (empty) file back once connected: the answers came from reading it at query time.
    expect(report.identFileAfter).toBe('');
  });
});
