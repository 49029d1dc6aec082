/**
 * libident (Debian libident-dev, the C client library) against identgate's
 * IdentServer. libident only talks to port 113, so the C peer
 * (peers/ident-query.c, compiled here) and the server run together in a
 * network namespace of their own. The server's handler answers with a name
 * made of the ports it was asked about (or ERROR HIDDEN-USER for one client
 * port), so the tests prove that libident sent the ports it was given, in the
 * RFC's order, and parsed the reply back into the same ports.
 */
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtRoot, compileC } from './compile.js';
import { NETNS_TOOLS, requireTools, runClientAgainstIdentServer } from './netns.js';

const HIDDEN_CLIENT_PORT = 500;

let compiledRoot: string;
let identQuery: string;

beforeAll(async () => {
  await requireTools([
    ...NETNS_TOOLS,
    { command: 'cc', debianPackage: 'gcc' },
    { command: 'cc', file: '/usr/include/ident.h', debianPackage: 'libident-dev' },
  ]);
  compiledRoot = await builtRoot();
  identQuery = await compileC('ident-query', ['ident']);
});

afterAll(async () => {
  if (identQuery) await rm(dirname(identQuery), { recursive: true, force: true });
});

function fieldsOf(stdout: string, kind: string): string[] | undefined {
  for (const line of stdout.trim().split('\n')) {
    const [first, ...fields] = line.split('\t');
    if (first === kind) return fields;
  }
  return undefined;
}

describe('libident querying IdentServer on port 113', () => {
  it('sends the given port pair and parses the USERID reply', async () => {
    const result = await runClientAgainstIdentServer(compiledRoot, HIDDEN_CLIENT_PORT, identQuery, [
      'query',
      '127.0.0.1',
      '6193',
      '23',
    ]);
    expect(result.queries).toEqual([{ serverPort: 6193, clientPort: 23, remoteAddress: '127.0.0.1' }]);
    expect(result.stdout).toBe('USERID\t6193\t23\tUNIX\t(null)\tu6193c23\n');
    expect(result.code).toBe(0);
    // libident resets the connection when it closes it; the server treats a
    // reset as ordinary client behaviour, so nothing at all is reported.
    expect(result.serverErrors).toEqual([]);
  });

  it("parses the ERROR reply into libident's server-error result", async () => {
    const result = await runClientAgainstIdentServer(compiledRoot, HIDDEN_CLIENT_PORT, identQuery, [
      'query',
      '127.0.0.1',
      '400',
      String(HIDDEN_CLIENT_PORT),
    ]);
    expect(result.queries).toEqual([{ serverPort: 400, clientPort: HIDDEN_CLIENT_PORT, remoteAddress: '127.0.0.1' }]);
    expect(result.stdout).toBe(`ERROR\t400\t${HIDDEN_CLIENT_PORT}\tHIDDEN-USER\n`);
    expect(result.code).toBe(0);
  });

  it('looks up a real connection with ident_lookup and gets the user for its ports', async () => {
    const result = await runClientAgainstIdentServer(compiledRoot, HIDDEN_CLIENT_PORT, identQuery, [
      'lookup',
      '127.0.0.1',
    ]);
    expect(result.code).toBe(0);
    const [serverPort, clientPort] = (fieldsOf(result.stdout, 'CONN') ?? []).map(Number);
    expect(serverPort).toBeGreaterThan(0);
    expect(clientPort).toBeGreaterThan(0);
    expect(result.queries).toEqual([{ serverPort, clientPort, remoteAddress: '127.0.0.1' }]);
    expect(fieldsOf(result.stdout, 'USERID')).toEqual([
      String(serverPort),
      String(clientPort),
      'UNIX',
      '(null)',
      `u${serverPort}c${clientPort}`,
    ]);
  });
});
