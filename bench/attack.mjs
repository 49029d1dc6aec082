#!/usr/bin/env node
/**
 * A bounded, loopback-only attacker for an ident server, used by the hostile
 * suite (test/hostile/) and by hand: `flood` pipelines queries as fast as the
 * server answers on every connection (reconnecting when the server closes one),
 * `slowloris` dribbles one octet per interval and never finishes a line, `idle`
 * opens connections and sends nothing, `lf` sends 64 KB packets of bare LFs,
 * `stall` sends --lines queries, half-closes and never reads a reply.
 * Connections are spread over a range of 127.0.0.x source addresses. It stops
 * after --seconds (or on SIGTERM) and prints one JSON object with its counts;
 * it prints "engaged" once every connection is up (flood: answered once).
 *
 * @example
 *   node bench/attack.mjs --port 1113 --mode flood --from 127.0.0.2 --addresses 1 --connections 32 --seconds 5
 *   node bench/attack.mjs --port 1113 --mode slowloris --from 127.0.0.2 --addresses 20 --connections 500 --seconds 10
 */
import net from 'node:net';
import { parseArgs } from 'node:util';

const USAGE = `node bench/attack.mjs --port PORT [options]
  --host ADDR          target (default 127.0.0.1; loopback only)
  --mode MODE          flood | slowloris | idle | lf | stall (default flood)
  --from 127.0.0.X     first source address (default 127.0.0.2)
  --addresses N        spread connections over N consecutive source addresses (default 1)
  --connections N      connections to hold (default 32)
  --batch N            flood: queries per pipelined batch (default 64)
  --interval MS        slowloris: ms between octets (default 100)
  --lines N            stall: queries sent before the half-close (default 60000)
  --no-reconnect       leave a connection the server closed closed (default: open another)
  --seconds S          stop after S seconds (default 5)
`;

/** The source address for connection `i`, counting up from `from`. */
function sourceAddress(from, addresses, i) {
  const parts = from.split('.').map(Number);
  const last = parts[3] + (i % addresses);
  if (parts[0] !== 127 || last > 254)
    throw new Error(`source addresses must stay inside 127.0.0.0/8, got ${from} + ${addresses}`);
  return `${parts[0]}.${parts[1]}.${parts[2]}.${last}`;
}

function main() {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string' },
      mode: { type: 'string', default: 'flood' },
      from: { type: 'string', default: '127.0.0.2' },
      addresses: { type: 'string', default: '1' },
      connections: { type: 'string', default: '32' },
      batch: { type: 'string', default: '64' },
      interval: { type: 'string', default: '100' },
      lines: { type: 'string', default: '60000' },
      'no-reconnect': { type: 'boolean', default: false },
      seconds: { type: 'string', default: '5' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || !values.port) {
    process.stdout.write(USAGE);
    process.exit(values.help ? 0 : 2);
  }
  if (!/^(127\.|::1$)/.test(values.host)) {
    process.stderr.write('attack.mjs: loopback targets only\n');
    process.exit(2);
  }
  const port = Number(values.port);
  const mode = values.mode;
  const addresses = Number(values.addresses);
  const connections = Number(values.connections);
  const batch = Number(values.batch);
  const interval = Number(values.interval);
  const stats = { mode, connects: 0, closedByServer: 0, queriesSent: 0, repliesReceived: 0, octetsSent: 0 };
  const sockets = new Set();
  let stopping = false;
  // "engaged" is printed once every connection is connected (flood: has its first reply).
  let engaged = 0;
  const engage = (socket) => {
    if (socket.engaged) return;
    socket.engaged = true;
    if (++engaged === connections) process.stdout.write('engaged\n');
  };
  const query = Buffer.from('1, 2\r\n'.repeat(batch));
  const lfPacket = Buffer.alloc(65_536, 0x0a);
  const stallQueries = Buffer.from('65535,65535\r\n'.repeat(Number(values.lines)));

  const open = (i) => {
    if (stopping) return;
    const socket = net.connect({ host: values.host, port, localAddress: sourceAddress(values.from, addresses, i) });
    sockets.add(socket);
    socket.setNoDelay(true);
    socket.on('error', () => {});
    let owed = 0;
    socket.on('connect', () => {
      stats.connects++;
      if (mode !== 'flood') engage(socket);
      if (mode === 'flood') {
        owed = batch;
        stats.queriesSent += batch;
        socket.write(query);
      } else if (mode === 'lf') {
        stats.octetsSent += lfPacket.length;
        socket.write(lfPacket);
      } else if (mode === 'stall') {
        // Never read: the replies fill the kernel's buffers, then the server's write queue.
        socket.pause();
        stats.queriesSent += Number(values.lines);
        stats.octetsSent += stallQueries.length;
        socket.end(stallQueries);
      }
    });
    socket.on('data', (chunk) => {
      for (const octet of chunk) if (octet === 0x0a) (stats.repliesReceived++, owed--);
      engage(socket);
      if (mode === 'flood' && owed <= 0 && !stopping) {
        owed = batch;
        stats.queriesSent += batch;
        socket.write(query);
      }
    });
    socket.on('close', () => {
      sockets.delete(socket);
      if (stopping) return;
      stats.closedByServer++;
      // Keep the pressure on: a closed connection is replaced at once.
      if (!values['no-reconnect']) setImmediate(() => open(i));
    });
  };

  for (let i = 0; i < connections; i++) open(i);
  const dribble =
    mode === 'slowloris'
      ? setInterval(() => {
          for (const socket of sockets) {
            if (socket.readyState !== 'open') continue;
            socket.write('1');
            stats.octetsSent++;
          }
        }, interval)
      : undefined;

  const stop = () => {
    if (stopping) return;
    stopping = true;
    clearInterval(dribble);
    for (const socket of sockets) socket.destroy();
    process.stdout.write(`${JSON.stringify(stats)}\n`);
    process.exit(0);
  };
  setTimeout(stop, Number(values.seconds) * 1000);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdout.write(`attacking ${values.host}:${port} mode=${mode} connections=${connections}\n`);
}

main();
