/**
 * The driver of the gateway interop tests (test/interop/gateway-*.test.ts),
 * run as root inside a network namespace of its own (netns.ts runInNetns):
 * starts `identgate serve --listen 127.0.0.1:113` with the plan's arguments,
 * opens a TCP listener on 127.0.0.1 and has the dedicated test user hold a
 * connection to it (peers/gateway-holder.mjs through setpriv), runs the
 * plan's real Debian clients one after the other against port 113, then
 * stops everything it started and prints one JSON line (ScenarioReport in
 * gateway-scenario.ts). Every child is bounded in time; a fault of the
 * scenario itself (the gateway not starting, the holder failing) is reported
 * in `fault`, never by exiting without the JSON line.
 *
 * Connections a step can ask about: `held` is the test user's connection
 * (serverPort = the user's end, here on the gateway's host; clientPort = the
 * driver's listener, the querier's end); `absent` pairs the listener's port
 * with a port nothing is connected to, so no connection exists, and an exact
 * kernel lookup would find only root's listening socket.
 *
 * Usage: node gateway-scenario.mjs '<plan JSON>'
 *
 * @example
 * // node gateway-scenario.mjs '{"cli":"/work/main/dist/gateway/cli/main.js","gatewayArgs":["--reply","x"],
 * //   "user":{"uid":996,"gid":995},"steps":[{"client":"net-ident-accept"}]}'
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PEERS_DIR = dirname(fileURLToPath(import.meta.url));
const HOLDER = join(PEERS_DIR, 'gateway-holder.mjs');
const NET_IDENT = join(PEERS_DIR, 'gateway-net-ident.pl');
const POE_IDENT = join(PEERS_DIR, 'poe-ident.pl');
const HOST = '127.0.0.1';
const GATEWAY_READY = /listening on .*\n/;
const START_TIMEOUT_MS = 20_000;
const STEP_TIMEOUT_MS = 15_000;

const plan = JSON.parse(process.argv[2] ?? 'null');
if (plan === null || typeof plan.cli !== 'string' || !Array.isArray(plan.steps)) {
  process.stderr.write("usage: node gateway-scenario.mjs '<plan JSON>'\n");
  process.exit(2);
}

/** Every child started, so that none outlives the driver. */
const started = [];

/** A child process whose output and exit status are collected. */
function start(command, args, { stdin = 'ignore', cwd = '/' } = {}) {
  const child = spawn(command, args, { stdio: [stdin, 'pipe', 'pipe'], cwd });
  const proc = { child, stdout: '', stderr: '', code: null, signal: null, timedOut: false };
  started.push(proc);
  child.stdout.setEncoding('utf8').on('data', (chunk) => (proc.stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk) => (proc.stderr += chunk));
  proc.exited = new Promise((resolve) => {
    child.on('error', (error) => {
      proc.stderr += `cannot run ${command}: ${error.message}\n`;
      resolve();
    });
    child.on('close', (code, signal) => {
      proc.code = code;
      proc.signal = signal;
      resolve();
    });
  });
  return proc;
}

/** Resolves with the first stdout line of `proc` matching `pattern`; rejects when it exits first or after `timeoutMs`. */
function lineOf(proc, pattern, what, timeoutMs = STEP_TIMEOUT_MS) {
  return new Promise((resolve, reject) => {
    const check = () => {
      const line = proc.stdout
        .split('\n')
        .slice(0, -1)
        .find((candidate) => pattern.test(candidate));
      if (line === undefined) return false;
      done();
      resolve(line);
      return true;
    };
    const onExit = () => {
      if (check()) return;
      done();
      reject(
        new Error(
          `${what} exited (${proc.code ?? proc.signal}) before printing ${pattern}; stdout: ${JSON.stringify(proc.stdout)}, stderr: ${JSON.stringify(proc.stderr)}`,
        ),
      );
    };
    const timer = setTimeout(() => {
      done();
      reject(
        new Error(
          `${what} printed no ${pattern} within ${timeoutMs} ms; stdout: ${JSON.stringify(proc.stdout)}, stderr: ${JSON.stringify(proc.stderr)}`,
        ),
      );
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      proc.child.stdout.off('data', onData);
    };
    const onData = () => check();
    proc.child.stdout.on('data', onData);
    void proc.exited.then(onExit);
    check();
  });
}

/** Waits for `proc` to exit, killing it after `timeoutMs`. */
async function finish(proc, timeoutMs = STEP_TIMEOUT_MS) {
  const timer = setTimeout(() => {
    proc.timedOut = true;
    proc.child.kill('SIGKILL');
  }, timeoutMs);
  await proc.exited;
  clearTimeout(timer);
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
async function stop(proc, graceMs = 3_000) {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  proc.child.kill('SIGTERM');
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), graceMs);
  await proc.exited;
  clearTimeout(timer);
}

function outcome(proc) {
  return { code: proc.code, signal: proc.signal, timedOut: proc.timedOut, stdout: proc.stdout, stderr: proc.stderr };
}

const asUser = (command, args) => [
  'setpriv',
  ['--reuid', String(plan.user.uid), '--regid', String(plan.user.gid), '--clear-groups', command, ...args],
];

const holders = [];
/** The test user connects to HOST:port and holds the connection; resolves with { clientPort, uid }. */
async function holdAsUser(port) {
  // The holder's source goes on the command line: the test user may not be able to
  // read the checkout (it can sit under a private /root). '-' stands in for argv[1].
  const holder = start(
    ...asUser(process.execPath, ['--input-type=module', '-e', readFileSync(HOLDER, 'utf8'), '-', HOST, String(port)]),
    { stdin: 'pipe' },
  );
  holders.push(holder);
  const line = await lineOf(holder, /^\{/, `the holder running as uid ${plan.user.uid}`);
  return JSON.parse(line);
}

async function freePort() {
  const server = createServer().listen(0, HOST);
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

const report = { gateway: null, held: null, absent: null, steps: [], fault: null };
let gateway;
const listener = createServer();
const accepted = [];
listener.on('connection', (socket) => accepted.push(socket));

try {
  gateway = start(process.execPath, [
    plan.cli,
    'serve',
    '--listen',
    `${HOST}:113`,
    '--shutdown-grace',
    '1000',
    ...plan.gatewayArgs,
  ]);
  await lineOf(gateway, /^identgate listening on /, 'identgate serve', START_TIMEOUT_MS);

  listener.listen(0, HOST);
  await once(listener, 'listening');
  const listenerPort = listener.address().port;
  const connected = once(listener, 'connection');
  const holder = await holdAsUser(listenerPort);
  await connected;
  report.held = { serverPort: holder.clientPort, clientPort: listenerPort, uid: holder.uid };
  report.absent = { serverPort: listenerPort, clientPort: await freePort() };

  for (const step of plan.steps) {
    const ports = step.connection === undefined ? undefined : report[step.connection];
    const portArgs = ports === undefined ? [] : [String(ports.serverPort), String(ports.clientPort)];
    let proc;
    const result = { client: step.client, connection: step.connection ?? null };
    switch (step.client) {
      case 'net-ident-accept': {
        proc = start('perl', [NET_IDENT, 'accept', HOST]);
        const listenLine = await lineOf(proc, /^LISTEN\t/, 'gateway-net-ident.pl accept');
        result.holder = await holdAsUser(Number(listenLine.split('\t')[1]));
        break;
      }
      case 'net-ident-ports':
        proc = start('perl', [NET_IDENT, 'ports', HOST, ...portArgs]);
        break;
      case 'libident-query':
        proc = start(plan.identQuery, ['query', HOST, ...portArgs]);
        break;
      case 'libident-lookup':
        proc = start(...asUser(plan.identQuery, ['lookup', HOST]));
        break;
      case 'poe':
        proc = start('perl', [POE_IDENT, HOST, '113', ...portArgs]);
        break;
      default:
        throw new Error(`unknown client ${JSON.stringify(step.client)}`);
    }
    await finish(proc);
    report.steps.push({ ...result, ...outcome(proc) });
  }
} catch (error) {
  report.fault = error instanceof Error ? error.message : String(error);
} finally {
  for (const holder of holders) {
    holder.child.stdin.end();
    await finish(holder, 3_000);
  }
  for (const socket of accepted) socket.destroy();
  listener.close();
  if (gateway !== undefined) {
    await stop(gateway);
    report.gateway = outcome(gateway);
  }
  for (const proc of started) await stop(proc, 0);
  process.stdout.write(`${JSON.stringify(report)}\n`);
}
