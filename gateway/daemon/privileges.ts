/**
 * Dropping root after binding port 113 (`--run-as USER[:GROUP]`): the
 * listeners are bound first, then the process takes the user's uid, its
 * primary group (or the named one) and no supplementary groups.
 *
 * @example
 * await server.start(handler);
 * dropPrivileges('identd');            // or 'identd:nogroup'
 */
import { execFileSync } from 'node:child_process';
import { ConfigError } from '../../protocol/errors.js';

function lookupId(kind: 'passwd' | 'group', name: string): { id: number; gid?: number } {
  let entry: string;
  try {
    // getent goes through NSS, so LDAP/sssd users work as they do for login.
    entry = execFileSync('getent', [kind, name], { encoding: 'utf8' }).trim();
  } catch {
    throw new ConfigError(
      `--run-as: no ${kind === 'passwd' ? 'user' : 'group'} named ${JSON.stringify(name)} on this host`,
    );
  }
  const fields = entry.split(':');
  return { id: Number(fields[2]), gid: kind === 'passwd' ? Number(fields[3]) : undefined };
}

/** Switches to USER[:GROUP]; returns the uid and gid now in effect. */
export function dropPrivileges(runAs: string): { uid: number; gid: number } {
  const [userName, groupName] = runAs.split(':') as [string, string | undefined];
  if (process.getuid?.() !== 0) {
    // Already that user (a restarted cluster worker of a primary that dropped root): nothing to do.
    const user = lookupId('passwd', userName);
    if (process.getuid?.() === user.id) return { uid: user.id, gid: process.getgid!() };
    throw new ConfigError('--run-as needs identgate to start as root (it binds first, then switches user)');
  }
  const user = lookupId('passwd', userName);
  const gid = groupName === undefined ? user.gid! : lookupId('group', groupName).id;
  process.setgroups!([gid]);
  process.setgid!(gid);
  process.setuid!(user.id);
  return { uid: user.id, gid };
}
