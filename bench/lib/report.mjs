/**
 * Turning raw bench results into what a reader needs: the side-by-side table,
 * the issue's targets as PASS / MISS lines with the measured ratio, and the
 * machine description that makes a result reproducible. Pure functions over
 * the results object that bench/run.mjs builds; nothing is measured here.
 *
 * Results shape: { servers: { [name]: { label, status: 'ok' | 'failed' | 'skipped',
 * reason?, rssKiB?, modes: { '1/conn'?: LoadgenResult, '100/conn'?: LoadgenResult },
 * queriesPerHttpRequest? } }, idle?: { ... } }.
 *
 * @example
 *   console.log(renderTable(results));
 *   for (const t of evaluateTargets(results)) console.log(t.verdict, t.name, t.measured);
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';

export const MODES = ['1/conn', '100/conn'];

const fmt = (n, digits = 1) => (typeof n === 'number' && Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
const mib = (kib) => (typeof kib === 'number' ? (kib / 1024).toFixed(1) : 'n/a');

function replies(r) {
  const { USERID: users = 0, ERROR: errors = 0 } = r.replies ?? {};
  if (errors === 0) return `\`${r.sample_reply}\``;
  if (users === 0) return `\`${r.sample_error}\``;
  return `${users} × \`${r.sample_reply}\`, ${errors} × ERROR e.g. \`${r.sample_error}\``;
}

function rssBreakdown(r) {
  const parts = Object.entries(r.rssByProcessKiB ?? {});
  return parts.length > 1 ? ` (${parts.map(([name, kib]) => `${name} ${mib(kib)}`).join(' + ')})` : '';
}

/**
 * Markdown table: one row per server and mode.
 *
 * @example
 *   renderTable({ servers: { 'c-ceiling': { label: 'C epoll', status: 'ok', modes: { '1/conn': r } } } });
 */
export function renderTable(results) {
  const rows = [
    '| server | mode | queries/s | p50 ms | p99 ms | max ms | server CPU µs/query | errors | server closed | peak RSS MiB | reply |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const [name, server] of Object.entries(results.servers)) {
    if (server.status !== 'ok') {
      rows.push(`| ${name} | — | ${server.status}: ${String(server.reason ?? '').replace(/\|/g, '/').split('\n')[0]} | | | | | | | | |`);
      continue;
    }
    for (const mode of MODES) {
      const r = server.modes[mode];
      if (!r) continue;
      if (r.failed) {
        rows.push(`| ${name} | ${mode} | failed: ${String(r.failed).replace(/\|/g, '/')} | | | | | | | | |`);
        continue;
      }
      const errors = r.errors.total === 0 ? '0' : `${r.errors.total} (${Object.entries(r.errors).filter(([k, v]) => k !== 'total' && v > 0).map(([k, v]) => `${k} ${v}`).join(', ')})`;
      rows.push(
        `| ${name} | ${mode} | ${fmt(r.throughput, 0)} | ${fmt(r.latency_ms.p50, 2)} | ${fmt(r.latency_ms.p99, 2)} | ${fmt(r.latency_ms.max, 1)} | ${fmt(r.serverCpuUsPerQuery, 0)} | ${errors} | ${r.server_closed} | ${mib(r.rssKiB)}${rssBreakdown(r)} | ${replies(r)} |`,
      );
    }
  }
  return rows.join('\n');
}

function ok(results, name, mode) {
  const server = results.servers[name];
  const r = server?.status === 'ok' ? server.modes[mode] : undefined;
  return r && !r.failed && r.completed > 0 ? r : undefined;
}

function ratioTarget(results, { name, numerator, denominator, mode, atLeast }) {
  const a = ok(results, numerator, mode);
  const b = ok(results, denominator, mode);
  if (!a || !b) {
    const missing = [!a && numerator, !b && denominator].filter(Boolean).join(', ');
    return { name: `${name} (${mode})`, verdict: 'n/a', measured: `not measured: ${missing}`, threshold: `>= ${atLeast}x` };
  }
  const ratio = a.throughput / b.throughput;
  return {
    name: `${name} (${mode})`,
    verdict: ratio >= atLeast ? 'PASS' : 'MISS',
    measured: `${ratio.toFixed(2)}x (${fmt(a.throughput, 0)} / ${fmt(b.throughput, 0)} q/s)`,
    threshold: `>= ${atLeast}x`,
  };
}

function p99Target(results, { name, subject, reference, mode }) {
  const a = ok(results, subject, mode);
  const b = ok(results, reference, mode);
  if (!a || !b) return { name: `${name} (${mode})`, verdict: 'n/a', measured: 'not measured', threshold: `<= ${reference} p99` };
  return {
    name: `${name} (${mode})`,
    verdict: a.latency_ms.p99 <= b.latency_ms.p99 ? 'PASS' : 'MISS',
    measured: `${fmt(a.latency_ms.p99, 2)} ms vs ${fmt(b.latency_ms.p99, 2)} ms`,
    threshold: `<= ${reference} p99`,
  };
}

/**
 * The issue's targets, each { name, verdict: 'PASS' | 'MISS' | 'n/a' | 'info', measured, threshold }.
 *
 * @example
 *   evaluateTargets(results).filter((t) => t.verdict === 'MISS');
 */
export function evaluateTargets(results) {
  const targets = [];
  for (const mode of MODES) {
    targets.push(ratioTarget(results, { name: 'embedded / oidentd throughput', numerator: 'embedded', denominator: 'oidentd', mode, atLeast: 3 }));
    targets.push(p99Target(results, { name: 'embedded p99 <= oidentd p99', subject: 'embedded', reference: 'oidentd', mode }));
  }
  targets.push(ratioTarget(results, { name: 'embedded / node-ceiling', numerator: 'embedded', denominator: 'node-ceiling', mode: '1/conn', atLeast: 1.0 }));
  targets.push(ratioTarget(results, { name: 'embedded / node-ceiling', numerator: 'embedded', denominator: 'node-ceiling', mode: '100/conn', atLeast: 0.5 }));
  for (const mode of MODES) targets.push(ratioTarget(results, { name: 'workerd-http / oidentd', numerator: 'workerd-http', denominator: 'oidentd', mode, atLeast: 1.0 }));
  for (const mode of MODES) targets.push(ratioTarget(results, { name: 'node-worker-http / oidentd', numerator: 'node-worker-http', denominator: 'oidentd', mode, atLeast: 1.5 }));
  for (const name of ['workerd-http', 'node-worker-http']) {
    const q = results.servers[name]?.queriesPerHttpRequest;
    targets.push({ name: `${name}: queries per HTTP request`, verdict: 'info', measured: q ?? 'n/a', threshold: '(batching, informational)' });
  }
  // Headroom: the load generator drives the C ceiling well beyond identgate, so identgate is what is measured.
  for (const mode of MODES) {
    const t = ratioTarget(results, { name: 'loadgen headroom: c-ceiling / embedded', numerator: 'c-ceiling', denominator: 'embedded', mode, atLeast: 1.5 });
    targets.push(t);
  }
  // Correctness under load: identgate never answers with a malformed line, wrong ports, or drops a query.
  for (const name of ['embedded', 'node-worker-http', 'workerd-http']) {
    const server = results.servers[name];
    if (server?.status !== 'ok') {
      targets.push({ name: `${name}: zero errors under load`, verdict: 'n/a', measured: 'not measured', threshold: '0 errors' });
      continue;
    }
    const errors = MODES.map((mode) => server.modes[mode]?.errors?.total ?? 0).reduce((a, b) => a + b, 0);
    targets.push({ name: `${name}: zero errors under load`, verdict: errors === 0 ? 'PASS' : 'MISS', measured: `${errors} errors`, threshold: '0 errors' });
  }
  const idle = results.idle;
  if (!idle || idle.status !== 'ok') {
    const why = idle?.reason ?? 'not measured';
    targets.push({ name: 'idle flood: RSS growth', verdict: 'n/a', measured: why, threshold: '<= 64 MiB' });
    targets.push({ name: 'idle flood: fresh queries p99', verdict: 'n/a', measured: why, threshold: '< 20 ms' });
  } else {
    const growthMiB = (idle.peakRssKiB - idle.baselineRssKiB) / 1024;
    const held = idle.result.idle.open_at_end;
    targets.push({
      name: `idle flood: RSS growth with ${idle.requested} idle connections`,
      verdict: growthMiB <= 64 && held === idle.requested ? 'PASS' : 'MISS',
      measured: `${growthMiB.toFixed(1)} MiB (${mib(idle.baselineRssKiB)} -> ${mib(idle.peakRssKiB)}); ${held}/${idle.requested} held to the end`,
      threshold: '<= 64 MiB, all held',
    });
    const r = idle.result;
    targets.push({
      name: 'idle flood: fresh queries p99',
      verdict: r.completed > 0 && r.errors.total === 0 && r.latency_ms.p99 < 20 ? 'PASS' : 'MISS',
      measured: `${fmt(r.latency_ms.p99, 2)} ms over ${r.completed} queries (${fmt(r.throughput, 0)} q/s), ${r.errors.total} errors`,
      threshold: '< 20 ms, 0 errors',
    });
  }
  return targets;
}

/**
 * Markdown list of the targets.
 *
 * @example
 *   console.log(renderTargets(evaluateTargets(results)));
 */
export function renderTargets(targets) {
  const rows = ['| verdict | target | measured | threshold |', '|---|---|---|---|'];
  for (const t of targets) rows.push(`| ${t.verdict} | ${t.name} | ${t.measured} | ${t.threshold} |`);
  return rows.join('\n');
}

/**
 * Mean wall time of fork+exec+wait of /bin/true over 10 runs, in ms: servers
 * that fork per connection (oidentd) are bounded by it, and it varies a lot
 * between bare metal and small VMs, so it is recorded with every result.
 *
 * @example
 *   console.log(spawnCostMs()); // '0.9'
 */
export function spawnCostMs(runs = 10) {
  const start = performance.now();
  for (let i = 0; i < runs; i++) spawnSync('true');
  return ((performance.now() - start) / runs).toFixed(1);
}

/**
 * nproc, CPU model, memory, kernel and Node version, for the record.
 *
 * @example
 *   const { cpuModel, nproc } = describeMachine();
 */
export function describeMachine() {
  let cpuModel = os.cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'latin1'));
    if (m) cpuModel = m[1].trim();
  } catch {
    /* not Linux */
  }
  return {
    nproc: os.availableParallelism?.() ?? os.cpus().length,
    cpuModel,
    memGiB: (os.totalmem() / 2 ** 30).toFixed(1),
    kernel: os.release(),
    node: process.version,
    loadAverage: os.loadavg().map((n) => n.toFixed(2)).join(' '),
    spawnMs: spawnCostMs(),
  };
}

/**
 * Replace everything below the "<!-- results -->" marker of RESULTS.md with the latest results.
 *
 * @example
 *   recordResults('bench/RESULTS.md', markdown);
 */
export function recordResults(path, markdown) {
  const marker = '<!-- results -->';
  let head = `# Benchmark results\n\nWritten by \`node bench/run.mjs --record\`; see bench/README.md for what is measured and how.\n\n${marker}\n`;
  try {
    const text = readFileSync(path, 'utf8');
    const at = text.indexOf(marker);
    if (at !== -1) head = text.slice(0, at + marker.length) + '\n';
  } catch {
    /* first record */
  }
  writeFileSync(path, `${head}\n${markdown}`);
}
