/**
 * The claims API end to end over a real Unix socket, with two uids: this test process (root) and a child process
 * running as `nobody` that holds its own TCP connections and speaks to the socket. Owner lookup is the real
 * sock_diag one; the ident side is a real IdentServer with the query pipeline and a resolver that records each
 * request and answers the claimed ident (or the claim's user, or the owner's name).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createClaimsApp } from '../../../gateway/claims/api.js';
import { createClaimsClient, ClaimsApiError } from '../../../gateway/claims/client.js';
import { loadPeerCredentials } from '../../../gateway/claims/peer.js';
import { ClaimRegistry } from '../../../gateway/claims/registry.js';
import { bindClaimsSocket, credentialsOf, type ClaimsEndpoint } from '../../../gateway/claims/socket.js';
import { claimsSource } from '../../../gateway/claims/source.js';
import { IdentClient } from '../../../gateway/client/client.js';
import { createOwnerLookup, type OwnerLookup } from '../../../gateway/owner/index.js';
import { createQueryPipeline } from '../../../gateway/pipeline.js';
import type { Resolver } from '../../../gateway/resolver/types.js';
import { IdentServer } from '../../../gateway/server/server.js';
import { createLogger } from '../../../gateway/daemon/log.js';
import type { LookupAnswer, LookupRequest } from '../../../protocol/wire.js';

const NOBODY = { uid: 65534, gid: 65534 };
const WAIT_MS = 400;

interface Gateway {
  socketPath: string;
  registry: ClaimRegistry;
  requests: LookupRequest[];
  identPort: number;
  ident: IdentClient;
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

let owners: OwnerLookup;
beforeEach(() => {
  owners = createOwnerLookup('on', { method: 'sock_diag' });
  cleanups.push(() => owners.close());
});

/** Answers the claimed ident, else the claim's user, else the owner's name, and records every request. */
function recordingResolver(requests: LookupRequest[]): Resolver {
  const answer = (request: LookupRequest): LookupAnswer => {
    requests.push(request);
    const userId = request.claim?.ident ?? request.claim?.user ?? request.owner?.userName;
    return {
      v: 1,
      id: request.id,
      rule: request.claim ? 'claimed' : 'owner',
      answer: userId ? { type: 'USERID', opsys: 'UNIX', userId } : { type: 'ERROR', error: 'NO-USER' },
    };
  };
  return { resolve: async (request) => answer(request), resolveNow: answer, close: async () => {} };
}

async function startGateway(options: { claimsPerUid?: number; peers?: 'kernel' | 'none' } = {}): Promise<Gateway> {
  const dir = mkdtempSync(join(tmpdir(), 'identgate-claims-'));
  chmodSync(dir, 0o755); // nobody must reach the socket
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const socketPath = join(dir, 'claims.sock');
  const registry = new ClaimRegistry({ owners, claimsPerUid: options.claimsPerUid });
  cleanups.push(() => registry.close());
  const bound = await bindClaimsSocket({ path: socketPath, mode: 0o666 });
  const peers = loadPeerCredentials();
  if ('problem' in peers) throw new Error(peers.problem);
  const app = createClaimsApp({
    registry,
    owners,
    peerUid: (socket) => credentialsOf(socket)?.uid ?? null,
    claimsPerUid: options.claimsPerUid,
  });
  const endpoint: ClaimsEndpoint = bound.serve(app.fetch, options.peers === 'none' ? () => null : peers.of);
  cleanups.push(() => endpoint.close());
  const requests: LookupRequest[] = [];
  const server = new IdentServer({ hostname: '127.0.0.1', port: 0, queryDeadlineMs: 2_000 });
  await server.start(
    createQueryPipeline({
      gatewayName: 'test-gw',
      owners,
      resolver: recordingResolver(requests),
      sources: [claimsSource(registry, { waitMs: WAIT_MS })],
      log: createLogger('silent'),
      bootId: 'test',
    }),
  );
  cleanups.push(() => server.stop({ graceMs: 0 }));
  const ident = new IdentClient({ hostname: '127.0.0.1', port: server.port, timeout: 5_000 });
  cleanups.push(() => ident.close());
  return { socketPath, registry, requests, identPort: server.port, ident };
}

/** A TCP listener standing in for an IRC server, on 127.0.0.1. */
async function ircServer(): Promise<{ port: number; accepted: net.Socket[] }> {
  const accepted: net.Socket[] = [];
  const server = net.createServer((socket) => accepted.push(socket));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(() => {
    for (const socket of accepted) socket.destroy();
    server.close();
  });
  return { port: (server.address() as net.AddressInfo).port, accepted };
}

/** A connection this process (root) holds to `port`. */
async function connectAsRoot(port: number): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port });
  await once(socket, 'connect');
  cleanups.push(() => socket.destroy());
  return socket;
}

interface HttpAnswer {
  status: number;
  body: unknown;
}

/** An HTTP request over the claims socket from this process. */
function request(socketPath: string, method: string, path: string, body?: unknown): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const text = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const req = http.request({ socketPath, method, path }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(Buffer.concat(chunks).toString()) }));
    });
    req.on('error', reject);
    req.end(text);
  });
}

/**
 * A child process running as nobody: it opens TCP connections and makes HTTP requests over the claims socket
 * when told to (one JSON line in, one out).
 */
async function nobodyAgent(socketPath: string) {
  const script = `
    const net = require('node:net'), http = require('node:http'), rl = require('node:readline');
    const sockets = [];
    const say = (value) => process.stdout.write(JSON.stringify(value) + '\\n');
    rl.createInterface({ input: process.stdin }).on('line', (line) => {
      const op = JSON.parse(line);
      if (op.op === 'connect') {
        const socket = net.connect({ host: '127.0.0.1', port: op.port }, () => say({ localPort: socket.localPort, uid: process.getuid() }));
        sockets.push(socket);
      } else if (op.op === 'http') {
        const req = http.request({ socketPath: ${JSON.stringify(socketPath)}, method: op.method, path: op.path }, (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => say({ status: res.statusCode, body: JSON.parse(body) }));
        });
        req.on('error', (e) => say({ status: 0, body: String(e) }));
        req.end(op.body === undefined ? undefined : JSON.stringify(op.body));
      }
    });`;
  const child: ChildProcess = spawn(process.execPath, ['-e', script], {
    uid: NOBODY.uid,
    gid: NOBODY.gid,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  cleanups.push(() => child.kill('SIGKILL'));
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const ask = async <T>(op: object): Promise<T> => {
    child.stdin!.write(JSON.stringify(op) + '\n');
    const { value, done } = await lines.next();
    if (done) throw new Error('the nobody agent exited');
    return JSON.parse(value as string) as T;
  };
  return {
    connect: (port: number) => ask<{ localPort: number; uid: number }>({ op: 'connect', port }),
    http: (method: string, path: string, body?: unknown) => ask<HttpAnswer>({ op: 'http', method, path, body }),
  };
}

function claimBody(localPort: number, remotePort: number, extra: Record<string, unknown> = {}) {
  return {
    local: { address: '127.0.0.1', port: localPort },
    remote: { address: '127.0.0.1', port: remotePort },
    user: 'alice',
    ...extra,
  };
}

describe('the claims API over a Unix socket', () => {
  it('records a claim by the connection owner and the next query about it carries the claim', async () => {
    const gw = await startGateway();
    const irc = await ircServer();
    const app = await connectAsRoot(irc.port);
    const created = await request(
      gw.socketPath,
      'POST',
      '/v1/claims',
      claimBody(app.localPort!, irc.port, { ident: 'alice1' }),
    );
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ id: expect.stringMatching(/^c_/), uid: 0, user: 'alice', ident: 'alice1' });
    const reply = await gw.ident.ident(app.localPort!, irc.port);
    expect(reply.userId).toBe('alice1');
    expect(gw.requests.at(-1)!.claim).toEqual({ user: 'alice', ident: 'alice1' });
  });

  it('sends claim null for an unclaimed connection', async () => {
    const gw = await startGateway();
    const irc = await ircServer();
    const app = await connectAsRoot(irc.port);
    expect((await gw.ident.ident(app.localPort!, irc.port)).userId).toBe('root');
    expect(gw.requests.at(-1)!.claim).toBeNull();
  });

  it("refuses another uid's claim on root's connection with 403 not_owner, and root's queries stay unclaimed", async () => {
    const gw = await startGateway();
    const irc = await ircServer();
    const app = await connectAsRoot(irc.port);
    const nobody = await nobodyAgent(gw.socketPath);
    const refused = await nobody.http('POST', '/v1/claims', claimBody(app.localPort!, irc.port, { ident: 'root' }));
    expect(refused.status).toBe(403);
    expect(refused.body).toMatchObject({ error: { code: 'not_owner', message: expect.stringContaining('uid 65534') } });
    expect((await gw.ident.ident(app.localPort!, irc.port)).userId).toBe('root');
    expect(gw.registry.size).toBe(0);
  });

  it("keeps each uid's claims to itself: listing, releasing one and releasing all", async () => {
    const gw = await startGateway();
    const irc = await ircServer();
    const nobody = await nobodyAgent(gw.socketPath);
    const theirs = await nobody.connect(irc.port);
    expect(theirs.uid).toBe(NOBODY.uid);
    const claimed = await nobody.http('POST', '/v1/claims', claimBody(theirs.localPort, irc.port, { user: 'bob' }));
    expect(claimed.status).toBe(201);
    const id = (claimed.body as { id: string }).id;
    expect((await gw.ident.ident(theirs.localPort, irc.port)).userId).toBe('bob');

    expect((await request(gw.socketPath, 'GET', '/v1/claims')).body).toEqual({ claims: [] });
    expect((await request(gw.socketPath, 'DELETE', `/v1/claims/${id}`)).status).toBe(404);
    expect((await request(gw.socketPath, 'DELETE', '/v1/claims')).body).toEqual({ released: 0 });
    expect((await nobody.http('GET', '/v1/claims')).body).toMatchObject({ claims: [{ id, uid: NOBODY.uid }] });

    expect((await nobody.http('DELETE', `/v1/claims/${id}`)).body).toEqual({ released: 1 });
    expect((await gw.ident.ident(theirs.localPort, irc.port)).userId).toBe('nobody');
    await nobody.http('POST', '/v1/claims', claimBody(theirs.localPort, irc.port));
    expect((await nobody.http('DELETE', '/v1/claims')).body).toEqual({ released: 1 });
    expect(gw.registry.size).toBe(0);
  });

  it('refuses a claim for a connection that does not exist, or no longer does, with 403 no_connection', async () => {
    const gw = await startGateway();
    const irc = await ircServer();
    const unknown = await request(gw.socketPath, 'POST', '/v1/claims', claimBody(1, irc.port));
    expect(unknown.status).toBe(403);
    expect(unknown.body).toMatchObject({ error: { code: 'no_connection' } });

    const app = await connectAsRoot(irc.port);
    const localPort = app.localPort!;
    app.destroy();
    await once(app, 'close');
    // Both ends gone (the listener's side too), so nothing in the kernel has these ends any more.
    for (const socket of irc.accepted) socket.destroy();
    const closed = await request(gw.socketPath, 'POST', '/v1/claims', claimBody(localPort, irc.port));
    expect(closed.status).toBe(403);
    expect(closed.body).toMatchObject({ error: { code: 'no_connection' } });
  });

  it('drops a claim once its connection closes, at the next re-check', async () => {
    const gw = await startGateway();
    const irc = await ircServer();
    const app = await connectAsRoot(irc.port);
    const other = await connectAsRoot(irc.port);
    await request(gw.socketPath, 'POST', '/v1/claims', claimBody(app.localPort!, irc.port));
    await request(gw.socketPath, 'POST', '/v1/claims', claimBody(other.localPort!, irc.port));
    expect(await gw.registry.recheck()).toBe(0);
    app.destroy();
    await once(app, 'close');
    expect(await gw.registry.recheck()).toBe(1);
    const listed = (await request(gw.socketPath, 'GET', '/v1/claims')).body as {
      claims: { local: { port: number } }[];
    };
    expect(listed.claims.map((claim) => claim.local.port)).toEqual([other.localPort]);
  });

  it('holds a query about an unclaimed connection to a pending remote until the claim arrives', async () => {
    const gw = await startGateway();
    const irc = await ircServer();
    const held = await request(gw.socketPath, 'POST', '/v1/pending', {
      remote: { address: '127.0.0.1', port: irc.port },
      ttlMs: 5_000,
    });
    expect(held.status).toBe(201);
    const app = await connectAsRoot(irc.port);
    const reply = gw.ident.ident(app.localPort!, irc.port);
    // The query has reached the pipeline and waits: the resolver has not been asked.
    await expect.poll(() => gw.registry.waiting).toBe(1);
    expect(gw.requests).toHaveLength(0);
    await request(gw.socketPath, 'POST', '/v1/claims', claimBody(app.localPort!, irc.port, { ident: 'late' }));
    expect((await reply).userId).toBe('late');
  });

  it('answers a held query by the policy, unclaimed, when no claim comes within --claim-wait', async () => {
    const gw = await startGateway();
    const irc = await ircServer();
    await request(gw.socketPath, 'POST', '/v1/pending', {
      remote: { address: '127.0.0.1', port: irc.port },
      ttlMs: 5_000,
    });
    const app = await connectAsRoot(irc.port);
    const started = performance.now();
    expect((await gw.ident.ident(app.localPort!, irc.port)).userId).toBe('root');
    const waited = performance.now() - started;
    expect(waited).toBeGreaterThanOrEqual(WAIT_MS - 20);
    expect(waited).toBeLessThan(WAIT_MS + 1_000);
    expect(gw.requests.at(-1)!.claim).toBeNull();
  });

  it('answers at once once the hold has expired', async () => {
    const gw = await startGateway();
    const irc = await ircServer();
    await request(gw.socketPath, 'POST', '/v1/pending', {
      remote: { address: '127.0.0.1', port: irc.port },
      ttlMs: 50,
    });
    const app = await connectAsRoot(irc.port);
    await expect.poll(() => gw.registry.holds, { interval: 20 }).toBe(0);
    const started = performance.now();
    expect((await gw.ident.ident(app.localPort!, irc.port)).userId).toBe('root');
    expect(performance.now() - started).toBeLessThan(WAIT_MS);
  });

  it("does not hold queries about another uid's connections to a pending remote", async () => {
    const gw = await startGateway();
    const irc = await ircServer();
    const nobody = await nobodyAgent(gw.socketPath);
    const held = await nobody.http('POST', '/v1/pending', {
      remote: { address: '127.0.0.1', port: irc.port },
      ttlMs: 5_000,
    });
    expect(held.status).toBe(201);
    const app = await connectAsRoot(irc.port);
    const started = performance.now();
    expect((await gw.ident.ident(app.localPort!, irc.port)).userId).toBe('root');
    expect(performance.now() - started).toBeLessThan(WAIT_MS);
  });

  it('refuses bad input with 400 naming the field, and unknown fields', async () => {
    const gw = await startGateway();
    const cases: [unknown, string, string][] = [
      ['{"local":', 'invalid_json', 'not JSON'],
      [{ ...claimBody(1000, 6667), local: { address: 'irc.example', port: 1000 } }, 'invalid_request', 'local.address'],
      [{ ...claimBody(1000, 0) }, 'invalid_request', 'remote.port'],
      [{ ...claimBody(1000, 6667), ident: 'x\r\n1, 2 : USERID : UNIX : root' }, 'invalid_request', 'ident'],
      [{ ...claimBody(1000, 6667), ident: ' alice' }, 'invalid_request', 'ident'],
      [{ ...claimBody(1000, 6667), user: '' }, 'invalid_request', 'user'],
      [{ ...claimBody(1000, 6667), uid: 1000 }, 'invalid_request', 'uid'],
      [{ ...claimBody(1000, 6667), local: { address: '127.0.0.1', port: 1000, uid: 0 } }, 'invalid_request', 'local'],
      [{ ...claimBody(1000, 6667), remote: { address: '::1', port: 6667 } }, 'invalid_request', 'remote.address'],
    ];
    for (const [body, code, names] of cases) {
      const answer = await request(gw.socketPath, 'POST', '/v1/claims', body);
      expect(answer.status, JSON.stringify(body)).toBe(400);
      const error = (answer.body as { error: { code: string; message: string } }).error;
      expect(error.code).toBe(code);
      expect(error.message).toContain(names);
    }
    const pending = await request(gw.socketPath, 'POST', '/v1/pending', {
      remote: { address: '127.0.0.1', port: 6667 },
      ttlMs: 600_000,
    });
    expect(pending.status).toBe(400);
    expect(pending.body).toMatchObject({
      error: { code: 'invalid_request', message: expect.stringContaining('ttlMs') },
    });
    const large = await request(gw.socketPath, 'POST', '/v1/claims', 'x'.repeat(10_000));
    expect(large.status).toBe(413);
  });

  it('refuses claims beyond the per-uid bound with 429 too_many_claims', async () => {
    const gw = await startGateway({ claimsPerUid: 2 });
    const irc = await ircServer();
    const sockets = await Promise.all([1, 2, 3].map(() => connectAsRoot(irc.port)));
    const statuses = [];
    for (const socket of sockets)
      statuses.push(
        (await request(gw.socketPath, 'POST', '/v1/claims', claimBody(socket.localPort!, irc.port))).status,
      );
    expect(statuses).toEqual([201, 201, 429]);
    // Claiming one of its own again replaces it and stays within the bound.
    const again = await request(
      gw.socketPath,
      'POST',
      '/v1/claims',
      claimBody(sockets[0]!.localPort!, irc.port, { user: 'carol' }),
    );
    expect(again.status).toBe(201);
    expect(gw.registry.size).toBe(2);
  });

  it('refuses every request with 503 when the peer credentials cannot be read', async () => {
    const gw = await startGateway({ peers: 'none' });
    const answer = await request(gw.socketPath, 'GET', '/v1/claims');
    expect(answer.status).toBe(503);
    expect(answer.body).toMatchObject({ error: { code: 'peer_credentials_unavailable' } });
  });

  it('is spoken by the typed client: claim, list, release, releaseAll, pending', async () => {
    const gw = await startGateway();
    const irc = await ircServer();
    const app = await connectAsRoot(irc.port);
    const client = createClaimsClient({ socketPath: gw.socketPath });
    const claim = await client.claim({ ...claimBody(app.localPort!, irc.port), ident: 'al' });
    expect(await client.list()).toEqual([claim]);
    await client.release(claim.id);
    expect(await client.list()).toEqual([]);
    await client.claim(claimBody(app.localPort!, irc.port));
    expect(await client.releaseAll()).toBe(1);
    const hold = await client.pending({ remote: { address: '127.0.0.1', port: irc.port }, ttlMs: 1_000 });
    expect(hold).toMatchObject({ id: expect.stringMatching(/^h_/), uid: 0, remote: { port: irc.port } });
    const refused = await client.claim(claimBody(1, irc.port)).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(ClaimsApiError);
    expect(refused).toMatchObject({ status: 403, reason: 'no_connection', code: 'ERR_CLAIMS_API' });
  });
});
