/**
 * The policy worker's CPU per decision inside workerd, without wrangler's proxy: the Workers bundle
 * (`npm run deploy:check`) run by Miniflare's API, signed batches sent with dispatchFetch, workerd's CPU read from
 * /proc (every thread's schedstat). The same requests first go to an empty worker under the same Miniflare (it reads
 * the body and answers `{}`): what it costs is Miniflare's entry worker and workerd's local HTTP path, which a Workers
 * bill does not count; net = raw - baseline is identgate's own share.
 * Usage: node bench/workerd-cpu.mjs [--requests N] [--batches 1,16,64] [--concurrency N] [--json]
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
    'decision-log': { type: 'string', default: 'both' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log(
    'usage: node bench/workerd-cpu.mjs [--requests N] [--batches 1,16,64] [--concurrency N] [--decision-log on|off|both] [--json]',
  );
  process.exit(0);
}
const requests = Number(values.requests);
const concurrency = Number(values.concurrency);
const batches = values.batches.split(',').map(Number);
if (![requests, concurrency, ...batches].every((n) => Number.isInteger(n) && n > 0)) {
  console.error('workerd-cpu: --requests, --concurrency and --batches take positive integers');
  process.exit(2);
}
const decisionLogs = { on: ['on'], off: ['off'], both: ['on', 'off'] }[values['decision-log']];
if (!decisionLogs) {
  console.error(`workerd-cpu: --decision-log takes on, off or both, got "${values['decision-log']}"`);
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
const COMMON = {
  modules: true,
  compatibilityDate: '2026-04-01',
  // The worker's decision log is part of its cost; reading it here is not.
  handleRuntimeStdio: (stdout, stderr) => {
    stdout.resume();
    stderr.resume();
  },
};
/** The baseline: what Miniflare and workerd spend on a request a worker does nothing with. */
const EMPTY_WORKER = "export default { async fetch(req) { await req.text(); return new Response('{}'); } };";

async function identgateWorker(decisionLog) {
  const mf = new Miniflare({
    ...COMMON,
    scriptPath: bundle,
    kvNamespaces: ['POLICY'],
    bindings: {
      IDENTGATE_SECRETS: SECRET,
      IDENTGATE_ADMIN_TOKENS: 'bench-admin-token-0123456789',
      IDENTGATE_DECISION_LOG: decisionLog,
    },
  });
  await mf.ready;
  await (await mf.getKVNamespace('POLICY')).put('policy', readFileSync(join(root, 'examples/policy.json'), 'utf8'));
  return mf;
}

async function emptyWorker() {
  const mf = new Miniflare({ ...COMMON, script: EMPTY_WORKER });
  await mf.ready;
  return mf;
}

let sequence = 0;
async function send(mf, batch) {
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

async function run(mf, batch, count) {
  let next = 0;
  const lane = async () => {
    while (next++ < count) await send(mf, batch);
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
}

/** workerd's CPU µs per request at each batch size, with `mf` the only workerd running. */
async function measure(mf) {
  const out = new Map();
  for (const batch of batches) {
    await run(mf, batch, Math.max(20, requests / 10)); // warm the isolate, the KV cache and the JIT
    const cpu0 = workerdCpuNs();
    const t0 = performance.now();
    await run(mf, batch, requests);
    const wallMs = performance.now() - t0;
    out.set(batch, { cpuUsPerRequest: (workerdCpuNs() - cpu0) / 1000 / requests, wallMs });
  }
  await mf.dispose();
  return out;
}

// One after the other, so each reading is one workerd's alone.
const baseline = await measure(await emptyWorker());
const rows = [];
for (const decisionLog of decisionLogs) {
  const identgate = await measure(await identgateWorker(decisionLog));
  for (const batch of batches) rows.push(row(decisionLog, batch, identgate.get(batch)));
}

function row(decisionLog, batch, raw) {
  const base = baseline.get(batch).cpuUsPerRequest;
  const net = Math.max(0, raw.cpuUsPerRequest - base);
  return {
    decisionLog,
    batch,
    requests,
    decisions: requests * batch,
    cpuUsPerRequest: raw.cpuUsPerRequest,
    baselineCpuUsPerRequest: base,
    netCpuUsPerRequest: net,
    cpuUsPerDecision: raw.cpuUsPerRequest / batch,
    netCpuUsPerDecision: net / batch,
    requestsPerQuery: 1 / batch,
    decisionsPerSecond: (requests * batch) / (raw.wallMs / 1000),
  };
}

if (values.json) console.log(JSON.stringify(rows));
else {
  console.log(
    'workerd CPU (Workers bundle under Miniflare, no wrangler proxy); baseline: an empty worker the same way',
  );
  console.log(
    'decision log  batch  requests  raw µs/request  baseline µs/request  net µs/request  raw µs/decision  net µs/decision  requests/query  decisions/s',
  );
  const f = (n, w) => n.toFixed(1).padStart(w);
  for (const r of rows) {
    console.log(
      `${r.decisionLog.padEnd(12)}  ${String(r.batch).padStart(5)}  ${String(r.requests).padStart(8)}  ${f(r.cpuUsPerRequest, 14)}  ${f(r.baselineCpuUsPerRequest, 19)}  ${f(r.netCpuUsPerRequest, 14)}  ${f(r.cpuUsPerDecision, 15)}  ${f(r.netCpuUsPerDecision, 15)}  ${r.requestsPerQuery.toFixed(3).padStart(14)}  ${Math.round(r.decisionsPerSecond).toString().padStart(11)}`,
    );
  }
}
