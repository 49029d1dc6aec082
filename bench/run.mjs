/**
 * The side-by-side benchmark (bench/README.md): every server under the C load generator, the idle flood,
 * head to head, TIME_WAIT misses, policy-eval.mjs and workerd-cpu.mjs, judged against bench/targets.json. `--help` lists the flags.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildTools, holdConnection, runLoadgen } from './lib/loadgen.mjs';
import {
  descendantCount,
  freePort,
  run,
  runBounded,
  sampleRss,
  settleTree,
  startServer,
  treeCpuMs,
  treeRssKiB,
} from './lib/proc.mjs';
import {
  describeMachine,
  evaluateTargets,
  median,
  MODES,
  parsePolicyEval,
  recordResults,
  renderResults,
} from './lib/report.mjs';
import { closeSinks, fillTimeWait, listenSinks, missQuery, timeWaitCount } from './lib/time-wait.mjs';
import { gatewayCli, queriesPerHttpRequest } from './lib/identgate.mjs';
import { selfCheck } from './lib/selfcheck.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const benchDir = join(root, 'bench');

const PHASES =
  'c-ceiling node-ceiling oidentd embedded node-worker-http workerd-http embedded-node idle h2h time-wait policy-eval workerd-cpu';
/** The flags: parseArgs' options, their checks and --help all come from here. `min`: a number at least this. */
const FLAGS = {
  duration: { default: '3', min: 0.001, help: 's per load pass' },
  conns: { default: '32', min: 1, whole: true, help: 'concurrent clients' },
  idle: {
    default: '10000',
    min: 0,
    whole: true,
    help: 'connections held open in the idle flood (with embedded; 0 = none)',
  },
  'idle-probe-conns': { default: '8', min: 1, whole: true, help: 'clients asking fresh queries during the idle flood' },
  warmup: { default: '1', min: 0, help: 's of warm-up per server' },
  only: { help: `run only these phases, comma-separated: ${PHASES}` },
  skip: { help: 'skip these phases' },
  record: { type: 'boolean', help: 'also rewrite bench/RESULTS.md (a full run: not with --only or --skip)' },
  budget: { default: '280', min: 1, whole: true, help: 's the whole run may take' },
  dist: { help: 'compiled identgate (default dist/)' },
  'time-wait': { default: '20000', min: 0, whole: true, help: 'TIME_WAIT sockets wanted on the host' },
  'time-wait-cap': { default: '25', min: 1, whole: true, help: 's of filling at most' },
  'policy-ms': { min: 1, whole: true, help: 'ms per round of policy-eval.mjs (its default 400)' },
  'h2h-rounds': {
    default: '5',
    min: 0,
    whole: true,
    help: 'alternating embedded / node-ceiling rounds per mode (0 = none)',
  },
  'h2h-duration': { default: '2', min: 0.001, help: 's per head-to-head pass' },
  'skip-selfcheck': { type: 'boolean', help: 'do not check the load generator first' },
  help: { type: 'boolean', short: 'h', help: 'this text' },
};

let opts;
try {
  const options = Object.fromEntries(
    Object.entries(FLAGS).map(([name, { type = 'string', short, default: fallback }]) => [
      name,
      { type, ...(short && { short }), ...(fallback !== undefined && { default: fallback }) },
    ]),
  );
  ({ values: opts } = parseArgs({ options }));
} catch (error) {
  console.error(`bench: ${error.message.split('\n')[0]} (see --help)`);
  process.exit(2);
}
if (opts.help) {
  console.log('usage: node bench/run.mjs [flags]   (npm run bench -- [flags] builds first)');
  for (const [name, flag] of Object.entries(FLAGS)) {
    const value = flag.type === 'boolean' ? '' : flag.min === undefined ? ' VALUE' : ' N';
    const fallback = flag.default === undefined ? '' : ` (default ${flag.default})`;
    console.log(`  --${`${name}${value}`.padEnd(22)} ${flag.help}${fallback}`);
  }
  process.exit(0);
}
// Numeric flags: a typo is a one-line error, not a silently skipped or unbounded phase.
for (const [name, { min, whole }] of Object.entries(FLAGS)) {
  const value = opts[name];
  if (min === undefined || value === undefined) continue;
  const number = Number(value);
  if (!(whole ? Number.isInteger(number) : Number.isFinite(number)) || number < min) {
    const what = `${whole ? 'a whole number' : 'a number of seconds'} ${min === 0 ? '>= 0' : '> 0'}`;
    console.error(`bench: --${name} must be ${what}, got ${JSON.stringify(value)} (see --help)`);
    process.exit(2);
  }
}
if (opts.record && (opts.only || opts.skip)) {
  console.error('bench: --record rewrites bench/RESULTS.md from a full run; drop --only/--skip (see --help)');
  process.exit(2);
}
const durationS = Number(opts.duration);
const conns = Number(opts.conns);
const idleCount = Number(opts.idle);
const warmupS = Number(opts.warmup);
const budgetMs = Number(opts.budget) * 1000;
const only = opts.only ? new Set(opts.only.split(',')) : undefined;
const skip = new Set(opts.skip ? opts.skip.split(',') : []);
const wanted = (phase) => (!only || only.has(phase)) && !skip.has(phase);
const timeWaitTarget = Number(opts['time-wait']);
const timeWaitCapS = Number(opts['time-wait-cap']);
const distDir = opts.dist ?? join(root, 'dist');
// What the last two phases need at most (they are skipped or cut short when less remains); the
// server scenarios stop starting early enough to leave it, so the whole run stays within --budget.
const timeWaitReserveMs = wanted('time-wait')
  ? (timeWaitCapS +
      4 * (Number(opts.duration) + 1) +
      2 * (Math.max(Number(opts.duration), 5) + 1) +
      2 * 5 +
      2 * Number(opts.warmup) +
      12) *
    1000
  : 0;
const policyRounds = 10 * 6; // policy-eval.mjs: 10 cases, a warm-up and 5 timed rounds each
/** bench/workerd-cpu.mjs at its bench settings: two Miniflare starts per setting, 6 timed passes each (~40 s here). */
const WORKERD_CPU_RESERVE_MS = 70_000;
const policyReserveMs =
  (wanted('policy-eval') ? policyRounds * Number(opts['policy-ms'] ?? 400) + 15000 : 0) +
  (wanted('workerd-cpu') ? WORKERD_CPU_RESERVE_MS : 0);
const h2hRounds = Number(opts['h2h-rounds']);
const h2hDurationS = Number(opts['h2h-duration']);
const h2hWanted = wanted('h2h') && wanted('embedded') && wanted('node-ceiling') && h2hRounds > 0;
// Two server starts and warm-ups, then per mode h2hRounds pairs of passes.
const h2hReserveMs = h2hWanted ? (2 * (5 + Number(opts.warmup)) + 2 * h2hRounds * 2 * (h2hDurationS + 1)) * 1000 : 0;
const startedAt = Date.now();
const log = (line) => process.stderr.write(`[bench ${((Date.now() - startedAt) / 1000).toFixed(1)}s] ${line}\n`);

const tools = buildTools();
if (!opts['skip-selfcheck']) {
  const failures = await selfCheck(tools.loadgen);
  if (failures.length > 0) {
    console.error(`loadgen self-check failed; its numbers cannot be trusted:\n${failures.join('\n')}`);
    process.exit(1);
  }
  log('loadgen self-check passed');
}
const held = await holdConnection();
const scratch = mkdtempSync(join(tmpdir(), 'identgate-bench-'));
const secret = `bench-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
const adminToken = `admin-${Math.random().toString(36).slice(2)}`;
const secretFile = join(scratch, 'secret');
writeFileSync(secretFile, `${secret}\n`, { mode: 0o600 });
const cli = gatewayCli(root, opts.dist);
const policy = join(root, 'examples', 'policy.json');

const logDir = join(benchDir, 'out', 'logs');
mkdirSync(logDir, { recursive: true });
/** Start a server whose output goes to bench/out/logs/SCENARIO-NAME.log. */
const launch = (scenario, options) =>
  startServer({ logFile: join(logDir, `${scenario}-${options.name}.log`), cwd: root, ...options });

/** One server on a free port: `argsFor(port)` gives its arguments, or an identgate command spec. */
async function startOne(scenario, name, command, argsFor) {
  const port = await freePort();
  const made = await argsFor(port);
  const spec = Array.isArray(made) ? undefined : made;
  const args = spec ? spec.args : made;
  return { port, spec, servers: [await launch(scenario, { name, command, args, port })] };
}

const node = process.execPath;
const oidentdArgs = (port) => ['-i', '-S', '-q', '-a', '127.0.0.1', '-p', String(port)]; // foreground, stderr, quiet
const oidentdMissing = () =>
  run('sh', ['-c', 'command -v oidentd']).status === 0 ? undefined : 'oidentd not installed (apt-get install oidentd)';

/** A gateway asking a worker over HTTP: the worker is started by `startWorker(port)`, then the gateway. */
async function startUpstream(scenario, startWorker) {
  const workerPort = await freePort();
  const { worker, note } = await startWorker(workerPort);
  try {
    const upstream = `http://127.0.0.1:${workerPort}`;
    const started = await startOne(scenario, 'gateway', node, async (port) =>
      cli.serveUpstream({ port, upstream, secretFile, metricsPort: await freePort() }),
    );
    if (note) started.spec.display += ` (worker policy: ${note})`;
    return { ...started, servers: [...started.servers, worker] };
  } catch (error) {
    await worker.stop();
    throw error;
  }
}

/** Each scenario starts its servers and returns them plus the port the load generator targets. */
const scenarios = [
  {
    name: 'c-ceiling',
    label: 'single-threaded C epoll, fixed reply',
    start: () => startOne('c-ceiling', 'c-ceiling', tools.ceiling, (port) => [String(port), '127.0.0.1']),
  },
  {
    name: 'node-ceiling',
    label: 'minimal node:net, fixed reply',
    start: () =>
      startOne('node-ceiling', 'node-ceiling', node, (port) => [
        join(benchDir, 'ceiling.mjs'),
        String(port),
        '127.0.0.1',
      ]),
  },
  {
    name: 'oidentd',
    label: 'oidentd (Debian), real lookup',
    unavailable: oidentdMissing,
    start: () => startOne('oidentd', 'oidentd', 'oidentd', oidentdArgs), // started as root it drops to nobody
  },
  {
    name: 'embedded',
    label: 'identgate, policy in-process, owner lookup on',
    unavailable: () => cli.unavailable(),
    idleFlood: true,
    start: () =>
      startOne('embedded', 'embedded', node, async (port) =>
        cli.serveEmbedded({ port, policy, metricsPort: await freePort() }),
      ),
  },
  {
    name: 'node-worker-http',
    label: 'identgate -> Node worker over HTTP',
    unavailable: () => cli.unavailable(),
    start: () =>
      startUpstream('node-worker-http', async (port) => ({
        worker: await launch('node-worker-http', {
          name: 'node-worker',
          command: node,
          args: cli.worker({ port, policy, secretFile }).args,
          port,
        }),
      })),
  },
  {
    name: 'workerd-http',
    label: 'identgate -> worker in workerd (wrangler dev) over HTTP',
    unavailable: () => cli.unavailable() ?? (existsSync(join(root, 'wrangler.toml')) ? undefined : 'no wrangler.toml'),
    start: () =>
      startUpstream('workerd-http', async (port) => {
        const worker = await launch('workerd-http', {
          name: 'wrangler-dev',
          command: join(root, 'node_modules', '.bin', 'wrangler'),
          args: [
            ...['dev', '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(await freePort())],
            ...['--persist-to', join(scratch, 'wrangler-state'), '--log-level', 'warn'],
            ...['--var', `IDENTGATE_SECRETS:${secret}`, '--var', `IDENTGATE_ADMIN_TOKENS:${adminToken}`],
            '--show-interactive-dev-session=false',
          ],
          env: { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false', CI: '1' },
          port,
          readyTimeoutMs: 60000,
        });
        // KV starts empty (the built-in default policy); load the same policy the other scenarios use.
        return { worker, note: await putPolicy(`http://127.0.0.1:${port}/v1/policy`) };
      }),
  },
  {
    // The same gateway on node:net: what the native transport (the default where built) is worth.
    // Last, as informational: if the time budget runs short, this is what is skipped.
    name: 'embedded-node',
    label: 'identgate as above, on the node:net transport (--transport node)',
    unavailable: () => cli.unavailable(),
    start: () =>
      startOne('embedded-node', 'embedded-node', node, (port) =>
        cli.serveEmbedded({ port, policy, transport: 'node' }),
      ),
  },
];

/** PUT examples/policy.json to a worker's admin route; returns what the worker runs. */
async function putPolicy(url) {
  if (!existsSync(policy)) return 'built-in default (no examples/policy.json)';
  try {
    const response = await fetch(url, {
      method: 'PUT',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: readFileSync(policy, 'utf8'),
      signal: AbortSignal.timeout(10000),
    });
    if (response.ok) return 'examples/policy.json via PUT /v1/policy';
    return `built-in default (PUT /v1/policy answered ${response.status}: ${(await response.text()).slice(0, 200)})`;
  } catch (error) {
    return `built-in default (PUT /v1/policy failed: ${error.message})`;
  }
}

const results = {
  date: new Date().toISOString(),
  machine: describeMachine(),
  command: `node bench/run.mjs ${process.argv.slice(2).join(' ')}`.trim(),
  settings: {
    conns,
    durationS,
    warmupS,
    modes: { '1/conn': 1, '100/conn': 100 },
    query: held.query,
    idle: idleCount,
    timeWait: timeWaitTarget,
    timeWaitCapS,
    policyRoundMs: Number(opts['policy-ms'] ?? 400),
  },
  servers: {},
};

async function measure(port, pids, perConn, extra = {}) {
  const sampler = sampleRss(pids);
  const cpuBefore = pids.reduce((sum, pid) => sum + treeCpuMs(pid), 0);
  try {
    const r = await runLoadgen(tools.loadgen, { port, query: held.query, conns, durationS, perConn, ...extra });
    const cpuMs = pids.reduce((sum, pid) => sum + treeCpuMs(pid), 0) - cpuBefore;
    r.rssKiB = sampler.stop();
    r.serverCpuMs = cpuMs;
    r.serverCpuUsPerQuery = r.completed > 0 ? (cpuMs * 1000) / r.completed : undefined;
    return r;
  } catch (error) {
    sampler.stop();
    return { failed: error.message };
  }
}

for (const scenario of scenarios) {
  if (!wanted(scenario.name)) continue;
  const entry = { label: scenario.label, status: 'ok', modes: {} };
  results.servers[scenario.name] = entry;
  const why = scenario.unavailable?.();
  if (why) {
    Object.assign(entry, { status: 'skipped', reason: why });
    log(`${scenario.name}: skipped: ${why}`);
    continue;
  }
  if (Date.now() - startedAt > budgetMs - timeWaitReserveMs - policyReserveMs - h2hReserveMs) {
    Object.assign(entry, {
      status: 'skipped',
      reason: `time budget of ${budgetMs / 1000} s used up (${((timeWaitReserveMs + policyReserveMs + h2hReserveMs) / 1000).toFixed(0)} s kept for h2h, time-wait and policy-eval)`,
    });
    log(`${scenario.name}: skipped: time budget used up`);
    continue;
  }
  let started;
  try {
    log(`${scenario.name}: starting`);
    started = await scenario.start();
  } catch (error) {
    const lastLine = (error.logTail ?? '').trim().split('\n').pop();
    Object.assign(entry, {
      status: 'failed',
      reason: lastLine ? `${error.message}: ${lastLine}` : error.message,
      log: error.logTail?.slice(-2000),
    });
    log(`${scenario.name}: FAILED to start: ${error.message}${error.logTail ? `\n${error.logTail.slice(-1500)}` : ''}`);
    continue;
  }
  try {
    const pids = started.servers.map((s) => s.pid);
    if (started.spec) entry.command = started.spec.display;
    entry.rssIdleKiB = pids.reduce((sum, pid) => sum + treeRssKiB(pid), 0);
    if (warmupS > 0)
      await runLoadgen(tools.loadgen, {
        port: started.port,
        query: held.query,
        conns,
        durationS: warmupS,
        perConn: 100,
      }).catch(() => undefined);
    for (const mode of MODES) {
      const perConn = Number(mode.split('/')[0]);
      const r = await measure(started.port, pids, perConn);
      entry.modes[mode] = r;
      r.rssByProcessKiB = Object.fromEntries(started.servers.map((s) => [s.name, treeRssKiB(s.pid)]));
      log(
        `${scenario.name} ${mode}: ${r.failed ? `failed: ${r.failed}` : `${r.throughput.toFixed(0)} q/s, p50 ${r.latency_ms.p50} ms, p99 ${r.latency_ms.p99} ms, ${r.errors.total} errors, ${(r.rssKiB / 1024).toFixed(1)} MiB — ${r.sample_reply || r.sample_error}${r.sample_bad ? ` — bad: ${r.sample_bad}` : ''}`}`,
      );
    }
    if (started.spec?.upstream)
      entry.queriesPerHttpRequest = started.spec.metricsUrl
        ? await queriesPerHttpRequest(started.spec.metricsUrl)
        : 'n/a (no metrics endpoint)';
    if (scenario.idleFlood && idleCount > 0 && !skip.has('idle')) {
      log(`${scenario.name}: idle flood of ${idleCount} connections`);
      const baselineRssKiB = pids.reduce((sum, pid) => sum + treeRssKiB(pid), 0);
      const r = await measure(started.port, pids, 1, {
        idle: idleCount,
        conns: Number(opts['idle-probe-conns']),
        idleSettleMs: 1500,
      });
      if (r.failed) results.idle = { status: 'failed', reason: r.failed };
      else {
        results.idle = {
          status: 'ok',
          requested: idleCount,
          probeConns: Number(opts['idle-probe-conns']),
          baselineRssKiB,
          peakRssKiB: r.rssKiB,
          result: r,
        };
        log(
          `idle flood: RSS ${(baselineRssKiB / 1024).toFixed(1)} -> ${(r.rssKiB / 1024).toFixed(1)} MiB, held ${r.idle.open_at_end}/${idleCount}, probe p99 ${r.latency_ms.p99} ms`,
        );
      }
    }
    const alive = started.servers.filter((s) => s.child.exitCode !== null || s.child.signalCode !== null);
    if (alive.length > 0)
      entry.note = `${alive.map((s) => s.name).join(', ')} exited during the run: ${alive[0].logTail().slice(-500)}`;
  } finally {
    for (const server of started.servers) await server.stop();
  }
}

/**
 * The Node-ceiling ratios again, head to head: identgate embedded and the Node ceiling both
 * started, then short passes in turn (ceiling, embedded, ceiling, embedded, ...), each mode
 * h2hRounds times. Each round's ratio compares two passes seconds apart. On a shared machine the
 * load of other tenants moves from minute to minute, and the main table's passes of the two servers
 * are a minute apart; the embedded / node-ceiling targets use the median of these per-round ratios.
 * Both servers are the main table's (same commands); the idle one uses no CPU.
 */
async function headToHead() {
  const phase = { status: 'ok', rounds: h2hRounds, durationS: h2hDurationS, modes: {} };
  results.headToHead = phase;
  for (const name of ['embedded', 'node-ceiling']) {
    if (results.servers[name]?.status !== 'ok')
      return Object.assign(phase, { status: 'skipped', reason: `${name} did not run` });
  }
  if (Date.now() - startedAt > budgetMs - timeWaitReserveMs - policyReserveMs)
    return Object.assign(phase, { status: 'skipped', reason: `time budget of ${budgetMs / 1000} s used up` });
  const contenders = [];
  try {
    for (const name of ['node-ceiling', 'embedded']) {
      const started = await scenarios.find((s) => s.name === name).start();
      contenders.push({ name, started, pids: started.servers.map((server) => server.pid) });
      if (warmupS > 0)
        await runLoadgen(tools.loadgen, {
          port: started.port,
          query: held.query,
          conns,
          durationS: warmupS,
          perConn: 100,
        }).catch(() => undefined);
    }
    for (const mode of MODES) {
      const perConn = Number(mode.split('/')[0]);
      const rounds = [];
      for (let round = 0; round < h2hRounds; round++) {
        const pair = {};
        for (const { name, started, pids } of contenders) {
          const r = await measure(started.port, pids, perConn, { durationS: h2hDurationS });
          if (r.failed || !(r.completed > 0))
            return Object.assign(phase, {
              status: 'failed',
              reason: `${name} ${mode}: ${r.failed ?? 'no query answered'}`,
            });
          pair[name] = {
            throughput: r.throughput,
            p99: r.latency_ms.p99,
            cpuUsPerQuery: r.serverCpuUsPerQuery,
            errors: r.errors.total,
          };
        }
        pair.ratio = pair.embedded.throughput / pair['node-ceiling'].throughput;
        rounds.push(pair);
        log(
          `h2h ${mode} round ${round + 1}: node-ceiling ${pair['node-ceiling'].throughput.toFixed(0)} q/s, embedded ${pair.embedded.throughput.toFixed(0)} q/s, ratio ${pair.ratio.toFixed(2)}`,
        );
      }
      phase.modes[mode] = { rounds, medianRatio: median(rounds.map((r) => r.ratio)) };
    }
  } finally {
    for (const { started } of contenders) for (const server of started.servers) await server.stop();
  }
  return phase;
}

if (h2hWanted) await headToHead();
held.close();

/**
 * Owner-lookup misses with ~20,000 TIME_WAIT sockets on the host: identgate embedded (built-in
 * default policy: an owner that is not found is answered NO-USER) and oidentd are started and warmed
 * up, identgate is measured once before the fill (the baseline), the table is filled (bounded by
 * --time-wait-cap), then both are asked about a connection that does not exist while the table is
 * full, the count read before and after each pass. identgate's passes go first: oidentd's forked
 * lookups can outlive a pass by seconds with a full table, and must not eat into identgate's CPU;
 * after each oidentd pass the bench waits (up to 5 s) for its children to finish.
 */
async function timeWaitPhase() {
  const phase = { status: 'ok', target: timeWaitTarget, servers: {} };
  results.timeWait = phase;
  const why =
    cli.unavailable() ??
    (run('sh', ['-c', 'command -v ss']).status === 0 ? undefined : 'ss not installed (Debian: iproute2)');
  if (why) return Object.assign(phase, { status: 'skipped', reason: why });
  if (Date.now() - startedAt > budgetMs - policyReserveMs - timeWaitReserveMs)
    return Object.assign(phase, { status: 'skipped', reason: `time budget of ${budgetMs / 1000} s used up` });
  const miss = missQuery();
  phase.query = miss.query;
  const candidates = [
    {
      name: 'embedded',
      label: 'identgate, built-in default policy, owner lookup on',
      start: () => startOne('time-wait', 'embedded', node, (port) => cli.serveEmbedded({ port })), // no --policy
    },
    {
      name: 'oidentd',
      label: 'oidentd (Debian), real lookup',
      unavailable: oidentdMissing,
      async start() {
        const started = await startOne('time-wait', 'oidentd', 'oidentd', oidentdArgs);
        return { ...started, spec: { display: `oidentd ${oidentdArgs(started.port).join(' ')}` } };
      },
    },
  ];
  const running = [];
  try {
    for (const candidate of candidates) {
      const entry = { label: candidate.label, status: 'ok', modes: {} };
      phase.servers[candidate.name] = entry;
      const unavailable = candidate.unavailable?.();
      if (unavailable) {
        Object.assign(entry, { status: 'skipped', reason: unavailable });
        continue;
      }
      try {
        const { port, spec, servers } = await candidate.start();
        entry.command = spec.display;
        running.push({ name: candidate.name, entry, port, server: servers[0] });
      } catch (error) {
        Object.assign(entry, { status: 'failed', reason: error.message });
        log(`time-wait: ${candidate.name} FAILED to start: ${error.message}`);
      }
    }
    if (running.length === 0)
      return Object.assign(phase, { status: 'failed', reason: 'neither identgate nor oidentd started' });
    for (const { port } of running) {
      if (warmupS > 0)
        await runLoadgen(tools.loadgen, { port, query: miss.query, conns, durationS: warmupS, perConn: 100 }).catch(
          () => undefined,
        );
    }
    // With a full table each of oidentd's forked lookups can take seconds here; a longer pass gives it a chance to answer some.
    const oidentdDurationS = Math.max(durationS, 5);
    const pass = async (name, port, server, mode) => {
      const childrenBefore = descendantCount(server.pid);
      const atStart = timeWaitCount();
      const r = await measure(port, [server.pid], Number(mode.split('/')[0]), {
        query: miss.query,
        durationS: name === 'oidentd' ? oidentdDurationS : durationS,
      });
      r.timeWait = { atStart, atEnd: timeWaitCount() };
      const unfinished = await settleTree(server.pid, { timeoutMs: 5000, atMost: childrenBefore });
      if (unfinished > 0) r.unfinishedChildren = unfinished;
      log(
        `time-wait ${name} ${mode}: ${r.failed ? `failed: ${r.failed}` : `${r.throughput.toFixed(0)} q/s (${r.completed} answered), p50 ${r.latency_ms.p50} ms, p99 ${r.latency_ms.p99} ms, ${r.errors.total} errors, TIME_WAIT ${atStart} -> ${r.timeWait.atEnd} — ${r.sample_error || r.sample_reply}${r.sample_bad ? ` — bad: ${r.sample_bad}` : ''}${unfinished > 0 ? ` — ${unfinished} children still running 5 s after the pass` : ''}`}`,
      );
      return r;
    };
    const embedded = running.find((s) => s.name === 'embedded');
    if (embedded) {
      phase.baseline = { label: 'identgate embedded before the fill', status: 'ok', modes: {} };
      for (const mode of MODES)
        phase.baseline.modes[mode] = await pass('embedded (before the fill)', embedded.port, embedded.server, mode);
    }
    log(`time-wait: filling the host to ${timeWaitTarget} TIME_WAIT sockets (at most ${timeWaitCapS} s)`);
    const sinks = await listenSinks();
    let fill;
    try {
      fill = await fillTimeWait(sinks, { target: timeWaitTarget, deadlineMs: timeWaitCapS * 1000 });
    } finally {
      await closeSinks(sinks);
    }
    phase.fill = {
      before: fill.before,
      reached: fill.reached,
      opened: fill.opened,
      seconds: fill.seconds,
      reachedTarget: fill.reachedTarget,
      deadlineS: timeWaitCapS,
    };
    log(
      `time-wait: ${fill.before} -> ${fill.reached} TIME_WAIT sockets in ${fill.seconds.toFixed(1)} s (${fill.opened} connections)${fill.reachedTarget ? '' : ` — target ${timeWaitTarget} not reached within ${timeWaitCapS} s`}`,
    );
    // Right after the fill, so both servers see the same full table (TIME_WAIT sockets expire after 60 s).
    for (const { name, entry, port, server } of running) {
      for (const mode of MODES) entry.modes[mode] = await pass(name, port, server, mode);
    }
    for (const { name, entry, server } of running) {
      if (server.child.exitCode !== null || server.child.signalCode !== null)
        entry.note = `${name} exited during the run: ${server.logTail().slice(-500)}`;
    }
  } catch (error) {
    Object.assign(phase, { status: 'failed', reason: error.message });
    log(`time-wait: FAILED: ${error.message}`);
  } finally {
    for (const { server } of running) await server.stop();
  }
}

/** bench/policy-eval.mjs as a subprocess (own process group, killed at the budget); its own PASS/MISS per case. */
async function policyEvalPhase() {
  const args = [join(benchDir, 'policy-eval.mjs'), '--dist', distDir];
  if (opts['policy-ms']) args.push('--ms', opts['policy-ms']);
  const phase = {
    status: 'ok',
    command: `node ${args.map((a) => (a.startsWith(`${root}/`) ? a.slice(root.length + 1) : a)).join(' ')}`,
  };
  results.policyEval = phase;
  if (!existsSync(join(distDir, 'worker', 'policy', 'index.js')))
    return Object.assign(phase, {
      status: 'skipped',
      reason: `${join(distDir, 'worker', 'policy', 'index.js')} not built (npm run build)`,
    });
  const remainingMs = budgetMs - (Date.now() - startedAt);
  if (remainingMs < 10000)
    return Object.assign(phase, { status: 'skipped', reason: `time budget of ${budgetMs / 1000} s used up` });
  log(`policy-eval: ${phase.command}`);
  let r;
  try {
    r = await runBounded(process.execPath, args, { cwd: root, timeoutMs: remainingMs });
  } catch (error) {
    return Object.assign(phase, { status: 'failed', reason: `cannot run it: ${error.message}` });
  }
  phase.seconds = r.seconds;
  phase.parsed = parsePolicyEval(r.stdout);
  const lastLine = (text) => text.trim().split('\n').pop() ?? '';
  if (r.timedOut)
    Object.assign(phase, {
      status: 'failed',
      reason: `killed after ${(remainingMs / 1000).toFixed(0)} s (the rest of the time budget)`,
    });
  else if (r.status !== 0)
    Object.assign(phase, {
      status: 'failed',
      reason: `exited ${r.status ?? r.signal}: ${lastLine(r.stderr) || lastLine(r.stdout)}`,
    });
  else if (!phase.parsed.cases)
    Object.assign(phase, { status: 'failed', reason: `no case lines in its output: ${lastLine(r.stdout)}` });
  for (const c of phase.parsed.cases ?? [])
    log(`policy-eval ${c.verdict.padEnd(4)} ${c.median.toLocaleString('en-US')}/s median — ${c.label}`);
  if (phase.status !== 'ok') log(`policy-eval: ${phase.status}: ${phase.reason}`);
}

/**
 * bench/workerd-cpu.mjs as a subprocess: the Workers bundle's CPU per request and per decision inside workerd, raw and
 * net of an empty worker driven the same way, at batch 1, 16 and 64, with the decision log on and off.
 */
async function workerdCpuPhase() {
  const args = [join(benchDir, 'workerd-cpu.mjs'), '--json', '--requests', '300'];
  const phase = { status: 'ok', command: `node bench/workerd-cpu.mjs ${args.slice(1).join(' ')}` };
  results.workerdCpu = phase;
  const remainingMs = () => budgetMs - (Date.now() - startedAt);
  if (!existsSync(join(root, 'dist', 'worker-bundle', 'workers-entry.js'))) {
    log('workerd-cpu: bundling the worker (npm run deploy:check)');
    const built = await runBounded('npm', ['run', 'deploy:check'], { cwd: root, timeoutMs: 90_000 });
    if (built.status !== 0)
      return Object.assign(phase, {
        status: 'failed',
        reason: `npm run deploy:check failed: ${built.stderr.trim().split('\n').pop()}`,
      });
  }
  if (remainingMs() < 20000)
    return Object.assign(phase, { status: 'skipped', reason: `time budget of ${budgetMs / 1000} s used up` });
  log(`workerd-cpu: ${phase.command}`);
  const r = await runBounded(process.execPath, args, { cwd: root, timeoutMs: remainingMs() });
  phase.seconds = r.seconds;
  if (r.timedOut) return Object.assign(phase, { status: 'failed', reason: 'killed at the end of the time budget' });
  if (r.status !== 0)
    return Object.assign(phase, {
      status: 'failed',
      reason: `exited ${r.status ?? r.signal}: ${r.stderr.trim().split('\n').pop()}`,
    });
  try {
    phase.rows = JSON.parse(r.stdout.trim().split('\n').pop());
  } catch {
    return Object.assign(phase, { status: 'failed', reason: `no JSON result line: ${r.stdout.slice(-200)}` });
  }
  for (const row of phase.rows)
    log(
      `workerd-cpu decision log ${row.decisionLog}, batch ${row.batch}: ${row.cpuUsPerRequest.toFixed(0)} µs/request raw, ${row.netCpuUsPerRequest.toFixed(0)} net (${row.netCpuUsPerDecision.toFixed(1)} µs/decision)`,
    );
}

if (wanted('time-wait')) await timeWaitPhase();
if (wanted('policy-eval')) await policyEvalPhase();
if (wanted('workerd-cpu')) await workerdCpuPhase();
rmSync(scratch, { recursive: true, force: true });

results.targets = evaluateTargets(results);
results.elapsedS = (Date.now() - startedAt) / 1000;
const markdown = renderResults(results);
const outDir = join(benchDir, 'out');
writeFileSync(join(outDir, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
writeFileSync(join(outDir, 'latest.md'), markdown);
// RESULTS.md changes only when asked to: an ordinary run leaves the tree as it was.
if (opts.record) recordResults(join(benchDir, 'RESULTS.md'), markdown);
console.log(markdown);
process.exit(0);
