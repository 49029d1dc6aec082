import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../../../gateway/cli/command-list.js';
import { runCli } from '../../helpers/cli.js';

describe('identgate with no command, help, or an unknown one', () => {
  it('lists every command in --help, each with its own --help', async () => {
    const { code, stdout } = await runCli(['--help']);
    expect(code).toBe(0);
    for (const command of COMMANDS) expect(stdout).toContain(`identgate ${command.name} `);
    const helps = await Promise.all(COMMANDS.map((command) => runCli([command.name, '--help'])));
    for (const [index, help] of helps.entries()) {
      expect(help.code, COMMANDS[index]!.name).toBe(0);
      expect(help.stdout, COMMANDS[index]!.name).toMatch(new RegExp(`^identgate ${COMMANDS[index]!.name}\\b`));
    }
  });

  it('names every command when the command is unknown, exit 2', async () => {
    const { code, stderr } = await runCli(['nope']);
    expect(code).toBe(2);
    const names = COMMANDS.map((command) => command.name);
    expect(stderr).toBe(
      `identgate: unknown command "nope": expected ${names.slice(0, -1).join(', ')} or ${names.at(-1)} (see 'identgate --help')\n`,
    );
  });
});
