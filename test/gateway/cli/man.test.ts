import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../../../gateway/cli/command-list.js';
import { identgateManPage, policyManPage } from '../../../gateway/cli/man.js';
import { identgateVersion } from '../../../gateway/version.js';
import { ACTIONS } from '../../../worker/policy/actions/index.js';
import { ROOT } from '../../helpers/cli.js';

const run = promisify(execFile);

/** `man -l PAGE` as a reader sees it: plain text, and groff's warnings. */
async function render(page: string): Promise<{ text: string; warnings: string }> {
  const { stdout, stderr } = await run('man', ['--warnings', '-l', join(ROOT, page)], {
    env: { ...process.env, MANPAGER: 'cat', MANWIDTH: '100', LANG: 'C.UTF-8' },
  });
  return { text: stdout.replace(/.\x08/g, ''), warnings: stderr };
}

describe('the man pages', () => {
  it('are what `npm run docs:man` makes from the command list, the flag tables and docs/policy.md', () => {
    expect(readFileSync(join(ROOT, 'man/identgate.8'), 'utf8')).toBe(identgateManPage(identgateVersion()));
    expect(readFileSync(join(ROOT, 'man/identgate-policy.5'), 'utf8')).toBe(
      policyManPage(readFileSync(join(ROOT, 'docs/policy.md'), 'utf8'), identgateVersion()),
    );
  });

  it('are installed through package.json "man"', () => {
    const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { man: string[] };
    expect(manifest.man).toEqual(['man/identgate.8', 'man/identgate-policy.5']);
  });

  it('identgate(8) renders with man -l without warnings and names every command and every flag', async () => {
    const { text, warnings } = await render('man/identgate.8');
    expect(warnings).toBe('');
    expect(text).toMatch(/^IDENTGATE\(8\)/);
    for (const command of COMMANDS) {
      expect(text).toContain(`identgate ${command.name}`);
      for (const name of Object.keys(command.flags)) expect(text, `${command.name} --${name}`).toContain(`--${name}`);
    }
  });

  it('identgate-policy(5) renders with man -l without warnings and documents every action', async () => {
    const { text, warnings } = await render('man/identgate-policy.5');
    expect(warnings).toBe('');
    expect(text).toMatch(/^IDENTGATE-POLICY\(5\)/);
    for (const action of ACTIONS) expect(text, action.key).toContain(action.key);
    expect(text).toContain('MATCH CONDITIONS');
  });
});
