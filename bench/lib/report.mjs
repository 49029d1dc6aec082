/**
 * The bench results as a reader needs them: tables, the targets of bench/targets.json as PASS / MISS
 * lines, the machine description, RESULTS.md. Pure functions over what run.mjs measured.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';

export const MODES = ['1/conn', '100/conn'];

/** bench/targets.json: `{ name, metric, of?, vs?, comparison?, threshold?, modes?, info? }` each. */
export const TARGETS = JSON.parse(readFileSync(new URL('../targets.json', import.meta.url), 'utf8')).targets;

/**
 * The median of some numbers (the mean of the middle two for an even count).
 *
 * @example
 *   median([3, 1, 2, 10]) // 2.5
 */
export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length / 2;
  return sorted.length % 2 ? sorted[Math.floor(middle)] : (sorted[middle - 1] + sorted[middle]) / 2;
}

const fmt = (n, digits = 1) => (typeof n === 'number' && Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
const mib = (kib) => (typeof kib === 'number' ? (kib / 1024).toFixed(1) : 'n/a');
const thousands = (n) => (typeof n === 'number' ? n.toLocaleString('en-US') : 'n/a');
const cell = (text) => String(text ?? '').replace(/\|/g, '/');

function replies(r) {
  const { USERID: users = 0, ERROR: errors = 0 } = r.replies ?? {};
  if (errors === 0) return `\`${r.sample_reply}\``;
  if (users === 0) return `\`${r.sample_error}\``;
  return `${users} × \`${r.sample_reply}\`, ${errors} × ERROR e.g. \`${r.sample_error}\``;
}

function errorCounts(r) {
  if (r.errors.total === 0) return '0';
  const kinds = Object.entries(r.errors).filter(([k, v]) => k !== 'total' && v > 0);
  return `${r.errors.total} (${kinds.map(([k, v]) => `${k} ${v}`).join(', ')})`;
}

function rssBreakdown(r) {
  const parts = Object.entries(r.rssByProcessKiB ?? {});
  return parts.length > 1 ? ` (${parts.map(([name, kib]) => `${name} ${mib(kib)}`).join(' + ')})` : '';
}

/** A table row for a server that did not run: its status and reason, then `empty` blank cells. */
const notRun = (name, server, empty) =>
  `| ${name} | — | ${server.status}: ${cell(server.reason).split('\n')[0]} |${' |'.repeat(empty)}`;

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
    if (server.status !== 'ok') rows.push(notRun(name, server, 8));
    for (const mode of server.status === 'ok' ? MODES : []) {
      const r = server.modes[mode];
      if (r?.failed) rows.push(`| ${name} | ${mode} | failed: ${cell(r.failed)} | | | | | | | | |`);
      else if (r)
        rows.push(
          `| ${name} | ${mode} | ${fmt(r.throughput, 0)} | ${fmt(r.latency_ms.p50, 2)} | ${fmt(r.latency_ms.p99, 2)} | ${fmt(r.latency_ms.max, 1)} | ${fmt(r.serverCpuUsPerQuery, 0)} | ${errorCounts(r)} | ${r.server_closed} | ${mib(r.rssKiB)}${rssBreakdown(r)} | ${replies(r)} |`,
        );
    }
  }
  return rows.join('\n');
}

/** A server's pass in a mode when it answered something. */
function ok(servers, name, mode) {
  const server = servers?.[name];
  const r = server?.status === 'ok' ? server.modes[mode] : undefined;
  return r && !r.failed && r.completed > 0 ? r : undefined;
}

const notMeasured = (...missing) => ({ measured: `not measured: ${missing.filter(Boolean).join(', ')}` });

function throughputRatio(servers, { of, vs }, mode) {
  const a = ok(servers, of, mode);
  const b = ok(servers, vs, mode);
  if (!a || !b) return notMeasured(!a && of, !b && vs);
  const value = a.throughput / b.throughput;
  return { value, measured: `${value.toFixed(2)}x (${fmt(a.throughput, 0)} / ${fmt(b.throughput, 0)} q/s)` };
}

/** How the TIME_WAIT count moved during the phase's passes. */
function timeWaitRange(phase) {
  const counts = Object.values(phase.servers ?? {})
    .flatMap((server) => Object.values(server.modes ?? {}))
    .flatMap((r) => (r.timeWait ? [r.timeWait.atStart, r.timeWait.atEnd] : []))
    .filter((n) => typeof n === 'number');
  return counts.length > 0 ? { min: Math.min(...counts), max: Math.max(...counts) } : undefined;
}

/** Runs `measure` on the TIME_WAIT phase: no rows when it did not run, n/a when it did not finish. */
const timeWait = (measure) => (results, target, mode) => {
  const phase = results.timeWait;
  if (!phase) return [];
  // One line per verdict, none for what is only informational.
  if (phase.status !== 'ok') return target.info ? [] : { measured: `${phase.status}: ${phase.reason ?? ''}` };
  return measure(phase, target, mode);
};

const idle = (measure) => (results) => {
  const flood = results.idle;
  return flood?.status === 'ok' ? measure(flood) : { measured: flood?.reason ?? 'not measured' };
};

/**
 * What each metric of bench/targets.json measures: `(results, target, mode) => { value?, measured, limit?,
 * also?, alsoText?, thresholdText?, name?, label? }` (no value: not measured, n/a), or a list of such rows.
 */
const METRICS = {
  'throughput-ratio': (results, target, mode) => throughputRatio(results.servers, target, mode),

  'p99-vs': (results, { of, vs }, mode) => {
    const a = ok(results.servers, of, mode);
    const b = ok(results.servers, vs, mode);
    if (!a || !b) return { measured: 'not measured' };
    const measured = `${fmt(a.latency_ms.p99, 2)} ms vs ${fmt(b.latency_ms.p99, 2)} ms`;
    return { value: a.latency_ms.p99, limit: b.latency_ms.p99, measured };
  },

  // The head-to-head rounds' median ratio when that phase ran (passes seconds apart), else the
  // main table's passes (a minute apart), which are quoted either way.
  'ceiling-ratio': (results, target, mode) => {
    const table = throughputRatio(results.servers, target, mode);
    const h2h = results.headToHead;
    const rounds = h2h?.status === 'ok' ? h2h.modes[mode] : undefined;
    if (!rounds)
      return h2h ? { ...table, measured: `${table.measured}; head to head ${h2h.status}: ${h2h.reason}` } : table;
    const ratios = rounds.rounds.map((r) => r.ratio.toFixed(2)).join(', ');
    return {
      value: rounds.medianRatio,
      measured: `${rounds.medianRatio.toFixed(2)}x, median of ${rounds.rounds.length} alternating rounds (${ratios}); main table passes: ${table.measured}`,
    };
  },

  'queries-per-http-request': (results, { of }) => {
    const q = results.servers[of]?.queriesPerHttpRequest;
    return { value: q, measured: q ?? 'n/a' };
  },

  // Gateway + worker CPU of one path against another's (issue 17: the Node-worker path against embedded).
  'cpu-ratio': (results, { of, vs }, mode) => {
    const a = ok(results.servers, of, mode);
    const b = ok(results.servers, vs, mode);
    if (!a || !b) return notMeasured(!a && of, !b && vs);
    const value = a.serverCpuUsPerQuery / b.serverCpuUsPerQuery;
    const measured = `${value.toFixed(2)}x (${fmt(a.serverCpuUsPerQuery, 0)} / ${fmt(b.serverCpuUsPerQuery, 0)} µs/query)`;
    return { value, measured };
  },

  // bench/workerd-cpu.mjs: one row per decision-log setting at the target's batch size, net of the baseline.
  'workerd-net-cpu-per-decision': (results, { batch }) => {
    const phase = results.workerdCpu;
    if (!phase) return [];
    if (phase.status !== 'ok') return { measured: `${phase.status}: ${phase.reason ?? ''}` };
    return ['on', 'off'].map((decisionLog) => {
      const row = phase.rows.find((r) => r.batch === batch && r.decisionLog === decisionLog);
      const label = `decision log ${decisionLog}`;
      if (!row) return { label, measured: 'not measured' };
      const measured = `${fmt(row.netCpuUsPerDecision, 1)} µs (raw ${fmt(row.cpuUsPerDecision, 1)})`;
      return { label, value: row.netCpuUsPerDecision, measured };
    });
  },

  errors: (results, { of }) => {
    const server = results.servers[of];
    if (server?.status !== 'ok') return { measured: 'not measured' };
    const errors = MODES.reduce((sum, mode) => sum + (server.modes[mode]?.errors?.total ?? 0), 0);
    return { value: errors, measured: `${errors} errors` };
  },

  'idle-rss-growth-mib': idle((flood) => {
    const growthMiB = (flood.peakRssKiB - flood.baselineRssKiB) / 1024;
    const held = flood.result.idle.open_at_end;
    return {
      name: `idle flood: RSS growth with ${flood.requested} idle connections`,
      value: growthMiB,
      also: held === flood.requested,
      alsoText: 'all held',
      measured: `${growthMiB.toFixed(1)} MiB (${mib(flood.baselineRssKiB)} -> ${mib(flood.peakRssKiB)}); ${held}/${flood.requested} held to the end`,
    };
  }),

  'idle-p99-ms': idle(({ result: r }) => ({
    value: r.latency_ms.p99,
    also: r.completed > 0 && r.errors.total === 0,
    alsoText: '0 errors',
    measured: `${fmt(r.latency_ms.p99, 2)} ms over ${r.completed} queries (${fmt(r.throughput, 0)} q/s), ${r.errors.total} errors`,
  })),

  'time-wait-sockets': timeWait((phase) => {
    const range = timeWaitRange(phase);
    const fill = phase.fill;
    return {
      value: range?.min,
      limit: phase.target,
      thresholdText: `>= ${phase.target} (setup, not identgate)`,
      measured: `${range ? `${range.min}-${range.max} during the passes; ` : ''}fill ${fill.before} -> ${fill.reached} in ${fmt(fill.seconds, 1)} s (${fill.opened} connections opened and closed${fill.reachedTarget ? '' : `, stopped at the ${fill.deadlineS} s cap`})`,
    };
  }),

  // oidentd may answer nothing within a pass when the table is full (each forked lookup takes seconds
  // on a small VM): the ratio is then the lower bound embedded q/s x pass seconds.
  'time-wait-throughput-ratio': timeWait((phase, { of, vs }, mode) => {
    const a = ok(phase.servers, of, mode);
    const b = phase.servers?.[vs]?.status === 'ok' ? phase.servers[vs].modes[mode] : undefined;
    if (!a || !b || b.failed) return notMeasured(!a && of, (!b || b.failed) && vs);
    if (b.completed > 0) {
      const value = a.throughput / b.throughput;
      return { value, measured: `${value.toFixed(2)}x (${fmt(a.throughput, 0)} / ${fmt(b.throughput, 1)} q/s)` };
    }
    const bound = a.throughput * b.duration_s;
    return {
      value: bound,
      measured: `> ${bound.toFixed(0)}x (${fmt(a.throughput, 0)} q/s; ${vs} answered 0 queries in ${fmt(b.duration_s, 1)} s, i.e. < ${fmt(1 / b.duration_s, 2)} q/s)`,
    };
  }),

  'time-wait-cost': timeWait((phase, { of }, mode) => {
    const full = ok(phase.servers, of, mode);
    const before = phase.baseline?.modes?.[mode];
    if (!full || !before || before.failed || !(before.completed > 0)) return [];
    const value = full.throughput / before.throughput;
    return {
      value,
      measured: `${value.toFixed(2)}x throughput (${fmt(full.throughput, 0)} / ${fmt(before.throughput, 0)} q/s), p99 ${fmt(full.latency_ms.p99, 2)} vs ${fmt(before.latency_ms.p99, 2)} ms`,
    };
  }),

  'time-wait-p99-ms': timeWait((phase, { of }, mode) => {
    const r = ok(phase.servers, of, mode);
    if (!r) return { measured: 'not measured' };
    return {
      value: r.latency_ms.p99,
      measured: `${fmt(r.latency_ms.p99, 2)} ms (p50 ${fmt(r.latency_ms.p50, 2)} ms)`,
    };
  }),

  'time-wait-no-user': timeWait((phase, { of }) => {
    const server = phase.servers[of];
    if (server?.status !== 'ok') return [];
    const passes = MODES.map((mode) => server.modes[mode]).filter((r) => r && !r.failed);
    const errors = passes.reduce((sum, r) => sum + r.errors.total, 0);
    const users = passes.reduce((sum, r) => sum + (r.replies?.USERID ?? 0), 0);
    const sample = passes.find((r) => r.sample_error)?.sample_error ?? '';
    return {
      value: errors,
      also: users === 0 && /ERROR\s*:\s*NO-USER/.test(sample),
      measured: `${errors} errors, ${users} USERID answers, e.g. \`${sample.trim()}\``,
    };
  }),

  // One row per case of bench/policy-eval.mjs, which reads the same target; its 'info' cases have none.
  'decisions-per-second': (results, target) => {
    const phase = results.policyEval;
    if (!phase) return [];
    const rows = [];
    if (phase.status !== 'ok') {
      const measured = `${phase.status}: ${phase.reason ?? ''}`;
      rows.push({ label: 'ran to completion', verdict: phase.status === 'failed' ? 'MISS' : 'n/a', measured });
    }
    const cases = phase.parsed?.cases;
    if (!cases && phase.status === 'ok')
      rows.push({ label: '1,000-rule cases', measured: 'no case lines in its output (format changed?)' });
    const statistic = phase.parsed?.statistic ?? 'median';
    for (const c of cases ?? []) {
      const measured = `${thousands(c.median)} decisions/s ${statistic} (best ${thousands(c.best)})`;
      rows.push({
        label: c.label,
        info: c.verdict === 'info' ? 'no target, informational' : undefined,
        value: c.median,
        unit: ` decisions/s (${statistic})`,
        measured,
      });
    }
    return rows.map((row) => ({ thresholdText: row.verdict ? 'exit status 0' : undefined, ...row }));
  },
};

const COMPARE = { '>=': (a, b) => a >= b, '>': (a, b) => a > b, '<=': (a, b) => a <= b, '<': (a, b) => a < b };
/** How a metric's threshold is written after its number. */
const UNITS = {
  'throughput-ratio': 'x',
  'cpu-ratio': 'x',
  'workerd-net-cpu-per-decision': ' µs',
  'ceiling-ratio': 'x',
  'time-wait-throughput-ratio': 'x',
  'idle-rss-growth-mib': ' MiB',
  'idle-p99-ms': ' ms',
  'time-wait-p99-ms': ' ms',
};

/** One printed target from a target of bench/targets.json and what its metric measured. */
function judge(target, mode, row) {
  const name = (row.name ?? [target.name, row.label].filter(Boolean).join(': ')) + (mode ? ` (${mode})` : '');
  const info = target.info ?? row.info;
  const limit = row.limit ?? target.threshold;
  const written = `${target.comparison} ${thousands(limit)}${row.unit ?? UNITS[target.metric] ?? ''}`;
  const threshold = info
    ? `(${info})`
    : (row.thresholdText ?? target.thresholdText ?? [written, row.alsoText].filter(Boolean).join(', '));
  if (row.verdict) return { name, verdict: row.verdict, measured: row.measured, threshold };
  if (row.value === undefined) return { name, verdict: 'n/a', measured: row.measured, threshold };
  if (info) return { name, verdict: 'info', measured: row.measured, threshold };
  const pass = COMPARE[target.comparison](row.value, limit) && row.also !== false;
  return { name, verdict: pass ? 'PASS' : 'MISS', measured: row.measured, threshold };
}

/**
 * The targets of bench/targets.json judged on the results, each { name, verdict: 'PASS' | 'MISS' | 'n/a' | 'info', measured, threshold }.
 *
 * @example
 *   evaluateTargets(results).filter((t) => t.verdict === 'MISS');
 */
export function evaluateTargets(results, targets = TARGETS) {
  return targets.flatMap((target) =>
    (target.modes ?? [undefined]).flatMap((mode) =>
      [METRICS[target.metric](results, target, mode)].flat().map((row) => judge(target, mode, row)),
    ),
  );
}

/**
 * The head-to-head rounds as a markdown table.
 *
 * @example
 *   renderHeadToHead(results.headToHead)
 */
export function renderHeadToHead(phase) {
  if (phase.status !== 'ok') return `Head to head: ${phase.status}: ${phase.reason}`;
  const rows = [
    `identgate embedded and the Node ceiling, both running, measured in turn: ${phase.rounds} rounds per mode of ${phase.durationS} s passes (ceiling first in each round). The embedded / node-ceiling targets use the median ratio.`,
    '',
    '| mode | round | node-ceiling q/s | embedded q/s | ratio | node-ceiling µs/query | embedded µs/query | embedded p99 ms | errors |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const [mode, { rounds, medianRatio }] of Object.entries(phase.modes)) {
    rounds.forEach((r, i) => {
      const ceiling = r['node-ceiling'];
      rows.push(
        `| ${mode} | ${i + 1} | ${fmt(ceiling.throughput, 0)} | ${fmt(r.embedded.throughput, 0)} | ${r.ratio.toFixed(2)} | ${fmt(ceiling.cpuUsPerQuery, 0)} | ${fmt(r.embedded.cpuUsPerQuery, 0)} | ${fmt(r.embedded.p99, 2)} | ${ceiling.errors + r.embedded.errors} |`,
      );
    });
    rows.push(`| ${mode} | median | | | **${medianRatio.toFixed(2)}** | | | | |`);
  }
  return rows.join('\n');
}

/**
 * Markdown for the TIME_WAIT phase: how full the table was, then one row per server and mode with
 * the TIME_WAIT count at the start and end of the pass.
 *
 * @example
 *   console.log(renderTimeWait(results.timeWait));
 */
export function renderTimeWait(phase) {
  if (phase.status !== 'ok') return `TIME_WAIT phase ${phase.status}: ${phase.reason ?? ''}`;
  const fill = phase.fill;
  const rows = [
    `Query \`${phase.query}\` names a connection that does not exist (a lookup miss, answered NO-USER). TIME_WAIT sockets on the host (\`ss -Htan state time-wait | wc -l\`): ${fill.before} before the fill, ${fill.reached} after (target ${phase.target}; ${fill.opened} loopback connections opened and closed in ${fmt(fill.seconds, 1)} s${fill.reachedTarget ? '' : `, stopped at the ${fill.deadlineS} s cap`}). identgate is also measured before the fill, for comparison.`,
    '',
    '| server | mode | TIME_WAIT start -> end | queries/s | answered | p50 ms | p99 ms | max ms | server CPU µs/query | errors | server closed | reply |',
    '|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  const row = (name, mode, r) => {
    if (r.failed) return `| ${name} | ${mode} | | failed: ${cell(r.failed)} | | | | | | | | |`;
    const unfinished = r.unfinishedChildren
      ? ` (${r.unfinishedChildren} lookups still running 5 s after the pass)`
      : '';
    return `| ${name} | ${mode} | ${r.timeWait?.atStart ?? 'n/a'} -> ${r.timeWait?.atEnd ?? 'n/a'} | ${fmt(r.throughput, 0)} | ${r.completed}${unfinished} | ${fmt(r.latency_ms.p50, 2)} | ${fmt(r.latency_ms.p99, 2)} | ${fmt(r.latency_ms.max, 1)} | ${fmt(r.serverCpuUsPerQuery, 0)} | ${errorCounts(r)} | ${r.server_closed} | ${replies(r)} |`;
  };
  for (const mode of MODES)
    if (phase.baseline?.modes?.[mode]) rows.push(row('embedded, before the fill', mode, phase.baseline.modes[mode]));
  for (const [name, server] of Object.entries(phase.servers)) {
    if (server.status !== 'ok') rows.push(notRun(name, server, 9));
    for (const mode of server.status === 'ok' ? MODES : [])
      if (server.modes[mode]) rows.push(row(name, mode, server.modes[mode]));
  }
  return rows.join('\n');
}

/**
 * Parse the output of bench/policy-eval.mjs: its case lines ("LABEL  MEDIAN  BEST  VERDICT  rule R",
 * numbers with thousands separators), the statistic from its header, its load averages and its
 * closing summary. Returns undefined cases when the output has none (its format changed, or it failed).
 *
 * @example
 *   parsePolicyEval('first rule matches (1,000 mixed rules)   1,752,107   1,801,972  PASS  rule rule-0\n').cases[0].median; // 1752107
 */
export function parsePolicyEval(stdout) {
  const lines = stdout.split('\n');
  const number = (text) => Number(text.replace(/,/g, ''));
  const cases = [];
  for (const line of lines) {
    const m = /^(.*\S)\s+(\d[\d,]*)\s+(\d[\d,]*)\s+(PASS|MISS|info)\b/.exec(line);
    if (m) cases.push({ label: m[1], median: number(m[2]), best: number(m[3]), verdict: m[4] });
  }
  return {
    header: lines[0] ?? '',
    statistic: /target [\d,]+ decisions\/s \(([^)]*)\)/.exec(stdout)?.[1] ?? 'median',
    loadavgBefore: /^loadavg before: (.*)$/m.exec(stdout)?.[1],
    loadavgAfter: /^loadavg after: (.*)$/m.exec(stdout)?.[1],
    compile: lines.filter((line) => /^(compile|parse \+ compile) /.test(line)),
    summary: lines.filter((line) => /^(all target cases PASS|MISS: )/.test(line)).pop(),
    cases: cases.length > 0 ? cases : undefined,
  };
}

/**
 * Markdown for the policy evaluation phase: the command, its header, load averages and summary.
 *
 * @example
 *   console.log(renderPolicyEval(results.policyEval));
 */
export function renderPolicyEval(phase) {
  const p = phase.parsed;
  if (phase.status !== 'ok' && !p?.cases)
    return `Policy evaluation (\`${phase.command}\`) ${phase.status}: ${phase.reason ?? ''}`;
  return [
    `Policy evaluation: \`${phase.command}\` (${fmt(phase.seconds, 0)} s): ${p.header}; load average ${p.loadavgBefore ?? 'n/a'} before, ${p.loadavgAfter ?? 'n/a'} after. ${p.summary ?? '(no summary line)'}. Per-case decisions/s are in the targets below.`,
    ...p.compile.map((line) => `- ${line}`),
  ].join('\n');
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

const commands = (servers) =>
  Object.entries(servers ?? {})
    .filter(([, s]) => s.command)
    .map(([name, s]) => `- ${name}: \`${s.command}\``);

/** `npm run bench` with this run's arguments, as someone would type it. */
function npmCommand(command) {
  const args = command.replace(/^node bench\/run\.mjs\s*/, '');
  return args ? `npm run bench -- ${args}` : 'npm run bench';
}

/**
 * Markdown for the workerd CPU phase (bench/workerd-cpu.mjs): per batch size and decision-log setting, workerd's CPU
 * per request raw, the empty-worker baseline, and net (raw - baseline), per request and per decision.
 *
 * @example
 *   console.log(renderWorkerdCpu(results.workerdCpu));
 */
export function renderWorkerdCpu(phase) {
  if (phase.status !== 'ok') return `workerd CPU (\`${phase.command}\`) ${phase.status}: ${phase.reason ?? ''}`;
  const rows = [
    `\`${phase.command}\` (${fmt(phase.seconds, 0)} s): the Workers bundle under Miniflare's API (no wrangler proxy), workerd's CPU from /proc; baseline: an empty worker (\`await req.text(); return new Response('{}')\`) driven the same way, i.e. Miniflare's entry worker and workerd's local HTTP path, which a Workers bill does not count. Net = raw - baseline is identgate's share; requests/query = 1/batch.`,
    '',
    '| decision log | batch | raw CPU µs/request | baseline µs/request | net µs/request | net µs/decision | requests/query |',
    '|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of phase.rows)
    rows.push(
      `| ${r.decisionLog} | ${r.batch} | ${fmt(r.cpuUsPerRequest, 0)} | ${fmt(r.baselineCpuUsPerRequest, 0)} | ${fmt(r.netCpuUsPerRequest, 0)} | ${fmt(r.netCpuUsPerDecision, 1)} | ${fmt(r.requestsPerQuery, 3)} |`,
    );
  return rows.join('\n');
}

/**
 * The whole report of one run as markdown: machine and command, every phase that ran, the targets.
 *
 * @example
 *   writeFileSync('bench/out/latest.md', renderResults(results));
 */
export function renderResults(results) {
  const { machine: m, settings: s } = results;
  return [
    `## ${results.date}`,
    '',
    `Machine: ${m.nproc} CPUs (${m.cpuModel}), ${m.memGiB} GiB, Linux ${m.kernel}, Node ${m.node}; load average at start ${m.loadAverage}; fork+exec+wait of /bin/true ${m.spawnMs} ms.`,
    `Command: \`${npmCommand(results.command)}\` (= \`npm run build && ${results.command}\`), ${s.conns} concurrent clients, ${s.durationS} s per pass, query \`${s.query}\` about a held loopback connection; total ${results.elapsedS.toFixed(0)} s.`,
    '',
    ...(Object.keys(results.servers).length > 0 ? [renderTable(results), ''] : []),
    ...commands(results.servers),
    '',
    ...(results.headToHead
      ? ['### Head to head: embedded and the Node ceiling in turn', '', renderHeadToHead(results.headToHead), '']
      : []),
    ...(results.timeWait
      ? [
          `### Owner-lookup misses with ${results.timeWait.target} sockets in TIME_WAIT`,
          '',
          renderTimeWait(results.timeWait),
          '',
          ...commands(results.timeWait.servers),
          '',
        ]
      : []),
    ...(results.policyEval ? ['### Policy evaluation', '', renderPolicyEval(results.policyEval), ''] : []),
    ...(results.workerdCpu
      ? ['### The worker inside workerd (what a Workers bill counts)', '', renderWorkerdCpu(results.workerdCpu), '']
      : []),
    renderTargets(results.targets),
    '',
  ].join('\n');
}

/**
 * nproc, CPU model, memory, kernel, Node version, load average and the mean wall time of
 * fork+exec+wait of /bin/true over 10 runs (servers that fork per connection, like oidentd, are
 * bounded by it, and it varies a lot between bare metal and small VMs), for the record.
 *
 * @example
 *   const { cpuModel, nproc } = describeMachine();
 */
export function describeMachine() {
  let cpuModel = os.cpus()[0]?.model ?? 'unknown';
  try {
    cpuModel = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'latin1'))?.[1].trim() ?? cpuModel;
  } catch {
    /* not Linux */
  }
  const start = performance.now();
  for (let i = 0; i < 10; i++) spawnSync('true');
  return {
    nproc: os.availableParallelism?.() ?? os.cpus().length,
    cpuModel,
    memGiB: (os.totalmem() / 2 ** 30).toFixed(1),
    kernel: os.release(),
    node: process.version,
    loadAverage: os
      .loadavg()
      .map((n) => n.toFixed(2))
      .join(' '),
    spawnMs: ((performance.now() - start) / 10).toFixed(1),
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
