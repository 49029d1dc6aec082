/**
 * The policy worker's CPU per decision inside workerd, without wrangler's proxy: the Workers bundle
 * (`npm run deploy:check`) run by Miniflare's API, signed batches sent with dispatchFetch, workerd's CPU read from
 * /proc (every thread's schedstat). Usage: node bench/workerd-cpu.mjs [--requests N] [--batches 1,16,64] [--json]
 */
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Miniflare } from 'miniflare';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { signatureHeaders } = await import(join(root, 'dist/protocol/index.js'));

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '400' },
    batches: { type: 'string', default: '1,16,64' },
    concurrency: { type: 'string', default: '4' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log('usage: node bench/workerd-cpu.mjs [--requests N] [--batches 1,16,64] [--concurrency N] [--json]');
  process.exit(0);
}
const requests = Number(values.requests);
const concurrency = Number(values.concurrency);
const batches = values.batches.split(',').map(Number);
if (![requests, concurrency, ...batches].every((n) => Number.isInteger(n) && n > 0)) {
  console.error('workerd-cpu: --requests, --concurrency and --batches take positive integers');
  process.exit(2);
}
const bundle = join(root, 'dist/worker-bundle/workers-entry.js');
if (!existsSync(bundle)) {
  console.error(`workerd-cpu: ${bundle} is missing: run npm run build && npm run deploy:check first`);
  process.exit(2);
}

/** CPU nanoseconds of every thread of every workerd process below this one. */
function workerdCpuNs() {
  let total = 0;
  const children = (pid) => {
    const out = [];
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      try {
        out.push(
          ...readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number),
        );
      } catch {}
    }
    return out;
  };
  const walk = (pid) => {
    for (const child of children(pid)) {
      let comm = '';
      try {
        comm = readFileSync(`/proc/${child}/comm`, 'utf8').trim();
      } catch {
        continue;
      }
      if (comm === 'workerd') {
        for (const task of readdirSync(`/proc/${child}/task`)) {
          try {
            total += Number(readFileSync(`/proc/${child}/task/${task}/schedstat`, 'utf8').split(' ')[0]);
          } catch {}
        }
      }
      walk(child);
    }
  };
  walk(process.pid);
  return total;
}

const SECRET = 'bench-secret-0123456789abcdef';
const mf = new Miniflare({
  modules: true,
  scriptPath: bundle,
  compatibilityDate: '2026-04-01',
  kvNamespaces: ['POLICY'],
  bindings: { IDENTGATE_SECRETS: SECRET, IDENTGATE_ADMIN_TOKENS: 'bench-admin-token-0123456789' },
  // The worker's decision log is part of its cost; reading it here is not.
  handleRuntimeStdio: (stdout, stderr) => {
    stdout.resume();
    stderr.resume();
  },
});
await mf.ready;
await (await mf.getKVNamespace('POLICY')).put('policy', readFileSync(join(root, 'examples/policy.json'), 'utf8'));

let sequence = 0;
async function send(batch) {
  const body = JSON.stringify({
    v: 1,
    requests: Array.from({ length: batch }, (_, i) => ({
      v: 1,
      id: `bench-${++sequence}`,
      gateway: 'bench',
      query: { serverPort: 400 + (i % 7), clientPort: 500 },
      connection: {
        localAddress: '127.0.0.1',
        localPort: 113,
        remoteAddress: '127.0.0.1',
        remotePort: 40000 + (i % 1000),
      },
      owner: { uid: 1000 + (i % 3), userName: `user${i % 3}` },
    })),
  });
  const path = '/v1/ident/batch';
  const headers = { 'content-type': 'application/json', ...(await signatureHeaders([SECRET], 'POST', path, body)) };
  const res = await mf.dispatchFetch(`http://worker${path}`, { method: 'POST', headers, body });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`worker answered ${res.status}: ${text.slice(0, 200)}`);
}

async function run(batch, count) {
  let next = 0;
  const lane = async () => {
    while (next++ < count) await send(batch);
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
}

const rows = [];
for (const batch of batches) {
  await run(batch, Math.max(20, requests / 10)); // warm the isolate, the KV cache and the JIT
  const cpu0 = workerdCpuNs();
  const t0 = performance.now();
  await run(batch, requests);
  const wallMs = performance.now() - t0;
  const cpuUs = (workerdCpuNs() - cpu0) / 1000;
  rows.push({
    batch,
    requests,
    decisions: requests * batch,
    cpuUsPerRequest: cpuUs / requests,
    cpuUsPerDecision: cpuUs / (requests * batch),
    requestsPerQuery: 1 / batch,
    decisionsPerSecond: (requests * batch) / (wallMs / 1000),
  });
}
await mf.dispose();

if (values.json) console.log(JSON.stringify(rows));
else {
  console.log(
    'workerd CPU per decision (Workers bundle under Miniflare, no wrangler proxy; includes workerd HTTP parsing)',
  );
  console.log('batch  requests  CPU µs/request  CPU µs/decision  requests/query  decisions/s');
  for (const r of rows) {
    console.log(
      `${String(r.batch).padStart(5)}  ${String(r.requests).padStart(8)}  ${r.cpuUsPerRequest.toFixed(1).padStart(14)}  ${r.cpuUsPerDecision.toFixed(1).padStart(15)}  ${r.requestsPerQuery.toFixed(3).padStart(14)}  ${Math.round(r.decisionsPerSecond).toString().padStart(11)}`,
    );
  }
}
