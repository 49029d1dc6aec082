/**
 * `--run-as USER[:GROUP]`: resolved (never uid or gid 0) before anything is bound; after binding, the switch to the
 * user, its group and no other, checked in /proc/self/status, before any child starts or any byte is read.
 *
 * @example
 * const target = resolveRunAs('identd');   // or 'identd:nogroup'; before binding
 * await server.bind();
 * dropPrivileges(target);
 * await server.start(handler);
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { IdentgateError } from '../../protocol/errors.js';
import type { Logger } from './log.js';

/** A privilege fault: one line for the user, exit 2 (the CLI prints it as such). */
export class PrivilegeError extends IdentgateError {
  readonly code = 'ERR_IDENTGATE_PRIVILEGES';
  override readonly userError = true;
}

/** Who `--run-as` names, resolved. */
export interface RunAsTarget {
  /** As given on the command line. */
  readonly spec: string;
  readonly uid: number;
  readonly gid: number;
}

function lookupEntry(kind: 'passwd' | 'group', name: string): string[] {
  let entry: string;
  try {
    // getent goes through NSS, so LDAP/sssd users work as they do for login.
    entry = execFileSync('getent', [kind, name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    throw new PrivilegeError(
      `--run-as: no ${kind === 'passwd' ? 'user' : 'group'} named ${JSON.stringify(name)} on this host`,
    );
  }
  return entry.split('\n')[0]!.split(':');
}

/**
 * Looks USER[:GROUP] up and checks it can be switched to: refuses uid 0 and
 * gid 0 (`root`, `0`, `nobody:0`, `nobody:root`, a user whose primary group
 * is 0), and a process that is not root (unless it already runs as exactly
 * that user and group: a cluster worker started by a supervisor that dropped).
 */
export function resolveRunAs(spec: string): RunAsTarget {
  const [userName, groupName] = spec.split(':') as [string, string | undefined];
  const user = lookupEntry('passwd', userName);
  const uid = Number(user[2]);
  if (uid === 0)
    throw new PrivilegeError(
      `--run-as ${spec}: ${JSON.stringify(userName)} is uid 0 (root); name an unprivileged user, e.g. --run-as nobody`,
    );
  let gid: number;
  if (groupName === undefined) {
    gid = Number(user[3]);
    if (gid === 0)
      throw new PrivilegeError(
        `--run-as ${spec}: the primary group of ${JSON.stringify(userName)} is gid 0 (root); name another group, e.g. --run-as ${userName}:nogroup`,
      );
  } else {
    gid = Number(lookupEntry('group', groupName)[2]);
    if (gid === 0)
      throw new PrivilegeError(
        `--run-as ${spec}: group ${JSON.stringify(groupName)} is gid 0 (root); name an unprivileged group, e.g. --run-as ${userName}:nogroup`,
      );
  }
  if (process.getuid?.() !== 0) {
    const already = process.getuid?.() === uid && process.getgid?.() === gid;
    if (!already)
      throw new PrivilegeError('--run-as needs identgate to start as root (it binds first, then switches user)');
  }
  return { spec, uid, gid };
}

/** Whether this process runs as root (euid 0) now. */
export function runningAsRoot(): boolean {
  return process.geteuid?.() === 0;
}

/** Serving as root without --run-as: said once at start, at warn. */
export function warnRoot(log: Pick<Logger, 'warn'>): void {
  log.warn(
    'serving as root without --run-as: every query is handled with root privileges; add --run-as USER, or use the systemd socket unit (docs/operations.md)',
  );
}

/** Switches to the target (no-op when already it), then verifies (verifyDropped). */
export function dropPrivileges(target: RunAsTarget, readStatus = readOwnStatus): void {
  if (process.getuid?.() === 0 || process.geteuid?.() === 0) {
    // Order matters: groups and gid while still root, the uid last.
    process.setgroups!([target.gid]);
    process.setgid!(target.gid);
    process.setuid!(target.uid);
  }
  verifyDropped(target, readStatus());
}

function readOwnStatus(): string | undefined {
  try {
    return readFileSync('/proc/self/status', 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * Throws a PrivilegeError unless, after the switch, the real, effective,
 * saved and file-system uids and gids are the target's, no supplementary
 * group is 0, and no capability is left (CapEff, CapPrm). Reads
 * /proc/self/status (`status`); without /proc, what Node can tell (real and
 * effective ids, groups).
 */
export function verifyDropped(target: RunAsTarget, status: string | undefined): void {
  const refuse = (what: string) =>
    new PrivilegeError(`--run-as ${target.spec}: after switching user, ${what}; refusing to serve with root's rights`);
  if (status === undefined) {
    const ids = {
      uid: process.getuid?.(),
      euid: process.geteuid?.(),
      gid: process.getgid?.(),
      egid: process.getegid?.(),
    };
    for (const [name, value] of Object.entries(ids)) if (value === 0) throw refuse(`the ${name} is still 0`);
    if (process.getgroups?.().includes(0)) throw refuse('supplementary group 0 is still held');
    return;
  }
  const field = (name: string): string => {
    const line = status.split('\n').find((l) => l.startsWith(`${name}:`));
    if (line === undefined) throw refuse(`/proc/self/status has no ${name} line`);
    return line.slice(name.length + 1).trim();
  };
  const ids = (name: 'Uid' | 'Gid', want: number) => {
    const values = field(name).split(/\s+/).map(Number);
    if (values.length !== 4 || values.some((value) => value !== want))
      throw refuse(`${name} is ${field(name).replace(/\s+/g, ' ')} (real, effective, saved, fs), not ${want}`);
  };
  ids('Uid', target.uid);
  ids('Gid', target.gid);
  const groups = field('Groups').split(/\s+/).filter(Boolean).map(Number);
  if (groups.some((group) => group === 0 || group !== target.gid))
    throw refuse(`the supplementary groups are ${groups.join(' ')}, not ${target.gid} alone`);
  for (const caps of ['CapEff', 'CapPrm']) {
    if (!/^0+$/.test(field(caps))) throw refuse(`${caps} is ${field(caps)} (capabilities are still held)`);
  }
}
