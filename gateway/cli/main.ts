#!/usr/bin/env node
/**
 * The `identgate` executable. It takes over SIGHUP before importing anything, so a `systemctl reload` during start
 * is held and becomes one policy reload once the gateway is ready (SIGHUP's default action would kill it).
 *
 * @example
 * identgate serve --listen 127.0.0.1:1113 --reply grimlock
 */
import type { Hangups } from './commands.js';

let reload: (() => void) | undefined;
let pending = false;
const argv = process.argv.slice(2);
if (argv[0] === 'serve' || argv[0] === 'worker') process.on('SIGHUP', () => (reload ? reload() : (pending = true)));

const hangups: Hangups = {
  ready(onReload) {
    reload = onReload;
    if (pending) onReload();
  },
};

const { main, isUserError } = await import('./commands.js');
main(argv, hangups).then(
  (code) => {
    if (code !== undefined) process.exitCode = code;
  },
  (error: unknown) => {
    if (isUserError(error)) process.stderr.write(`identgate: ${error.message}\n`);
    else
      process.stderr.write(
        `identgate: unexpected error (a bug — please report it):\n${error instanceof Error ? error.stack : String(error)}\n`,
      );
    process.exitCode = 2;
  },
);
