/**
 * The Node ceiling: the smallest node:net ident server that still answers
 * correctly — split lines, echo the two ports, fixed user id, no lookup, no
 * policy, no logging, one process. identgate embedded does strictly more work
 * per query than this, so "identgate / node-ceiling" says how much of Node's
 * budget identgate's own code spends. Connections stay open for more queries
 * until the client closes (RFC 1413 section 2).
 *
 * Run: `node bench/ceiling.mjs [PORT] [ADDRESS]` (PORT 0 = any free port).
 * Prints "listening on ADDRESS:PORT" once bound.
 *
 * @example
 *   node bench/ceiling.mjs 0 127.0.0.1
 */
import net from 'node:net';

const REQUEST = /^[ \t]*(\d{1,5})[ \t]*,[ \t]*(\d{1,5})[ \t]*\r?$/;

/**
 * Start the fixed-reply server.
 *
 * @example
 *   const server = await startCeiling({ port: 0, hostname: '127.0.0.1' });
 *   console.log(server.address().port);
 */
export function startCeiling({ port = 0, hostname = '127.0.0.1' } = {}) {
  const server = net.createServer({ noDelay: true }, (socket) => {
    let pending = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk) => {
      pending += chunk;
      let out = '';
      let nl;
      while ((nl = pending.indexOf('\n')) !== -1) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        const m = REQUEST.exec(line);
        out += m ? `${m[1]} , ${m[2]} : USERID : UNIX : bench\r\n` : '0 , 0 : ERROR : INVALID-PORT\r\n';
      }
      if (pending.length > 1000) socket.destroy();
      else if (out) socket.write(out);
    });
    socket.on('error', () => socket.destroy());
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host: hostname, backlog: 4096 }, () => resolve(server));
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const server = await startCeiling({
    port: Number(process.argv[2] ?? 0),
    hostname: process.argv[3] ?? '127.0.0.1',
  });
  const { address, port } = server.address();
  console.log(`listening on ${address}:${port}`);
}
