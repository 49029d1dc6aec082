/**
 * How the sock_diag lookup talks to its helper: lookups asked in the same
 * turn go out in one write, identical lookups in flight share one request,
 * and one stall timer (not one per lookup) bounds them all — for the helper
 * and for the time bound of createOwnerLookup (shown with a /proc/net/tcp
 * that never answers, a FIFO).
 */
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, closeSync, constants, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connectionEnds,
  createOwnerLookup,
  type OwnerLookupError,
  SockDiagOwnerLookup,
} from '../../../gateway/owner/index.js';

const BUILD_SCRIPT = fileURLToPath(new URL('../../../gateway/owner/build-helper.mjs', import.meta.url));
const me = { uid: process.getuid?.() ?? -1, userName: userInfo().username };

let workDir = '';
let helperPath = '';
let silentHelperPath = '';
let server: net.Server;
let port = 0;
const clients: net.Socket[] = [];

beforeAll(async () => {
  workDir = mkdtempSync(join(tmpdir(), 'identgate-owner-ipc-'));
  helperPath = join(workDir, 'identgate-sockdiag');
  execFileSync(process.execPath, [BUILD_SCRIPT, '--out', helperPath], { stdio: 'ignore' });
  silentHelperPath = join(workDir, 'silent');
  writeFileSync(silentHelperPath, '#!/bin/sh\necho "ready 1"\nexec sleep 30\n');
  chmodSync(silentHelperPath, 0o755);
  server = net.createServer((socket) => socket.on('error', () => {}));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as net.AddressInfo).port;
  for (let i = 0; i < 5; i++) {
    const client = net.connect(port, '127.0.0.1');
    await once(client, 'connect');
    clients.push(client);
  }
});

afterAll(async () => {
  for (const client of clients) client.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(workDir, { recursive: true, force: true });
});

function endsOf(client: net.Socket) {
  return connectionEnds({
    localAddress: '127.0.0.1',
    localPort: client.localPort!,
    remoteAddress: '127.0.0.1',
    remotePort: port,
  })!;
}

describe('sock_diag helper IPC', () => {
  it('sends lookups asked in the same turn to the helper in one write', async () => {
    const diag = new SockDiagOwnerLookup({ helperPath });
    try {
      expect(await diag.find(endsOf(clients[0]!))).toEqual(me); // the helper is running from here on
      const writesBefore = diag.writes;
      const owners = await Promise.all(clients.map((client) => diag.find(endsOf(client))));
      expect(owners).toEqual(clients.map(() => me));
      expect(diag.writes - writesBefore).toBe(1);
      expect(diag.requests).toBe(1 + clients.length);
    } finally {
      await diag.close();
    }
  });

  it('shares one helper request among identical lookups in flight', async () => {
    const diag = new SockDiagOwnerLookup({ helperPath });
    try {
      const ends = endsOf(clients[0]!);
      const owners = await Promise.all([diag.find(ends), diag.find(ends), diag.find(ends)]);
      expect(owners).toEqual([me, me, me]);
      expect(diag.requests).toBe(1);
    } finally {
      await diag.close();
    }
  });

  it('asks the helper again for a lookup identical to one already answered', async () => {
    const diag = new SockDiagOwnerLookup({ helperPath });
    try {
      const ends = endsOf(clients[0]!);
      expect(await diag.find(ends)).toEqual(me);
      expect(await diag.find(ends)).toEqual(me);
      expect(diag.requests).toBe(2);
    } finally {
      await diag.close();
    }
  });

  it('rejects every waiting lookup and drops the helper when the oldest request stalls', async () => {
    const diag = new SockDiagOwnerLookup({ helperPath: silentHelperPath, stallMs: 100 });
    try {
      const started = performance.now();
      const outcomes = await Promise.allSettled(clients.slice(0, 3).map((client) => diag.find(endsOf(client))));
      expect(performance.now() - started).toBeLessThan(1000);
      expect(
        outcomes.map((outcome) => outcome.status === 'rejected' && (outcome.reason as OwnerLookupError).code),
      ).toEqual(['ERR_OWNER_LOOKUP_HELPER', 'ERR_OWNER_LOOKUP_HELPER', 'ERR_OWNER_LOOKUP_HELPER']);
      expect(diag.helperPid).toBeUndefined();
      expect(diag.starts).toBe(1);
    } finally {
      await diag.close();
    }
  });
});

describe('owner lookup time bound', () => {
  it('answers each stalled lookup null at its own deadline, not at the first one', async () => {
    // A /proc/net/tcp that is a FIFO with no writer: the scan blocks in open() until the FIFO is opened for writing.
    const procNetDir = join(workDir, 'stalled-proc-net');
    mkdirSync(procNetDir);
    execFileSync('mkfifo', [join(procNetDir, 'tcp')]);
    writeFileSync(join(procNetDir, 'tcp6'), '');
    const errors: OwnerLookupError[] = [];
    const owners = createOwnerLookup('on', {
      method: 'procfs',
      procNetDir,
      timeoutMs: 150,
      onError: (e) => errors.push(e),
    });
    try {
      const query = (client: net.Socket) => ({
        localAddress: '127.0.0.1',
        localPort: client.localPort!,
        remoteAddress: '127.0.0.1',
        remotePort: port,
      });
      const firstStarted = performance.now();
      const first = owners
        .lookup(query(clients[0]!))
        .then((owner) => ({ owner, ms: performance.now() - firstStarted }));
      await new Promise((resolve) => setTimeout(resolve, 75)); // the point of this test is a later second lookup
      const secondStarted = performance.now();
      const second = owners
        .lookup(query(clients[1]!))
        .then((owner) => ({ owner, ms: performance.now() - secondStarted }));
      const [a, b] = await Promise.all([first, second]);
      expect([a.owner, b.owner]).toEqual([null, null]);
      expect(a.ms).toBeGreaterThanOrEqual(140);
      expect(b.ms).toBeGreaterThanOrEqual(140);
      expect(b.ms).toBeLessThan(1000);
      expect(errors.map((e) => e.code)).toEqual(['ERR_OWNER_LOOKUP_TIMEOUT', 'ERR_OWNER_LOOKUP_TIMEOUT']);
    } finally {
      // A writer that closes at once gives the blocked scan its EOF, so no thread stays stuck.
      closeSync(openSync(join(procNetDir, 'tcp'), constants.O_WRONLY | constants.O_NONBLOCK));
      await owners.close();
    }
  });
});
