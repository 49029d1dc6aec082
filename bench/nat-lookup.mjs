/**
 * The NAT lookup's cost (issue 16): in a network namespace made for the run,
 * fills the conntrack table with N (20000) masquerade entries
 * (bench/conntrack-fill.c), then times, interleaved, one query's fact
 * gathering on three paths, as the pipeline does it:
 *   local hit  the owner lookup finds a local socket (sock_diag addon), no NAT lookup;
 *   NAT hit    the owner lookup misses, conntrack (ctnetlink) names the inner host;
 *   NAT miss   both miss (the tuple is in neither table).
 * Prints p50/p99/max per path and checks the targets: a NAT miss under 1 ms
 * p99, a NAT hit within a local hit + 50 us (p50 and p99). Needs root (the
 * namespace, ctnetlink) and the compiled gateway with its addon (npm run build).
 *
 * @example
 *   npm run build && node bench/nat-lookup.mjs
 *   node bench/nat-lookup.mjs --entries 100000 --samples 50000
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { once } from 'node:events';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({
  options: {
    entries: { type: 'string', default: '20000' },
    samples: { type: 'string', default: '20000' },
    inside: { type: 'boolean', default: false },
  },
});
const ENTRIES = Number(values.entries);
const SAMPLES = Number(values.samples);
for (const [name, value] of [
  ['--entries', ENTRIES],
  ['--samples', SAMPLES],
]) {
  if (!Number.isInteger(value) || value < 1 || value > 1_000_000) {
    console.error(`${name} ${value}: expected a whole number 1..1000000`);
    process.exit(2);
  }
}

if (!values.inside) {
  if (process.getuid?.() !== 0) {
    console.error('bench/nat-lookup.mjs needs root (a network namespace of its own and ctnetlink)');
    process.exit(2);
  }
  const namespace = `igbench-${process.pid}`;
  const work = mkdtempSync(join(tmpdir(), 'identgate-nat-bench-'));
  try {
    const filler = join(work, 'conntrack-fill');
    execFileSync('cc', ['-O2', '-o', filler, join(ROOT, 'bench', 'conntrack-fill.c')], { stdio: 'inherit' });
    execFileSync('ip', ['netns', 'add', namespace]);
    execFileSync('ip', ['-n', namespace, 'link', 'set', 'lo', 'up']);
    const filled = execFileSync('ip', ['netns', 'exec', namespace, filler, String(ENTRIES)], { encoding: 'utf8' });
    console.log(`conntrack entries in the bench namespace: ${filled.trim()}`);
    const inside = spawnSync(
      'ip',
      [
        'netns',
        'exec',
        namespace,
        process.execPath,
        fileURLToPath(import.meta.url),
        '--inside',
        ...process.argv.slice(2),
      ],
      { stdio: 'inherit' },
    );
    process.exitCode = inside.status ?? 1;
  } finally {
    spawnSync('ip', ['netns', 'del', namespace]);
    rmSync(work, { recursive: true, force: true });
  }
} else {
  await measure();
}

async function measure() {
  const { createOwnerLookup } = await import(pathToFileURL(join(ROOT, 'dist/gateway/owner/index.js')).href);
  const { createNatSource } = await import(pathToFileURL(join(ROOT, 'dist/gateway/nat/conntrack.js')).href);
  const owners = createOwnerLookup('on', { method: 'sock_diag' });
  const nat = createNatSource({ mode: 'on' });
  await owners.start();
  await nat.start();
  if (nat.method !== 'ctnetlink') throw new Error(`NAT lookup uses ${nat.method}, not ctnetlink`);

  // One live loopback connection for the local hit.
  const server = net.createServer(() => {});
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = net.connect(server.address().port, '127.0.0.1');
  await once(client, 'connect');
  const local = {
    localAddress: '127.0.0.1',
    localPort: client.localPort,
    remoteAddress: '127.0.0.1',
    remotePort: server.address().port,
  };
  // The user name is asked of NSS once, then remembered: lookupNow answers at once from then on.
  await owners.lookup(local);
  if (!owners.lookupNow(local)) throw new Error('the local connection was not found');

  const natQuery = (i) => ({
    localAddress: '198.51.100.1',
    localPort: 1024 + ((i % ENTRIES) % 60000),
    remoteAddress: '198.51.100.2',
    remotePort: 6667,
  });
  const missQuery = (i) => ({
    localAddress: '198.51.100.1',
    localPort: 62000 + (i % 3000),
    remoteAddress: '198.51.100.2',
    remotePort: 6667,
  });
  if (nat.find(natQuery(7)) === null) throw new Error('a filled entry was not found');
  if (nat.find(missQuery(7)) !== null) throw new Error('an unfilled tuple was found');

  /** One query's facts as the pipeline gathers them: the owner, then (on a miss) the NAT lookup. */
  const gather = (query) => {
    const owner = owners.lookupNow(query);
    return owner === null ? nat.find(query) : owner;
  };
  const paths = {
    'local hit': (i) => gather(local, i),
    'NAT hit': (i) => gather(natQuery(i)),
    'NAT miss': (i) => gather(missQuery(i)),
    'NAT miss (conntrack alone)': (i) => nat.find(missQuery(i)),
  };
  const times = Object.fromEntries(Object.keys(paths).map((name) => [name, new Float64Array(SAMPLES)]));
  for (let warm = 0; warm < 2000; warm++) for (const run of Object.values(paths)) run(warm);
  for (let i = 0; i < SAMPLES; i++) {
    for (const [name, run] of Object.entries(paths)) {
      const start = performance.now();
      run(i);
      times[name][i] = (performance.now() - start) * 1000;
    }
  }
  client.destroy();
  server.close();
  await owners.close();
  await nat.close();

  const stats = (samples) => {
    const sorted = Float64Array.from(samples).sort();
    const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
    return { p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] };
  };
  const summary = Object.fromEntries(Object.entries(times).map(([name, samples]) => [name, stats(samples)]));
  console.log(
    `node ${process.version}, ${ENTRIES} conntrack entries, ${SAMPLES} samples per path, load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
  for (const [name, { p50, p99, max }] of Object.entries(summary))
    console.log(
      `  ${name.padEnd(28)} p50 ${p50.toFixed(1).padStart(7)} us  p99 ${p99.toFixed(1).padStart(7)} us  max ${max.toFixed(0).padStart(6)} us`,
    );
  const localHit = summary['local hit'];
  const natHit = summary['NAT hit'];
  const natMiss = summary['NAT miss'];
  const checks = [
    [`NAT miss p99 ${natMiss.p99.toFixed(1)} us < 1000 us`, natMiss.p99 < 1000],
    [
      `NAT hit p50 ${natHit.p50.toFixed(1)} us <= local hit p50 ${localHit.p50.toFixed(1)} + 50 us`,
      natHit.p50 <= localHit.p50 + 50,
    ],
    [
      `NAT hit p99 ${natHit.p99.toFixed(1)} us <= local hit p99 ${localHit.p99.toFixed(1)} + 50 us`,
      natHit.p99 <= localHit.p99 + 50,
    ],
  ];
  for (const [text, ok] of checks) console.log(`${ok ? 'PASS' : 'MISS'} ${text}`);
  if (checks.some(([, ok]) => !ok)) process.exitCode = 1;
}
