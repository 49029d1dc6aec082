/**
 * Net::Ident (Debian libnet-ident-perl) against identgate's IdentServer.
 * Net::Ident only asks port 113, so each test runs the server on
 * 127.0.0.1:113 and the Perl client (peers/net-ident.pl) together in a
 * network namespace of their own. The client looks up a real TCP connection,
 * and the server's handler answers with a name made of the ports it was asked
 * about, so the tests prove that the right ports travelled both ways.
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { builtRoot } from './compile.js';
import { NETNS_TOOLS, PEERS_DIR, requireTools, runClientAgainstIdentServer } from './netns.js';

const NET_IDENT = join(PEERS_DIR, 'net-ident.pl');
const LISTEN_PORT = 4000;
const HIDDEN_LISTEN_PORT = 4001;

let compiledRoot: string;

beforeAll(async () => {
  await requireTools([...NETNS_TOOLS, { command: 'perl', module: 'Net::Ident', debianPackage: 'libnet-ident-perl' }]);
  compiledRoot = await builtRoot();
});

function parseLines(stdout: string): Map<string, string[]> {
  return new Map(
    stdout
      .trim()
      .split('\n')
      .map((line) => {
        const [kind = '', ...fields] = line.split('\t');
        return [kind, fields];
      }),
  );
}

describe('Net::Ident querying IdentServer on port 113', () => {
  it('receives the USERID the handler derived from the connection it looked up', async () => {
    const result = await runClientAgainstIdentServer(compiledRoot, HIDDEN_LISTEN_PORT, 'perl', [
      NET_IDENT,
      '127.0.0.1',
      String(LISTEN_PORT),
    ]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const lines = parseLines(result.stdout);
    const [serverPort, clientPort] = (lines.get('CONN') ?? []).map(Number);
    expect(clientPort).toBe(LISTEN_PORT);
    expect(result.queries).toEqual([{ serverPort, clientPort: LISTEN_PORT, remoteAddress: '127.0.0.1' }]);
    expect(lines.get('USERID')).toEqual(['UNIX', `u${serverPort}c${LISTEN_PORT}`]);
    expect(result.serverErrors).toEqual([]);
  });

  it('receives the ERROR token the handler chose', async () => {
    const result = await runClientAgainstIdentServer(compiledRoot, HIDDEN_LISTEN_PORT, 'perl', [
      NET_IDENT,
      '127.0.0.1',
      String(HIDDEN_LISTEN_PORT),
    ]);
    expect(result.code).toBe(0);
    const lines = parseLines(result.stdout);
    const [serverPort] = (lines.get('CONN') ?? []).map(Number);
    expect(result.queries).toEqual([{ serverPort, clientPort: HIDDEN_LISTEN_PORT, remoteAddress: '127.0.0.1' }]);
    expect(lines.get('ERROR')).toEqual(['HIDDEN-USER']);
    expect(lines.has('USERID')).toBe(false);
  });
});
