/**
 * The driver of test/interop/znc-identfile.test.ts, run as root inside a network namespace of its
 * own (netns.ts runInNetns), where fixed ports are private: starts `identgate serve` on
 * 127.0.0.1:113 with the plan's policy, ngIRCd on 127.0.0.1:6667 with ident lookups on (it asks
 * port 113 of every client), and ZNC as the plan's test user with the identfile global module and
 * one user per name in `zncUsers`, each with one network on that ngIRCd. ZNC's identfile writes
 * `global { reply "<ident>" }` into the test user's ~/.oidentd.conf before each connection and
 * restores it once connected, so the gateway can only name each ZNC user by reading that file
 * when ngIRCd asks. A raw IRC client then WHOISes each ZNC user until ngIRCd shows them all, and
 * the driver prints one JSON line: { users: { nick: user@host user field }, gateway, ngircd, znc,
 * fault }. Every child is bounded in time and stopped before the line is written.
 *
 * Usage: node znc-scenario.mjs '<plan JSON>'
 *
 * @example
 * // node znc-scenario.mjs '{"cli":".../dist/gateway/cli/main.js","policy":"/tmp/p.json",
 * //   "user":{"uid":996,"gid":995,"home":"/tmp/identgate-znc"},"zncUsers":["alice","bob"]}'
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const HOST = '127.0.0.1';
const IRC_PORT = 6667;
const ZNC_PORT = 16667;
const START_TIMEOUT_MS = 20_000;
const SEEN_TIMEOUT_MS = 40_000;

const plan = JSON.parse(process.argv[2] ?? 'null');
if (plan === null || typeof plan.cli !== 'string' || !Array.isArray(plan.zncUsers)) {
  process.stderr.write("usage: node znc-scenario.mjs '<plan JSON>'\n");
  process.exit(2);
}

const started = [];
function start(command, args, { env = process.env, cwd = '/' } = {}) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env, cwd });
  const proc = { child, stdout: '', stderr: '', code: null, signal: null };
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

async function stop(proc, graceMs = 3_000) {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  proc.child.kill('SIGTERM');
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), graceMs);
  await proc.exited;
  clearTimeout(timer);
}

/** Resolves once `proc` has written something matching `pattern` (stdout or stderr). */
function waitForOutput(proc, pattern, what, timeoutMs = START_TIMEOUT_MS) {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (pattern.test(proc.stdout) || pattern.test(proc.stderr)) {
        clearInterval(timer);
        clearTimeout(limit);
        resolve();
      }
    };
    const timer = setInterval(check, 20);
    const limit = setTimeout(() => {
      clearInterval(timer);
      reject(new Error(`${what} did not get ready within ${timeoutMs} ms`));
    }, timeoutMs);
    void proc.exited.then(() => {
      check();
      clearInterval(timer);
      clearTimeout(limit);
      reject(new Error(`${what} exited (${proc.code ?? proc.signal})`));
    });
  });
}

async function waitForPort(port, timeoutMs = START_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const socket = connect({ host: HOST, port });
    const up = await new Promise((resolve) => {
      socket.once('connect', () => resolve(true));
      socket.once('error', () => resolve(false));
    });
    socket.destroy();
    if (up) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${HOST}:${port} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function ngircdConfig() {
  return [
    '[Global]',
    'Name = irc.identgate.test',
    'Info = identgate interop',
    `Listen = ${HOST}`,
    `Ports = ${IRC_PORT}`,
    '[Limits]',
    'MaxConnectionsIP = 0',
    'PingTimeout = 120',
    '[Options]',
    'Ident = yes',
    'DNS = yes',
    'PAM = no',
    '',
  ].join('\n');
}

function zncConfig(users) {
  const lines = [
    'Version = 1.8.2',
    'ConnectDelay = 1',
    'ServerThrottle = 1',
    'LoadModule = identfile',
    '<Listener l>',
    `  Port = ${ZNC_PORT}`,
    '  IPv4 = true',
    '  IPv6 = false',
    '  SSL = false',
    '</Listener>',
  ];
  for (const name of users) {
    const salt = randomBytes(10).toString('hex');
    const hash = createHash('sha256').update(`secret-${name}${salt}`).digest('hex');
    lines.push(
      `<User ${name}>`,
      `  <Pass password>`,
      `    Method = SHA256`,
      `    Hash = ${hash}`,
      `    Salt = ${salt}`,
      `  </Pass>`,
      `  Nick = ${name}`,
      `  AltNick = ${name}_`,
      `  Ident = ${name}`,
      `  RealName = ${name} via ZNC`,
      `  <Network test>`,
      `    Server = ${HOST} ${IRC_PORT}`,
      `  </Network>`,
      `</User>`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** A raw IRC client: registers, then WHOISes `nicks` until each has a 311 reply; resolves nick -> user. */
async function whoisUntilSeen(nicks) {
  const socket = connect({ host: HOST, port: IRC_PORT });
  socket.setEncoding('utf8');
  await once(socket, 'connect');
  const users = {};
  let buffered = '';
  let registered = false;
  const done = new Promise((resolve, reject) => {
    const limit = setTimeout(
      () =>
        reject(
          new Error(
            `ngIRCd did not show ${nicks.join(', ')} within ${SEEN_TIMEOUT_MS} ms (saw ${JSON.stringify(users)})`,
          ),
        ),
      SEEN_TIMEOUT_MS,
    );
    const ask = setInterval(() => {
      if (!registered) return;
      for (const nick of nicks) if (!(nick in users)) socket.write(`WHOIS ${nick}\r\n`);
    }, 300);
    socket.on('data', (chunk) => {
      buffered += chunk;
      let end;
      while ((end = buffered.indexOf('\n')) !== -1) {
        const line = buffered.slice(0, end).replace(/\r$/, '');
        buffered = buffered.slice(end + 1);
        const words = line.split(' ');
        if (words[0] === 'PING') socket.write(`PONG ${words[1]}\r\n`);
        if (words[1] === '001') registered = true;
        // :server 311 watcher <nick> <user> <host> * :<real name>
        if (words[1] === '311' && nicks.includes(words[3])) users[words[3]] = `${words[4]}@${words[5]}`;
      }
      if (nicks.every((nick) => nick in users)) {
        clearTimeout(limit);
        clearInterval(ask);
        resolve(users);
      }
    });
    socket.on('error', (error) => reject(error));
  });
  socket.write('NICK watcher\r\nUSER watcher 0 * :identgate interop watcher\r\n');
  try {
    return await done;
  } finally {
    socket.end('QUIT\r\n');
    socket.destroy();
  }
}

const report = { users: null, identFileAfter: null, gateway: null, ngircd: null, znc: null, fault: null };
const ngircdDir = mkdtempSync(join(tmpdir(), 'identgate-ngircd-'));
let gateway;
let ngircd;
let znc;
try {
  process.umask(0o022);
  gateway = start(process.execPath, [
    plan.cli,
    'serve',
    '--listen',
    `${HOST}:113`,
    '--policy',
    plan.policy,
    '--owner-lookup',
    'on',
    '--log-level',
    'debug',
    '--shutdown-grace',
    '1000',
  ]);
  await waitForOutput(gateway, /^identgate listening on /m, 'identgate serve');

  writeFileSync(join(ngircdDir, 'ngircd.conf'), ngircdConfig());
  writeFileSync(join(ngircdDir, 'ngircd.motd'), 'identgate interop\n');
  ngircd = start('ngircd', ['--nodaemon', '--config', join(ngircdDir, 'ngircd.conf')]);
  await waitForPort(IRC_PORT);

  const { uid, gid, home } = plan.user;
  rmSync(home, { recursive: true, force: true });
  mkdirSync(join(home, '.znc/configs'), { recursive: true });
  writeFileSync(join(home, '.znc/configs/znc.conf'), zncConfig(plan.zncUsers));
  for (const path of [home, join(home, '.znc'), join(home, '.znc/configs'), join(home, '.znc/configs/znc.conf')])
    chownSync(path, uid, gid);
  chmodSync(home, 0o755);
  znc = start(
    'setpriv',
    [
      '--reuid',
      String(uid),
      '--regid',
      String(gid),
      '--clear-groups',
      'znc',
      '--foreground',
      '--debug',
      '--datadir',
      join(home, '.znc'),
    ],
    { env: { PATH: process.env.PATH, HOME: home, LANG: 'C.UTF-8' }, cwd: home },
  );
  report.users = await whoisUntilSeen(plan.zncUsers);
  try {
    report.identFileAfter = readFileSync(join(home, '.oidentd.conf'), 'utf8');
  } catch (error) {
    report.identFileAfter = `(unreadable: ${error.code})`;
  }
} catch (error) {
  report.fault = error instanceof Error ? error.message : String(error);
} finally {
  for (const proc of [...started].reverse()) await stop(proc);
  rmSync(ngircdDir, { recursive: true, force: true });
  const outcome = (proc) =>
    proc ? { code: proc.code, signal: proc.signal, stdout: proc.stdout, stderr: proc.stderr } : null;
  report.gateway = outcome(gateway);
  report.ngircd = outcome(ngircd);
  report.znc = outcome(znc);
  process.stdout.write(`${JSON.stringify(report)}\n`);
}
