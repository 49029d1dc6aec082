/**
 * IPv6 clients count per prefix (/64 by default): one host given a /64 cannot
 * hold more than one address's share by spreading its connections over the
 * prefix. The clients need many IPv6 source addresses, so the server and
 * clients run in a child process inside a network namespace created for the
 * test (unshare --net, as root), with documentation addresses on its own
 * loopback; nothing touches the host's interfaces.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { PER_ADDRESS_BURST_FACTOR } from '../../../gateway/server/server.js';
import { TRANSPORTS } from '../../helpers/server.js';

const BUILT_SERVER = new URL('../../../dist/gateway/server/server.js', import.meta.url).href;
const CLIENTS = PER_ADDRESS_BURST_FACTOR + 1;

/**
 * In the namespace: a server with a cap of one per address, CLIENTS idle
 * connections from CLIENTS addresses of 2001:db8:1:2::/64, then one query from
 * 2001:db8:1:3::10. Prints what was refused and what the other prefix got.
 */
const SCRIPT = `
import net from 'node:net';
const [url, transport, prefix6, clients] = process.argv.slice(1);
const { IdentServer } = await import(url);
const refused = [];
const server = new IdentServer({
  hostname: '2001:db8:1:2::1', port: 0, transport, maxConnectionsPerAddress: 1,
  perAddressPrefix6: Number(prefix6), onRefuse: (reason, address) => refused.push(reason + ' ' + address),
});
await server.start((tx) => tx.replyWithUser('x'));
const connect = (localAddress) => new Promise((resolve, reject) => {
  const socket = net.connect({ host: '2001:db8:1:2::1', port: server.port, localAddress });
  socket.once('connect', () => resolve(socket));
  socket.once('error', reject);
});
const sockets = [];
for (let i = 0; i < Number(clients); i++) {
  sockets.push(await connect('2001:db8:1:2::' + (0x10 + i).toString(16)));
  // In turn: each is accepted (or refused) before the next.
  while (server.connectionCount + refused.length < i + 1) await new Promise((r) => setImmediate(r));
}
const other = await connect('2001:db8:1:3::10');
other.write('400, 500\\r\\n');
const [reply] = await Promise.race([
  new Promise((resolve) => other.once('data', (chunk) => resolve([chunk.toString('latin1')]))),
  new Promise((resolve) => setTimeout(resolve, 5000, ['no reply']).unref()),
]);
for (const socket of [...sockets, other]) socket.destroy();
await server.stop({ graceMs: 100 });
console.log(JSON.stringify({ refused, reply }));
`;

function runInNamespace(transport: string, prefix6: number): Promise<{ refused: string[]; reply: string }> {
  const addresses = ['2001:db8:1:2::1', '2001:db8:1:3::10'];
  for (let i = 0; i < CLIENTS; i++) addresses.push(`2001:db8:1:2::${(0x10 + i).toString(16)}`);
  const setup = [
    'ip link set lo up',
    ...addresses.map((address) => `ip -6 addr add ${address}/128 dev lo nodad`),
    'exec "$0" --input-type=module -e "$1" "$2" "$3" "$4" "$5"',
  ].join(' && ');
  return promisify(execFile)(
    'unshare',
    ['--net', 'sh', '-c', setup, process.execPath, SCRIPT, BUILT_SERVER, transport, String(prefix6), String(CLIENTS)],
    { timeout: 20_000 },
  ).then(({ stdout }) => JSON.parse(stdout) as { refused: string[]; reply: string });
}

describe.each(TRANSPORTS)('IPv6 clients per prefix (%s transport)', (transport) => {
  it(`refuses the ${CLIENTS}th idle connection from one /64, spread over ${CLIENTS} addresses, while another /64 is answered`, async () => {
    const { refused, reply } = await runInNamespace(transport, 64);
    expect(refused).toEqual([`per_address 2001:db8:1:2::${(0x10 + CLIENTS - 1).toString(16)}`]);
    expect(reply).toBe('400, 500 : USERID : OTHER : x\r\n');
  });

  it('counts per address with --per-address-prefix6 128', async () => {
    const { refused, reply } = await runInNamespace(transport, 128);
    expect(refused).toEqual([]);
    expect(reply).toBe('400, 500 : USERID : OTHER : x\r\n');
  });
});
