/**
 * Runs inside the NAT rig's router namespace (test/interop/nat-rig.ts): asks
 * the gateway's NAT lookup (gateway/nat/conntrack.js of the transpiled tree
 * `compiledRoot`) about each query given as JSON and prints one JSON line:
 * { method, answers }, answers in the order asked.
 *
 * Usage: node nat-lookup.mjs <compiledRoot> <mode auto|on> <addon|procfs> '<[{localAddress,localPort,remoteAddress,remotePort}, ...]>'
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [compiledRoot, mode, way, queriesJson] = process.argv.slice(2);
const { createNatSource } = await import(pathToFileURL(join(compiledRoot, 'gateway/nat/conntrack.js')).href);
const errors = [];
const nat = createNatSource({
  mode,
  ...(way === 'procfs' && { addonPath: null }),
  onError: (error) => errors.push(error.message),
});
await nat.start();
const answers = [];
for (const query of JSON.parse(queriesJson)) answers.push(await nat.find(query));
await nat.close();
process.stdout.write(`${JSON.stringify({ method: nat.method, answers, errors })}\n`);
