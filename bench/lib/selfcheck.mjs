/**
 * Proof that the load generator's error counting can fail: fake ident servers
 * (node:net, writing literal bytes) that answer correctly, answer garbage,
 * echo the wrong ports, end lines with a bare LF, hang up without answering,
 * never answer, or close after one answer — and the loadgen result each must
 * produce. bench/run.mjs runs it before measuring anything (about 3 s); a
 * failing check stops the bench, since its numbers could not be trusted.
 *
 * Run alone: `node bench/lib/selfcheck.mjs` (after bench/out/loadgen is built).
 *
 * @example
 *   const failures = await selfCheck('bench/out/loadgen');
 *   if (failures.length) throw new Error(failures.join('\n'));
 */
import net from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runLoadgen } from './loadgen.mjs';
import { freePort } from './proc.mjs';

const QUERY = '40000, 6667';

/** Each case: how the fake server treats a request line, and what the loadgen result must show. */
const CASES = [
  {
    name: 'a well-formed reply counts as completed',
    reply: () => '40000 , 6667 : USERID : UNIX : alice\r\n',
    expect: (r) => r.completed > 0 && r.errors.total === 0 && r.replies.USERID === r.completed,
  },
  {
    name: 'an ERROR reply counts as completed',
    reply: () => '40000,6667:ERROR:NO-USER\r\n',
    expect: (r) => r.completed > 0 && r.errors.total === 0 && r.replies.ERROR === r.completed,
  },
  {
    name: 'a line that is no reply is malformed',
    reply: () => 'hello there\r\n',
    expect: (r) => r.completed === 0 && r.errors.malformed > 0,
  },
  {
    name: 'a USERID reply without a user id is malformed',
    reply: () => '40000 , 6667 : USERID : UNIX :\r\n',
    expect: (r) => r.completed === 0 && r.errors.malformed > 0,
  },
  {
    name: 'a reply ending in a bare LF is malformed',
    reply: () => '40000 , 6667 : USERID : UNIX : alice\n',
    expect: (r) => r.completed === 0 && r.errors.malformed > 0,
  },
  {
    name: 'a reply with other ports is counted as wrong ports',
    reply: () => '40001 , 6667 : USERID : UNIX : alice\r\n',
    expect: (r) => r.completed === 0 && r.errors.wrong_ports > 0,
  },
  {
    name: 'a hang-up before the first reply is closed early',
    reply: (socket) => socket.destroy(),
    expect: (r) => r.completed === 0 && r.errors.closed_early > 0,
  },
  {
    name: 'a query never answered times out',
    reply: () => undefined,
    extra: { timeoutMs: 200, durationS: 0.6 },
    expect: (r) => r.completed === 0 && r.errors.timeout > 0,
  },
  {
    name: 'a close after one answer is a legal server close, not an error',
    reply: (socket) => socket.end('40000 , 6667 : USERID : UNIX : alice\r\n'),
    extra: { perConn: 100 },
    expect: (r) => r.completed > 0 && r.errors.total === 0 && r.server_closed > 0,
  },
];

async function fakeServer(reply) {
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    let pending = '';
    socket.on('data', (chunk) => {
      pending += chunk.toString('latin1');
      let nl;
      while ((nl = pending.indexOf('\n')) !== -1) {
        pending = pending.slice(nl + 1);
        const line = reply(socket);
        if (typeof line === 'string' && !socket.destroyed) socket.write(line);
      }
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

/**
 * Run every case; returns the failures as lines (empty when all pass).
 *
 * @example
 *   console.log(await selfCheck('bench/out/loadgen'));
 */
export async function selfCheck(loadgen) {
  const failures = [];
  for (const c of CASES) {
    const server = await fakeServer(c.reply);
    try {
      const r = await runLoadgen(loadgen, {
        port: server.address().port,
        query: QUERY,
        conns: 2,
        durationS: 0.3,
        perConn: 1,
        ...c.extra,
      });
      if (!c.expect(r))
        failures.push(
          `${c.name}: got ${JSON.stringify({ completed: r.completed, replies: r.replies, errors: r.errors, server_closed: r.server_closed })}`,
        );
    } catch (error) {
      failures.push(`${c.name}: ${error.message}`);
    } finally {
      server.close();
    }
  }
  // Nobody listening: every attempt is a connect error.
  const port = await freePort();
  const r = await runLoadgen(loadgen, { port, query: QUERY, conns: 2, durationS: 0.2 }).catch((error) => ({
    failed: error.message,
  }));
  if (r.failed || r.completed !== 0 || r.errors.connect === 0)
    failures.push(`a refused connect counts as a connect error: got ${JSON.stringify(r.failed ?? r.errors)}`);
  return failures;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const loadgen = join(dirname(fileURLToPath(import.meta.url)), '..', 'out', 'loadgen');
  const failures = await selfCheck(loadgen);
  for (const line of failures) console.log(`FAIL ${line}`);
  console.log(`${CASES.length + 1 - failures.length}/${CASES.length + 1} loadgen self-checks passed`);
  process.exit(failures.length ? 1 : 0);
}
