// Decisions per second of the policy engine (worker/policy), on the compiled JS.
// Run: npx tsc -p tsconfig.build.json && node bench/policy-eval.mjs [--dist <dir>]
// Cases: the first rule answers; the last of 1,000 rules answers; no rule of
// 1,000 matches (the default answers). Policies mix address, port, uid and
// gateway conditions so each rule costs what a real one costs.
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

const distFlag = process.argv.indexOf('--dist');
const dist = resolve(distFlag === -1 ? 'dist' : process.argv[distFlag + 1]);
const { compilePolicy, decide, parsePolicy } = await import(pathToFileURL(`${dist}/worker/policy/index.js`).href);

const RULES = 1000;
const TARGET_MS = 1000;

function request(remoteAddress, uid = 1000, gateway = 'gw-eu-1') {
  return {
    v: 1,
    id: 'bench',
    gateway,
    query: { serverPort: 6667, clientPort: 40000 },
    connection: { localAddress: '198.51.100.1', localPort: 113, remoteAddress, remotePort: 40000 },
    owner: { uid, userName: 'alice' },
  };
}

/** 1,000 rules: rule i matches clients in 10.(i/256).(i%256).0/24, in a mix of condition kinds. */
function bigPolicy(kind) {
  const rules = [];
  for (let i = 0; i < RULES; i++) {
    const match = { clientAddress: `10.${i >> 8}.${i & 255}.0/24` };
    if (kind === 'mixed') {
      match.serverPort = i % 2 === 0 ? '6660-6669' : [6667, 6697, '7000-7005'];
      match.ownerUid = '1000-59999';
      if (i % 3 === 0) match.serverAddress = ['198.51.100.0/24', '2001:db8::/32'];
    }
    if (kind === 'globs') match.gateway = `gw-${i}-*`;
    rules.push({ name: `rule-${i}`, match, action: i % 2 === 0 ? { reveal: 'name' } : { error: 'HIDDEN-USER' } });
  }
  if (kind === 'globs') rules[RULES - 1].match.gateway = 'gw-*';
  return parsePolicy({ version: 1, rules, default: { action: { error: 'NO-USER' } } });
}

function measure(label, compiled, req) {
  let decisions = 0;
  let sink = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < TARGET_MS) {
    for (let i = 0; i < 10_000; i++) sink += decide(compiled, req).rule.length;
    decisions += 10_000;
    elapsed = performance.now() - start;
  }
  const rate = Math.round((decisions / elapsed) * 1000);
  console.log(`${label.padEnd(48)} ${rate.toLocaleString('en-US').padStart(12)} decisions/s  (rule ${decide(compiled, req).rule}${sink < 0 ? '!' : ''})`);
  return rate;
}

console.log(`node ${process.version}, ${RULES} rules, ${TARGET_MS} ms per case`);
const last = `10.${(RULES - 1) >> 8}.${(RULES - 1) & 255}.9`;
for (const kind of ['addresses', 'mixed', 'globs']) {
  const compiled = compilePolicy(bigPolicy(kind));
  measure(`${kind}: first rule answers`, compiled, request('10.0.0.9'));
  measure(`${kind}: last of ${RULES} answers`, compiled, request(last));
  measure(`${kind}: default after ${RULES}`, compiled, request('203.0.113.9'));
}
const pseudonyms = compilePolicy(
  parsePolicy({ version: 1, key: 'bench-key-0123456789', rules: [{ name: 'all', action: { pseudonym: {} } }], default: { action: { error: 'NO-USER' } } }),
);
measure('pseudonym (HMAC-SHA256 per decision)', pseudonyms, request('192.0.2.1'));
