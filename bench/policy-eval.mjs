// Decisions per second of the policy engine's pure evaluator, decide(compiled, request),
// on the compiled JS, against the target in bench/targets.json (200,000 decisions/s with 1,000 rules).
// Run: npx tsc -p tsconfig.build.json && node bench/policy-eval.mjs [--dist <dir>] [--ms <per round>]
// Each case runs one untimed warm-up round, then ROUNDS timed rounds; the best and the
// median round are printed, with the load average and a trivial calibration loop, since the
// machine may be shared. Cases marked "info" have no target (HMAC cost, name-cache misses).
import { performance } from 'node:perf_hooks';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import os from 'node:os';

const flag = (name, fallback) => {
  const at = process.argv.indexOf(name);
  return at === -1 ? fallback : process.argv[at + 1];
};
const dist = resolve(flag('--dist', 'dist'));
const ROUND_MS = Number(flag('--ms', '400'));
const ROUNDS = 5;
const RULES = 1000;
// The target lives in bench/targets.json with the others (metric decisions-per-second).
const TARGET = JSON.parse(readFileSync(new URL('targets.json', import.meta.url), 'utf8')).targets.find(
  (target) => target.metric === 'decisions-per-second',
).threshold;
const { compilePolicy, decide, parsePolicy } = await import(pathToFileURL(`${dist}/worker/policy/index.js`).href);

function loadavg() {
  try {
    return readFileSync('/proc/loadavg', 'utf8').trim();
  } catch {
    return os
      .loadavg()
      .map((value) => value.toFixed(2))
      .join(' ');
  }
}

function request({
  remoteAddress = '203.0.113.9',
  gateway = 'gw-eu-1',
  uid = 1000,
  userName = 'alice',
  serverPort = 6667,
} = {}) {
  return {
    v: 1,
    id: 'bench',
    gateway,
    query: { serverPort, clientPort: 40000 },
    connection: { localAddress: '198.51.100.1', localPort: 113, remoteAddress, remotePort: 40000 },
    owner: { uid, userName },
  };
}

/** Rule i matches clients in 10.(i/256).(i%256).0/24. */
const clientNet = (i) => `10.${i >> 8}.${i & 255}.0/24`;
const clientIn = (i) => `10.${i >> 8}.${i & 255}.9`;
const action = (i) => (i % 2 === 0 ? { reveal: 'name' } : { error: 'HIDDEN-USER' });

function policyOf(rules) {
  return { version: 1, rules, default: { action: { error: 'NO-USER' } } };
}

/** 1,000 rules with one clientAddress CIDR each. */
function addressRules(count = RULES) {
  return Array.from({ length: count }, (_, i) => ({
    name: `rule-${i}`,
    match: { clientAddress: clientNet(i) },
    action: action(i),
  }));
}

/** 1,000 rules with address, port, uid and owner-name glob conditions (some with a server address too). */
function mixedRules() {
  return Array.from({ length: RULES }, (_, i) => {
    const match = {
      clientAddress: clientNet(i),
      serverPort: i % 2 === 0 ? '6660-6669' : [6667, 6697, '7000-7005'],
      ownerUid: i % 5 === 0 ? ['1000-59999', 0] : '500-59999',
      ownerName: i % 3 === 1 ? `a${i}*` : i % 3 === 2 ? ['bob', '?lic*'] : '*e',
    };
    if (i % 4 === 0) match.serverAddress = ['198.51.100.0/24', '2001:db8::/32'];
    return { name: `rule-${i}`, match, action: action(i) };
  });
}

/** 1,000 rules with distinct gateway globs; only the last matches gateway gw-eu-1. */
function globRules() {
  return Array.from({ length: RULES }, (_, i) => ({
    name: `rule-${i}`,
    match: { gateway: i === RULES - 1 ? 'gw-eu-?' : i % 2 === 0 ? `gw-${i}-*` : `*.site-${i}` },
    action: action(i),
  }));
}

function calibrate() {
  // A trivial integer loop: its rate says how fast this machine is right now.
  let best = 0;
  for (let round = 0; round < 3; round++) {
    const start = performance.now();
    let sum = 0;
    for (let i = 0; i < 50_000_000; i++) sum = (sum + i) | 0;
    const elapsed = performance.now() - start;
    best = Math.max(best, (50_000_000 / elapsed) * 1000);
    if (sum === 42) console.log('!');
  }
  return best;
}

const results = [];

function measure(label, compiled, requests, { info = false, expect } = {}) {
  const decision = decide(compiled, requests[0]);
  if (expect !== undefined && decision.rule !== expect)
    throw new Error(`${label}: expected rule ${expect}, got ${decision.rule}`);
  const rates = [];
  let sink = 0;
  const mask = requests.length - 1; // a power of two
  for (let round = -1; round < ROUNDS; round++) {
    let decisions = 0;
    const start = performance.now();
    let elapsed = 0;
    while (elapsed < ROUND_MS) {
      for (let i = 0; i < 1000; i++) sink += decide(compiled, requests[(decisions + i) & mask]).rule.length;
      decisions += 1000;
      elapsed = performance.now() - start;
    }
    if (round >= 0) rates.push((decisions / elapsed) * 1000);
  }
  rates.sort((a, b) => a - b);
  const best = Math.round(rates[rates.length - 1]);
  const median = Math.round(rates[rates.length >> 1]);
  const verdict = info ? 'info' : median >= TARGET ? 'PASS' : 'MISS';
  const fmt = (n) => n.toLocaleString('en-US').padStart(11);
  console.log(
    `${label.padEnd(58)} ${fmt(median)} ${fmt(best)}  ${verdict.padEnd(4)}  rule ${decision.rule}${sink < 0 ? '!' : ''}`,
  );
  results.push({ label, median, best, verdict });
}

function time(fn) {
  const start = performance.now();
  const value = fn();
  return [value, performance.now() - start];
}

console.log(
  `node ${process.version}, ${os.cpus().length} CPUs, ${RULES} rules, ${ROUNDS} rounds of ${ROUND_MS} ms per case, target ${TARGET.toLocaleString('en-US')} decisions/s (median)`,
);
console.log(`loadavg before: ${loadavg()}`);
console.log(`calibration: ${Math.round(calibrate() / 1e6)} M integer additions/s (best of 3)`);
console.log(`${'case'.padEnd(58)} ${'median/s'.padStart(11)} ${'best/s'.padStart(11)}  verdict`);

const addresses = compilePolicy(parsePolicy(policyOf(addressRules())));
const mixed = compilePolicy(parsePolicy(policyOf(mixedRules())));
const globs = compilePolicy(parsePolicy(policyOf(globRules())));
const last = RULES - 1;

measure('first rule matches (1,000 mixed rules)', mixed, [request({ remoteAddress: clientIn(0) })], {
  expect: 'rule-0',
});
measure('last of 1,000 address rules', addresses, [request({ remoteAddress: clientIn(last) })], {
  expect: `rule-${last}`,
});
measure(
  'last of 1,000 mixed rules (address+port+uid+name glob)',
  mixed,
  [request({ remoteAddress: clientIn(last), userName: 'alice' })],
  { expect: `rule-${last}` },
);
measure('1,000 distinct gateway globs, last matches', globs, [request({ gateway: 'gw-eu-1' })], {
  expect: `rule-${last}`,
});
measure('none of 1,000 address rules matches (default)', addresses, [request()], { expect: 'default' });
measure('none of 1,000 mixed rules matches (default)', mixed, [request({ userName: 'alice' })], { expect: 'default' });
measure('none of 1,000 gateway globs matches (default)', globs, [request({ gateway: 'bastion' })], {
  expect: 'default',
});
measure(
  'none of 1,000 mixed (IPv6 client), 64 users+gateways cycled',
  mixed,
  Array.from({ length: 64 }, (_, i) =>
    request({ remoteAddress: `2001:db8::${i + 1}`, userName: `user-${i}e`, gateway: `gw-${i}` }),
  ),
  { info: true },
);
const fresh = Array.from({ length: 1 << 16 }, (_, i) =>
  request({ remoteAddress: clientIn(last), userName: `new-user-${i}e` }),
);
measure('last of 1,000 mixed, a new owner name each time (cache miss)', mixed, fresh, { info: true });
const pseudonyms = compilePolicy(
  parsePolicy({
    version: 1,
    key: 'bench-key-0123456789',
    rules: [{ name: 'all', action: { pseudonym: {} } }],
    default: { action: { error: 'NO-USER' } },
  }),
);
measure('pseudonym answer (one HMAC-SHA256 per decision)', pseudonyms, [request({ remoteAddress: '192.0.2.1' })], {
  info: true,
});

for (const count of [1_000, 10_000]) {
  const [parsed, parseMs] = time(() => parsePolicy(policyOf(addressRules(count))));
  const [, compileMs] = time(() => compilePolicy(parsed));
  console.log(
    `compile ${count.toLocaleString('en-US')} address rules: ${compileMs.toFixed(0)} ms (parsePolicy ${parseMs.toFixed(0)} ms)`,
  );
}
const [, mixedCompileMs] = time(() => compilePolicy(parsePolicy(policyOf(mixedRules()))));
console.log(`parse + compile 1,000 mixed rules: ${mixedCompileMs.toFixed(0)} ms`);
console.log(`loadavg after: ${loadavg()}`);
const missed = results.filter((result) => result.verdict === 'MISS');
console.log(missed.length === 0 ? 'all target cases PASS' : `MISS: ${missed.map((result) => result.label).join('; ')}`);
