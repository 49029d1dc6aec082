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
      rows.push(
        `| ${name} | — | ${server.status}: ${
          String(server.reason ?? '')
            .replace(/\|/g, '/')
            .split('\n')[0]
        } | | | | | | | | |`,
      );
      continue;
    }
    for (const mode of MODES) {
      const r = server.modes[mode];
      if (!r) continue;
      if (r.failed) {
        rows.push(`| ${name} | ${mode} | failed: ${String(r.failed).replace(/\|/g, '/')} | | | | | | | | |`);
        continue;
      }
      const errors =
        r.errors.total === 0
          ? '0'
          : `${r.errors.total} (${Object.entries(r.errors)
              .filter(([k, v]) => k !== 'total' && v > 0)
              .map(([k, v]) => `${k} ${v}`)
              .join(', ')})`;
      rows.push(
        `| ${name} | ${mode} | ${fmt(r.throughput, 0)} | ${fmt(r.latency_ms.p50, 2)} | ${fmt(r.latency_ms.p99, 2)} | ${fmt(r.latency_ms.max, 1)} | ${fmt(r.serverCpuUsPerQuery, 0)} | ${errors} | ${r.server_closed} | ${mib(r.rssKiB)}${rssBreakdown(r)} | ${replies(r)} |`,
      );
    }
  }
  return rows.join('\n');
}

function ok(results, name, mode) {
  const server = results.servers?.[name];
  const r = server?.status === 'ok' ? server.modes[mode] : undefined;
  return r && !r.failed && r.completed > 0 ? r : undefined;
}

function ratioTarget(results, { name, numerator, denominator, mode, atLeast }) {
  const a = ok(results, numerator, mode);
  const b = ok(results, denominator, mode);
  if (!a || !b) {
    const missing = [!a && numerator, !b && denominator].filter(Boolean).join(', ');
    return {
      name: `${name} (${mode})`,
      verdict: 'n/a',
      measured: `not measured: ${missing}`,
      threshold: `>= ${atLeast}x`,
    };
  }
  const ratio = a.throughput / b.throughput;
  return {
    name: `${name} (${mode})`,
    verdict: ratio >= atLeast ? 'PASS' : 'MISS',
    measured: `${ratio.toFixed(2)}x (${fmt(a.throughput, 0)} / ${fmt(b.throughput, 0)} q/s)`,
    threshold: `>= ${atLeast}x`,
  };
}

/**
 * embedded / node-ceiling: the median of the head-to-head rounds' ratios when that phase ran (passes
 * seconds apart), else the main table's passes (a minute apart), which are quoted either way.
 */
function ceilingTarget(results, mode, atLeast) {
  const sequential = ratioTarget(results, {
    name: 'embedded / node-ceiling',
    numerator: 'embedded',
    denominator: 'node-ceiling',
    mode,
    atLeast,
  });
  const h2h = results.headToHead?.status === 'ok' ? results.headToHead.modes[mode] : undefined;
  if (!h2h)
    return results.headToHead
      ? {
          ...sequential,
          measured: `${sequential.measured}; head to head ${results.headToHead.status}: ${results.headToHead.reason}`,
        }
      : sequential;
  const ratios = h2h.rounds.map((r) => r.ratio.toFixed(2)).join(', ');
  return {
    name: sequential.name,
    verdict: h2h.medianRatio >= atLeast ? 'PASS' : 'MISS',
    measured: `${h2h.medianRatio.toFixed(2)}x, median of ${h2h.rounds.length} alternating rounds (${ratios}); main table passes: ${sequential.measured}`,
    threshold: `>= ${atLeast}x`,
  };
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
      rows.push(
        `| ${mode} | ${i + 1} | ${fmt(r['node-ceiling'].throughput, 0)} | ${fmt(r.embedded.throughput, 0)} | ${r.ratio.toFixed(2)} | ${fmt(r['node-ceiling'].cpuUsPerQuery, 0)} | ${fmt(r.embedded.cpuUsPerQuery, 0)} | ${fmt(r.embedded.p99, 2)} | ${r['node-ceiling'].errors + r.embedded.errors} |`,
      );
    });
    rows.push(`| ${mode} | median | | | **${medianRatio.toFixed(2)}** | | | | |`);
  }
  return rows.join('\n');
}

function p99Target(results, { name, subject, reference, mode }) {
  const a = ok(results, subject, mode);
  const b = ok(results, reference, mode);
  if (!a || !b)
    return { name: `${name} (${mode})`, verdict: 'n/a', measured: 'not measured', threshold: `<= ${reference} p99` };
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
    targets.push(
      ratioTarget(results, {
        name: 'embedded / oidentd throughput',
        numerator: 'embedded',
        denominator: 'oidentd',
        mode,
        atLeast: 3,
      }),
    );
    targets.push(
      p99Target(results, { name: 'embedded p99 <= oidentd p99', subject: 'embedded', reference: 'oidentd', mode }),
    );
  }
  targets.push(ceilingTarget(results, '1/conn', 1.0));
  targets.push(ceilingTarget(results, '100/conn', 0.5));
  for (const mode of MODES)
    targets.push(
      ratioTarget(results, {
        name: 'workerd-http / oidentd',
        numerator: 'workerd-http',
        denominator: 'oidentd',
        mode,
        atLeast: 1.0,
      }),
    );
  for (const mode of MODES)
    targets.push(
      ratioTarget(results, {
        name: 'node-worker-http / oidentd',
        numerator: 'node-worker-http',
        denominator: 'oidentd',
        mode,
        atLeast: 1.5,
      }),
    );
  for (const name of ['workerd-http', 'node-worker-http']) {
    const q = results.servers[name]?.queriesPerHttpRequest;
    targets.push({
      name: `${name}: queries per HTTP request`,
      verdict: 'info',
      measured: q ?? 'n/a',
      threshold: '(batching, informational)',
    });
  }
  // What the native transport is worth: the same gateway on node:net (informational).
  for (const mode of MODES) {
    const t = ratioTarget(results, {
      name: 'transport: embedded (native) / embedded-node (node:net)',
      numerator: 'embedded',
      denominator: 'embedded-node',
      mode,
      atLeast: 1,
    });
    targets.push({ ...t, verdict: t.verdict === 'n/a' ? 'n/a' : 'info', threshold: '(informational)' });
  }
  // Headroom: the load generator drives the C ceiling well beyond identgate, so identgate is what is measured.
  for (const mode of MODES) {
    const t = ratioTarget(results, {
      name: 'loadgen headroom: c-ceiling / embedded',
      numerator: 'c-ceiling',
      denominator: 'embedded',
      mode,
      atLeast: 1.5,
    });
    targets.push(t);
  }
  // Correctness under load: identgate never answers with a malformed line, wrong ports, or drops a query.
  for (const name of ['embedded', 'node-worker-http', 'workerd-http']) {
    const server = results.servers[name];
    if (server?.status !== 'ok') {
      targets.push({
        name: `${name}: zero errors under load`,
        verdict: 'n/a',
        measured: 'not measured',
        threshold: '0 errors',
      });
      continue;
    }
    const errors = MODES.map((mode) => server.modes[mode]?.errors?.total ?? 0).reduce((a, b) => a + b, 0);
    targets.push({
      name: `${name}: zero errors under load`,
      verdict: errors === 0 ? 'PASS' : 'MISS',
      measured: `${errors} errors`,
      threshold: '0 errors',
    });
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
  targets.push(...timeWaitTargets(results.timeWait));
  targets.push(...policyEvalTargets(results.policyEval));
  return targets;
}

/** Lowest and highest TIME_WAIT count seen at the start and end of the phase's passes. */
function timeWaitRange(phase) {
  const counts = Object.values(phase.servers ?? {})
    .flatMap((server) => Object.values(server.modes ?? {}))
    .flatMap((r) => (r.timeWait ? [r.timeWait.atStart, r.timeWait.atEnd] : []))
    .filter((n) => typeof n === 'number');
  return counts.length > 0 ? { min: Math.min(...counts), max: Math.max(...counts) } : undefined;
}

/**
 * embedded / oidentd in the TIME_WAIT phase. oidentd may answer nothing within a pass when the table
 * is full (each forked lookup takes seconds on a small VM); its rate is then below one query per
 * pass, and the ratio is reported as the lower bound embedded q/s x pass seconds.
 */
function missRatioTarget(phase, mode, atLeast) {
  const name = `TIME_WAIT misses: embedded / oidentd throughput (${mode})`;
  const a = ok(phase, 'embedded', mode);
  const b = phase.servers?.oidentd?.status === 'ok' ? phase.servers.oidentd.modes[mode] : undefined;
  if (!a || !b || b.failed) {
    const missing = [!a && 'embedded', (!b || b.failed) && 'oidentd'].filter(Boolean).join(', ');
    return { name, verdict: 'n/a', measured: `not measured: ${missing}`, threshold: `>= ${atLeast}x` };
  }
  if (b.completed > 0) {
    const ratio = a.throughput / b.throughput;
    return {
      name,
      verdict: ratio >= atLeast ? 'PASS' : 'MISS',
      measured: `${ratio.toFixed(2)}x (${fmt(a.throughput, 0)} / ${fmt(b.throughput, 1)} q/s)`,
      threshold: `>= ${atLeast}x`,
    };
  }
  const bound = a.throughput * b.duration_s;
  return {
    name,
    verdict: bound >= atLeast ? 'PASS' : 'MISS',
    measured: `> ${bound.toFixed(0)}x (${fmt(a.throughput, 0)} q/s; oidentd answered 0 queries in ${fmt(b.duration_s, 1)} s, i.e. < ${fmt(1 / b.duration_s, 2)} q/s)`,
    threshold: `>= ${atLeast}x`,
  };
}

/**
 * Targets of the TIME_WAIT phase (owner-lookup misses answered NO-USER with ~20,000 TIME_WAIT
 * sockets on the host): the setup itself, embedded / oidentd >= 10x (1/conn; 100/conn informational,
 * as oidentd answers one query per connection), embedded p99 < 10 ms, and every answer an ERROR with no errors.
 *
 * @example
 *   timeWaitTargets(results.timeWait).map((t) => t.verdict);
 */
export function timeWaitTargets(phase) {
  const prefix = 'TIME_WAIT misses';
  if (!phase) return [];
  if (phase.status !== 'ok') {
    return [
      {
        name: `${prefix}: embedded / oidentd >= 10x, p99 < 10 ms`,
        verdict: 'n/a',
        measured: `${phase.status}: ${phase.reason ?? ''}`,
        threshold: '>= 10x, < 10 ms',
      },
    ];
  }
  const targets = [];
  const range = timeWaitRange(phase);
  const fill = phase.fill;
  targets.push({
    name: `${prefix}: setup, >= ${phase.target} sockets in TIME_WAIT on the host during the passes`,
    verdict: range && range.min >= phase.target ? 'PASS' : 'MISS',
    measured: `${range ? `${range.min}-${range.max} during the passes; ` : ''}fill ${fill.before} -> ${fill.reached} in ${fmt(fill.seconds, 1)} s (${fill.opened} connections opened and closed${fill.reachedTarget ? '' : `, stopped at the ${fill.deadlineS} s cap`})`,
    threshold: `>= ${phase.target} (setup, not identgate)`,
  });
  for (const mode of MODES) {
    const t = missRatioTarget(phase, mode, 10);
    if (mode !== '1/conn') {
      if (t.verdict !== 'n/a') t.verdict = 'info';
      t.threshold = '(oidentd answers one query per connection; informational)';
    }
    targets.push(t);
  }
  for (const mode of MODES) {
    const full = ok(phase, 'embedded', mode);
    const before = phase.baseline?.modes?.[mode];
    if (full && before && !before.failed && before.completed > 0) {
      targets.push({
        name: `${prefix}: embedded with the full table / before the fill (${mode})`,
        verdict: 'info',
        measured: `${(full.throughput / before.throughput).toFixed(2)}x throughput (${fmt(full.throughput, 0)} / ${fmt(before.throughput, 0)} q/s), p99 ${fmt(full.latency_ms.p99, 2)} vs ${fmt(before.latency_ms.p99, 2)} ms`,
        threshold: '(what TIME_WAIT costs identgate; informational)',
      });
    }
  }
  for (const mode of MODES) {
    const r = ok(phase, 'embedded', mode);
    targets.push({
      name: `${prefix}: embedded p99 (${mode})`,
      verdict: r ? (r.latency_ms.p99 < 10 ? 'PASS' : 'MISS') : 'n/a',
      measured: r ? `${fmt(r.latency_ms.p99, 2)} ms (p50 ${fmt(r.latency_ms.p50, 2)} ms)` : 'not measured',
      threshold: '< 10 ms',
    });
  }
  for (const name of ['embedded', 'oidentd']) {
    const server = phase.servers[name];
    if (server?.status !== 'ok') continue;
    const passes = MODES.map((mode) => server.modes[mode]).filter((r) => r && !r.failed);
    const errors = passes.reduce((sum, r) => sum + r.errors.total, 0);
    const users = passes.reduce((sum, r) => sum + (r.replies?.USERID ?? 0), 0);
    const sample = passes.find((r) => r.sample_error)?.sample_error ?? '';
    const noUser = users === 0 && /ERROR\s*:\s*NO-USER/.test(sample);
    targets.push({
      name: `${prefix}: ${name} answers NO-USER, 0 errors`,
      verdict: name === 'oidentd' ? 'info' : errors === 0 && noUser ? 'PASS' : 'MISS',
      measured: `${errors} errors, ${users} USERID answers, e.g. \`${sample.trim()}\``,
      threshold: name === 'oidentd' ? '(reference)' : '0 errors, every answer ERROR : NO-USER',
    });
  }
  return targets;
}

/**
 * Markdown for the TIME_WAIT phase: how full the table was, then one row per server and mode with
 * the TIME_WAIT count at the start and end of the pass.
 *
 * @example
 *   console.log(renderTimeWait(results.timeWait));
 */
export function renderTimeWait(phase) {
  if (!phase) return '';
  if (phase.status !== 'ok') return `TIME_WAIT phase ${phase.status}: ${phase.reason ?? ''}`;
  const fill = phase.fill;
  const rows = [
    `Query \`${phase.query}\` names a connection that does not exist (a lookup miss, answered NO-USER). TIME_WAIT sockets on the host (\`ss -Htan state time-wait | wc -l\`): ${fill.before} before the fill, ${fill.reached} after (target ${phase.target}; ${fill.opened} loopback connections opened and closed in ${fmt(fill.seconds, 1)} s${fill.reachedTarget ? '' : `, stopped at the ${fill.deadlineS} s cap`}). identgate is also measured before the fill, for comparison.`,
    '',
    '| server | mode | TIME_WAIT start -> end | queries/s | answered | p50 ms | p99 ms | max ms | server CPU µs/query | errors | server closed | reply |',
    '|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  const row = (name, mode, r) => {
    if (r.failed) return `| ${name} | ${mode} | | failed: ${String(r.failed).replace(/\|/g, '/')} | | | | | | | | |`;
    const errors =
      r.errors.total === 0
        ? '0'
        : `${r.errors.total} (${Object.entries(r.errors)
            .filter(([k, v]) => k !== 'total' && v > 0)
            .map(([k, v]) => `${k} ${v}`)
            .join(', ')})`;
    const unfinished = r.unfinishedChildren
      ? ` (${r.unfinishedChildren} lookups still running 5 s after the pass)`
      : '';
    return `| ${name} | ${mode} | ${r.timeWait?.atStart ?? 'n/a'} -> ${r.timeWait?.atEnd ?? 'n/a'} | ${fmt(r.throughput, 0)} | ${r.completed}${unfinished} | ${fmt(r.latency_ms.p50, 2)} | ${fmt(r.latency_ms.p99, 2)} | ${fmt(r.latency_ms.max, 1)} | ${fmt(r.serverCpuUsPerQuery, 0)} | ${errors} | ${r.server_closed} | ${replies(r)} |`;
  };
  for (const mode of MODES) {
    const r = phase.baseline?.modes?.[mode];
    if (r) rows.push(row('embedded, before the fill', mode, r));
  }
  for (const [name, server] of Object.entries(phase.servers)) {
    if (server.status !== 'ok') {
      rows.push(
        `| ${name} | — | ${server.status}: ${
          String(server.reason ?? '')
            .replace(/\|/g, '/')
            .split('\n')[0]
        } | | | | | | | | | |`,
      );
      continue;
    }
    for (const mode of MODES) {
      const r = server.modes[mode];
      if (r) rows.push(row(name, mode, r));
    }
  }
  return rows.join('\n');
}

/**
 * Parse the output of bench/policy-eval.mjs: its case lines ("LABEL  MEDIAN  BEST  VERDICT  rule R",
 * numbers with thousands separators, VERDICT PASS / MISS / info as it decides them), the target
 * from its header, its load averages and its closing summary. Returns undefined cases when the
 * output has none (its format changed, or it failed).
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
  const target = /target ([\d,]+) decisions\/s(?: \(([^)]*)\))?/.exec(stdout);
  return {
    header: lines[0] ?? '',
    target: target ? number(target[1]) : undefined,
    statistic: target?.[2] ?? 'median',
    loadavgBefore: /^loadavg before: (.*)$/m.exec(stdout)?.[1],
    loadavgAfter: /^loadavg after: (.*)$/m.exec(stdout)?.[1],
    compile: lines.filter((line) => /^(compile|parse \+ compile) /.test(line)),
    summary: lines.filter((line) => /^(all target cases PASS|MISS: )/.test(line)).pop(),
    cases: cases.length > 0 ? cases : undefined,
  };
}

const thousands = (n) => (typeof n === 'number' ? n.toLocaleString('en-US') : 'n/a');

/**
 * One target per case of bench/policy-eval.mjs, with the verdict it printed itself ('info' cases have no target).
 *
 * @example
 *   policyEvalTargets(results.policyEval).filter((t) => t.verdict === 'MISS');
 */
export function policyEvalTargets(phase) {
  if (!phase) return [];
  const targets = [];
  if (phase.status !== 'ok') {
    targets.push({
      name: 'policy eval: ran to completion',
      verdict: phase.status === 'failed' ? 'MISS' : 'n/a',
      measured: `${phase.status}: ${phase.reason ?? ''}`,
      threshold: 'exit status 0',
    });
  }
  const cases = phase.parsed?.cases;
  if (!cases) {
    if (phase.status === 'ok')
      targets.push({
        name: 'policy eval: 1,000-rule cases',
        verdict: 'n/a',
        measured: 'no case lines in its output (format changed?)',
        threshold: '>= 200,000 decisions/s',
      });
    return targets;
  }
  const { target, statistic } = phase.parsed;
  for (const c of cases) {
    targets.push({
      name: `policy eval: ${c.label}`,
      verdict: c.verdict,
      measured: `${thousands(c.median)} decisions/s ${statistic} (best ${thousands(c.best)})`,
      threshold:
        c.verdict === 'info' ? '(no target, informational)' : `>= ${thousands(target)} decisions/s (${statistic})`,
    });
  }
  return targets;
}

/**
 * Markdown for the policy evaluation phase: the command, its header, load averages and summary.
 *
 * @example
 *   console.log(renderPolicyEval(results.policyEval));
 */
export function renderPolicyEval(phase) {
  if (!phase) return '';
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
    loadAverage: os
      .loadavg()
      .map((n) => n.toFixed(2))
      .join(' '),
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
