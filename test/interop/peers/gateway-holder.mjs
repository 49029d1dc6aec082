/**
 * The process whose connection the gateway interop tests ask about: run as
 * the dedicated test user (through setpriv) by peers/gateway-scenario.mjs, it
 * connects to a listener on <host>:<port>, prints one JSON line
 * { clientPort, uid } once connected, and holds the connection until its
 * stdin closes (the driver's way to end it) or it is killed. Any failure is
 * one line on stderr and exit status 1.
 *
 * Usage: node gateway-holder.mjs <host> <port>
 *
 * @example
 * // setpriv --reuid 996 --regid 995 --clear-groups node gateway-holder.mjs 127.0.0.1 40000
 * // -> {"clientPort":51234,"uid":996}
 */
import { connect } from 'node:net';

const [host, portText] = process.argv.slice(2);
if (host === undefined || portText === undefined) {
  process.stderr.write('usage: node gateway-holder.mjs <host> <port>\n');
  process.exit(2);
}

const socket = connect({ host, port: Number(portText) }, () => {
  process.stdout.write(`${JSON.stringify({ clientPort: socket.localPort, uid: process.getuid() })}\n`);
});
socket.on('error', (error) => {
  process.stderr.write(`gateway-holder: ${error.message}\n`);
  process.exit(1);
});
// The peer closing first would end the connection the test asks about: say so.
socket.on('end', () => {
  process.stderr.write('gateway-holder: the listener closed the connection\n');
  process.exit(1);
});
process.stdin.on('end', () => {
  socket.destroy();
  process.exit(0);
});
process.stdin.resume();
