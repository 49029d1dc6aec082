/**
 * Delegated answers through the whole gateway: a real IdentServer, the query pipeline, the
 * embedded policy worker deciding forward or userFile, and the gateway carrying the delegate out
 * on its own host before writing, asked by a real IdentClient over loopback TCP.
 */
import { once } from 'node:events';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IdentClient } from '../../gateway/client/client.js';
import { createLogger } from '../../gateway/daemon/log.js';
import { createMetrics, type GatewayMetrics } from '../../gateway/daemon/metrics.js';
import { createDelegateRunner, forwardAllowList, UserFiles } from '../../gateway/delegate/index.js';
import type { Owner, OwnerLookup } from '../../gateway/owner/index.js';
import { createQueryPipeline } from '../../gateway/pipeline.js';
import { createEmbeddedResolver } from '../../gateway/resolver/embedded.js';
import { createApp } from '../../worker/app.js';
import { parsePolicy } from '../../worker/policy/index.js';
import { createMemoryStore } from '../../worker/stores/memory.js';
import { startServer } from '../helpers/server.js';

const DEADLINE_MS = 400;
const uid = process.getuid!();
let home: string;
const cleanups: (() => Promise<unknown> | void)[] = [];

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'identgate-pipeline-'));
  await chmod(home, 0o755);
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await rm(home, { recursive: true, force: true });
});

/** Every queried connection belongs to uid `uid` ("znc"), as if owner lookup had found it. */
const owners: OwnerLookup = {
  lookupNow: (): Owner => ({ uid, userName: 'znc' }),
  lookup: async (): Promise<Owner> => ({ uid, userName: 'znc' }),
  start: async () => undefined,
  close: async () => undefined,
  method: 'test',
};

let metrics: GatewayMetrics;

async function gateway(rules: object[]): Promise<IdentClient> {
  metrics = createMetrics();
  const app = createApp({
    store: createMemoryStore(parsePolicy({ version: 1, rules, default: { action: { error: 'NO-USER' } } })),
    secrets: [],
    mode: 'embedded',
  });
  const resolver = createEmbeddedResolver({ app, deadlineMs: DEADLINE_MS });
  cleanups.push(() => resolver.close());
  const passwd = { homeDirectory: async () => home, uidOf: async () => null };
  const handler = createQueryPipeline({
    gatewayName: 'gw',
    owners,
    resolver,
    log: createLogger('error'),
    metrics,
    bootId: 'test',
    deadlineMs: DEADLINE_MS,
    delegates: createDelegateRunner({
      passwd: passwd as never,
      userFiles: new UserFiles({ passwd }),
      forwardAllowed: forwardAllowList([], false),
    }),
  });
  const { port } = await startServer(handler);
  const client = new IdentClient({ hostname: '127.0.0.1', port, timeout: 5_000 });
  cleanups.push(() => client.close());
  return client;
}

async function appIdentd(onLine: (line: string, write: (text: string) => void) => void): Promise<number> {
  const server: Server = createServer((socket) => {
    socket.on('error', () => {});
    socket.setEncoding('latin1').on('data', (line: string) => onLine(line.trim(), (text) => socket.write(text)));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  return (server.address() as AddressInfo).port;
}

describe('a userFile rule, read by the gateway at query time', () => {
  it("answers what the owner's ~/.oidentd.conf says, and follows the file as it changes", async () => {
    const client = await gateway([{ name: 'znc', match: { ownerName: 'znc' }, action: { userFile: {} } }]);
    const file = join(home, '.oidentd.conf');
    await writeFile(file, 'global { reply "alice" }\n', { mode: 0o644 });
    expect((await client.ident(40001, 6667)).raw).toBe('40001, 6667 : USERID : OTHER : alice');
    await writeFile(file, 'global { reply "bob" }\n');
    expect((await client.ident(40002, 6667)).raw).toBe('40002, 6667 : USERID : OTHER : bob');
  });

  it("answers the rule's fallback when the file is missing or unsafe", async () => {
    const client = await gateway([
      { name: 'znc', opsys: 'UNIX', action: { userFile: {}, fallback: { reveal: 'name' } } },
    ]);
    expect((await client.ident(40001, 6667)).raw).toBe('40001, 6667 : USERID : UNIX : znc');
    await writeFile(join(home, '.oidentd.conf'), 'global { reply "alice" }\n', { mode: 0o666 });
    await chmod(join(home, '.oidentd.conf'), 0o666);
    expect((await client.ident(40001, 6667)).raw).toBe('40001, 6667 : USERID : UNIX : znc');
  });
});

describe('a forward rule, carried out by the gateway', () => {
  it("answers with the app's identd reply", async () => {
    const port = await appIdentd((line, write) => write(`${line} : USERID : TheLounge : alice\r\n`));
    const client = await gateway([{ name: 'thelounge', action: { forward: { port } } }]);
    expect((await client.ident(40001, 6697)).raw).toBe('40001, 6697 : USERID : OTHER : alice');
    expect(await metrics.registry.metrics()).toMatch(/identgate_delegated_total\{kind="forward",result="answered"\} 1/);
  });

  it("answers the rule's fallback within the deadline when the app's identd is silent", async () => {
    const port = await appIdentd(() => {});
    const client = await gateway([
      { name: 'thelounge', action: { forward: { port }, fallback: { error: 'HIDDEN-USER' } } },
    ]);
    const started = performance.now();
    expect((await client.ident(40001, 6697)).raw).toBe('40001, 6697 : ERROR : HIDDEN-USER');
    expect(performance.now() - started).toBeLessThan(DEADLINE_MS + 250);
    expect(await metrics.registry.metrics()).toMatch(/identgate_delegated_total\{kind="forward",result="fallback"\} 1/);
  });
});
