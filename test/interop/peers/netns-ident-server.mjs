/**
 * Runs inside a network namespace made by test/interop/netns.ts: starts an
 * identgate IdentServer on 127.0.0.1:113 (loaded from the transpiled tree
 * `compiledRoot`), runs one ident client command against it, stops the
 * server and prints one JSON line: { queries, code, signal, stdout, stderr },
 * where `queries` are the requests the server received. The handler answers
 * with a user name made of the ports asked, `u<serverPort>c<clientPort>`
 * (opsys UNIX), so a test can prove the client asked about the right
 * connection, and with ERROR HIDDEN-USER when the client port is
 * `errorClientPort`.
 *
 * Usage: node netns-ident-server.mjs <compiledRoot> <errorClientPort> -- <command> [args...]
 *
 * @example
 * // node netns-ident-server.mjs /tmp/identgate-interop-x 4001 -- perl net-ident.pl 127.0.0.1 4000
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [compiledRoot, errorClientPortText, separator, command, ...args] = process.argv.slice(2);
if (compiledRoot === undefined || errorClientPortText === undefined || separator !== '--' || command === undefined) {
  process.stderr.write('usage: node netns-ident-server.mjs <compiledRoot> <errorClientPort> -- <command> [args...]\n');
  process.exit(2);
}
const errorClientPort = Number(errorClientPortText);
const CLIENT_TIMEOUT_MS = 20_000;

const { IdentServer } = await import(pathToFileURL(join(compiledRoot, 'gateway/server/server.js')).href);

const queries = [];
const serverErrors = [];
const server = new IdentServer({
  hostname: '127.0.0.1',
  port: 113,
  onError: (error) => serverErrors.push(`${error.code}: ${error.message}`),
});
await server.start((tx) => {
  const { serverPort, clientPort } = tx.req;
  queries.push({ serverPort, clientPort, remoteAddress: tx.remoteAddress });
  if (clientPort === errorClientPort) tx.replyWithError('HIDDEN-USER');
  else tx.replyWithUser('UNIX', `u${serverPort}c${clientPort}`);
});

const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
let stdout = '';
let stderr = '';
child.stdout.setEncoding('utf8').on('data', (chunk) => (stdout += chunk));
child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
const timer = setTimeout(() => child.kill('SIGKILL'), CLIENT_TIMEOUT_MS);
const [code, signal] = await new Promise((resolve) => {
  child.on('error', (error) => {
    stderr += `cannot run ${command}: ${error.message}\n`;
    resolve([null, null]);
  });
  child.on('close', (exitCode, exitSignal) => resolve([exitCode, exitSignal]));
});
clearTimeout(timer);
await server.stop({ graceMs: 1_000 });
process.stdout.write(`${JSON.stringify({ queries, serverErrors, code, signal, stdout, stderr })}\n`);
