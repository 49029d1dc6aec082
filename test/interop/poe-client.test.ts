/**
 * POE::Component::Client::Ident (Debian libpoe-component-client-ident-perl)
 * against identgate's IdentServer on an ephemeral loopback port: the
 * component takes the ident port as `IdentPort`, so no namespace is needed.
 * The handler is the seed's example: `400, 500` is grimlock, everything else
 * is NO-USER. The Perl peer (peers/poe-ident.pl) prints what the component
 * delivered.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdentServer } from '../../gateway/server/server.js';
import { PEERS_DIR, requireTools, run } from './netns.js';

const POE_IDENT = join(PEERS_DIR, 'poe-ident.pl');

const queries: Array<{ serverPort: number; clientPort: number }> = [];
let server: IdentServer | undefined;

beforeAll(async () => {
  await requireTools([
    { command: 'perl', module: 'POE::Component::Client::Ident', debianPackage: 'libpoe-component-client-ident-perl' },
  ]);
  server = new IdentServer({ hostname: '127.0.0.1', port: 0 });
  await server.start((tx) => {
    queries.push({ serverPort: tx.req.serverPort, clientPort: tx.req.clientPort });
    if (tx.req.serverPort === 400 && tx.req.clientPort === 500) tx.replyWithUser('grimlock');
    else tx.replyWithError('NO-USER');
  });
});

afterAll(async () => {
  await server?.stop();
});

function poeQuery(serverPort: number, clientPort: number) {
  if (!server) throw new Error('the IdentServer did not start');
  return run('perl', [POE_IDENT, '127.0.0.1', String(server.port), String(serverPort), String(clientPort)], {
    timeoutMs: 20_000,
  });
}

describe('POE::Component::Client::Ident querying IdentServer', () => {
  it('delivers the USERID reply with opsys OTHER as ident_client_reply', async () => {
    queries.length = 0;
    const result = await poeQuery(400, 500);
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe('USERID\tOTHER\tgrimlock\n');
    expect(result.code).toBe(0);
    expect(queries).toEqual([{ serverPort: 400, clientPort: 500 }]);
  });

  it('delivers the ERROR reply as ident_client_error with its token', async () => {
    queries.length = 0;
    const result = await poeQuery(401, 500);
    expect(result.stdout).toBe('ERROR\tNO-USER\n');
    expect(result.code).toBe(0);
    expect(queries).toEqual([{ serverPort: 401, clientPort: 500 }]);
  });

  it('answers three POE clients querying at once, each with its own reply', async () => {
    queries.length = 0;
    const results = await Promise.all([poeQuery(400, 500), poeQuery(500, 400), poeQuery(400, 500)]);
    expect(results.map((result) => result.stdout)).toEqual([
      'USERID\tOTHER\tgrimlock\n',
      'ERROR\tNO-USER\n',
      'USERID\tOTHER\tgrimlock\n',
    ]);
    expect(queries).toHaveLength(3);
  });
});
