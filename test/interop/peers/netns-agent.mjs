/**
 * A small remote-controlled TCP peer, run inside one network namespace of the
 * NAT rig (test/interop/nat-rig.ts). It reads one JSON command per line on
 * stdin and writes one JSON answer per line on stdout, in order:
 *   {"op":"listen","host":"::","port":6667}       -> {"port":6667}; keeps accepted sockets open
 *   {"op":"silent","host":"::","port":113}        -> {"port":113}; accepts and never answers (a hung identd)
 *   {"op":"connect","host":"198.51.100.2","port":6667,"localPort"?:N}
 *                                                  -> {"localAddress","localPort"}; keeps it open
 *   {"op":"peers"}                                 -> {"peers":[{"localPort","remoteAddress","remotePort"}]}, accepted so far
 *   {"op":"ident","host":"198.51.100.1","port":113,"serverPort":N,"clientPort":N,"timeoutMs":3000,"localAddress"?:A}
 *                                                  -> {"reply":"<the line>","ms":N} or {"error":"...","ms":N}
 * Errors are answers too ({"error": message}); the agent ends when stdin ends.
 */
import { createInterface } from 'node:readline';
import { connect, createServer } from 'node:net';

const kept = [];
const accepted = [];

function listen(host, port, onSocket) {
  return new Promise((resolve) => {
    const server = createServer((socket) => {
      kept.push(socket);
      accepted.push({
        localPort: socket.localPort,
        remoteAddress: socket.remoteAddress,
        remotePort: socket.remotePort,
      });
      socket.on('error', () => {});
      onSocket?.(socket);
    });
    server.on('error', (error) => resolve({ error: error.message }));
    server.listen({ host, port }, () => resolve({ port: server.address().port }));
    kept.push(server);
  });
}

function open(host, port, localPort, localAddress) {
  return new Promise((resolve) => {
    const socket = connect({ host, port, localPort, localAddress });
    socket.on('error', (error) => resolve({ error: error.message }));
    socket.on('connect', () => {
      kept.push(socket);
      resolve({ localAddress: socket.localAddress, localPort: socket.localPort });
    });
  });
}

function ident(host, port, serverPort, clientPort, timeoutMs, localAddress) {
  const started = performance.now();
  return new Promise((resolve) => {
    const socket = connect({ host, port, localAddress });
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ error: `no reply within ${timeoutMs} ms`, ms: performance.now() - started });
    }, timeoutMs);
    socket.setEncoding('latin1');
    socket.on('connect', () => socket.write(`${serverPort} , ${clientPort}\r\n`));
    socket.on('data', (chunk) => {
      text += chunk;
      const end = text.indexOf('\r\n');
      if (end !== -1) {
        clearTimeout(timer);
        socket.destroy();
        resolve({ reply: text.slice(0, end), ms: performance.now() - started });
      }
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      resolve({ error: error.message, ms: performance.now() - started });
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ error: `closed: ${JSON.stringify(text)}`, ms: performance.now() - started });
    });
  });
}

const lines = createInterface({ input: process.stdin });
let queue = Promise.resolve();
lines.on('line', (line) => {
  queue = queue.then(async () => {
    let answer;
    try {
      const command = JSON.parse(line);
      if (command.op === 'listen') answer = await listen(command.host, command.port);
      else if (command.op === 'silent') answer = await listen(command.host, command.port, () => {});
      else if (command.op === 'connect')
        answer = await open(command.host, command.port, command.localPort, command.localAddress);
      else if (command.op === 'peers') answer = { peers: accepted };
      else if (command.op === 'ident')
        answer = await ident(
          command.host,
          command.port,
          command.serverPort,
          command.clientPort,
          command.timeoutMs,
          command.localAddress,
        );
      else answer = { error: `unknown op ${command.op}` };
    } catch (error) {
      answer = { error: String(error) };
    }
    process.stdout.write(`${JSON.stringify(answer)}\n`);
  });
});
lines.on('close', () => {
  for (const thing of kept) thing.destroy?.() ?? thing.close?.();
  process.exit(0);
});
