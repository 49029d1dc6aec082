/**
 * `npm run dev:worker`: the Workers entry under wrangler dev, offline, on 127.0.0.1:8787. Creates .dev.vars from
 * .dev.vars.example once, and loads examples/policy.json into the local KV only when it holds no policy yet
 * (`-- --reset-policy` loads it again), so a policy PUT earlier survives a restart.
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const wrangler = join(root, 'node_modules', '.bin', 'wrangler');
const env = { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false' };
const args = process.argv.slice(2);
const reset = args.includes('--reset-policy');
const passThrough = args.filter((arg) => arg !== '--reset-policy');

function fail(message) {
  console.error(`identgate dev:worker: ${message}`);
  process.exit(2);
}

if (!existsSync(wrangler)) fail('wrangler is not installed here: run npm install first');
if (!existsSync(join(root, '.dev.vars'))) {
  copyFileSync(join(root, '.dev.vars.example'), join(root, '.dev.vars'));
  console.log('identgate dev:worker: created .dev.vars from .dev.vars.example (change its secrets)');
}

const kv = (...rest) =>
  spawnSync(wrangler, ['kv', 'key', ...rest, '--binding', 'POLICY', '--local'], { cwd: root, env, encoding: 'utf8' });
const held = kv('get', 'policy');
if (held.status !== 0) fail(`could not read the local KV: ${(held.stderr || held.stdout).trim().split('\n')[0]}`);
const empty = held.stdout.trim() === 'Value not found';
if (empty || reset) {
  const put = kv('put', 'policy', '--path', join(root, 'examples', 'policy.json'));
  if (put.status !== 0)
    fail(`could not load examples/policy.json: ${(put.stderr || put.stdout).trim().split('\n')[0]}`);
  console.log(
    `identgate dev:worker: loaded examples/policy.json into the local KV${empty ? ' (it held no policy)' : ''}`,
  );
} else {
  console.log(
    'identgate dev:worker: the local KV already holds a policy; serving it (npm run dev:worker -- --reset-policy loads examples/policy.json again)',
  );
}

// The audit database (docs/audit.md): the local D1 gets worker/migrations/, as `--remote` would on deploy.
const migrated = spawnSync(wrangler, ['d1', 'migrations', 'apply', 'AUDIT', '--local'], {
  cwd: root,
  env,
  encoding: 'utf8',
});
if (migrated.status !== 0)
  fail(`could not migrate the local D1: ${(migrated.stderr || migrated.stdout).trim().split('\n')[0]}`);
console.log('identgate dev:worker: the local D1 (AUDIT) has the audit schema');

const child = spawn(wrangler, ['dev', '--ip', '127.0.0.1', '--port', '8787', ...passThrough], {
  cwd: root,
  env,
  stdio: 'inherit',
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
