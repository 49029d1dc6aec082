import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../../../gateway/cli/command-list.js';
import { SERVE_FLAGS } from '../../../gateway/cli/flags.js';
import { CLI, runCli } from '../../helpers/cli.js';

const run = promisify(execFile);

/** What bash offers for the words typed so far (the last one being completed), with the script loaded. */
async function complete(...typed: string[]): Promise<string[]> {
  const script = `source <("${process.execPath}" "${CLI}" completion bash)
complete -p identgate
COMP_WORDS=(identgate ${typed.map((word) => `'${word}'`).join(' ')})
COMP_CWORD=${typed.length}
_identgate
printf '%s\\n' "\${COMPREPLY[@]}"`;
  const { stdout } = await run('bash', ['-c', script], { cwd: '/' });
  const [registration, ...offered] = stdout.trimEnd().split('\n');
  expect(registration).toBe('complete -F _identgate identgate');
  return offered.filter(Boolean);
}

describe('identgate completion bash', () => {
  it('registers a completion that offers every command', async () => {
    expect(await complete('')).toEqual(
      expect.arrayContaining([...COMMANDS.map((command) => command.name), 'help', '--help', '--version']),
    );
    expect(await complete('se')).toEqual(['serve']);
  });

  it("offers every one of a command's flags, from its flag table", async () => {
    const offered = await complete('serve', '--');
    expect(offered.sort()).toEqual([...Object.keys(SERVE_FLAGS).map((name) => `--${name}`), '--help'].sort());
    expect(await complete('serve', '--reply-e')).toEqual(['--reply-error']);
  });

  it('offers file names after a flag whose value is a FILE, and subcommands after claim, audit and policy', async () => {
    expect(await complete('serve', '--policy', 'et')).toEqual(['etc']);
    expect(await complete('policy', '')).toEqual(['check', 'get', 'put']);
    expect(await complete('policy', 'check', 'et')).toEqual(['etc']);
    expect(await complete('help', 'wo')).toEqual(['worker']);
  });

  it('needs a shell name it knows, exit 2', async () => {
    const { code, stderr } = await runCli(['completion', 'zsh']);
    expect(stderr).toBe('identgate: identgate completion "zsh": expected bash\n');
    expect(code).toBe(2);
  });
});
