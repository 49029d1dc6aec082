/**
 * The container fact against a fake Docker Engine API on a Unix socket that
 * writes literal JSON (the shapes Docker Engine 24+ sends, trimmed to the
 * fields read): the first list, containers started, renamed and destroyed
 * as the event stream says, and an engine that is absent, hangs or answers
 * garbage, which must never hold an answer up.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createDockerSource, type DockerSource } from '../../../gateway/containers/docker.js';

const LIST = `[{"Id":"8dfafdbc3a40","Names":["/irc-bouncer"],"Image":"znc","State":"running","Labels":{"identgate.ident":"znc","com.docker.compose.project":"chat"},"NetworkSettings":{"Networks":{"bridge":{"IPAddress":"172.17.0.2","GlobalIPv6Address":"fd00:dead:beef::2","MacAddress":"02:42:ac:11:00:02"}}}}]`;

const INSPECT_LOUNGE = `{"Id":"4f66ad9a0b2c","Name":"/thelounge","State":{"Status":"running","Running":true},"Config":{"Labels":{"identgate.ident":"lounge"}},"NetworkSettings":{"Networks":{"bridge":{"IPAddress":"172.17.0.3","GlobalIPv6Address":""}}}}`;

const START_LOUNGE = `{"status":"start","id":"4f66ad9a0b2c","from":"thelounge","Type":"container","Action":"start","Actor":{"ID":"4f66ad9a0b2c","Attributes":{"name":"thelounge"}},"scope":"local","time":1764800000,"timeNano":1764800000000000000}\n`;
const DESTROY_BOUNCER = `{"status":"destroy","id":"8dfafdbc3a40","Type":"container","Action":"destroy","Actor":{"ID":"8dfafdbc3a40","Attributes":{"name":"irc-bouncer"}},"scope":"local","time":1764800001}\n`;

type Route = (req: IncomingMessage, res: ServerResponse) => void;

let dir = '';
let socketPath = '';
let engine: Server | undefined;
let events: ServerResponse | undefined;
let routes: Record<string, Route> = {};
let source: DockerSource | undefined;
let errors: string[] = [];
let onReport: (() => void)[] = [];

function report(message: string): void {
  errors.push(message);
  for (const wake of onReport.splice(0)) wake();
}

/** Resolves once `count` failures have been reported. */
async function reported(count: number): Promise<void> {
  while (errors.length < count) await new Promise<void>((resolve) => onReport.push(resolve));
}

function json(body: string): Route {
  return (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(body);
  };
}

async function startEngine(): Promise<void> {
  engine = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0]!;
    if (path === '/events') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
      events = res;
      return;
    }
    const route = routes[path];
    if (route) return route(req, res);
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"message":"No such container"}');
  });
  await new Promise<void>((resolve) => engine!.listen(socketPath, resolve));
}

function facts(address: string) {
  return source!.gatherNow!(
    { localAddress: '198.51.100.1', localPort: 40000, remoteAddress: '198.51.100.2', remotePort: 6667 },
    { owner: null, nat: { innerAddress: address, innerPort: 40000 } },
  );
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'identgate-docker-'));
  socketPath = join(dir, 'docker.sock');
  routes = { '/containers/json': json(LIST), '/containers/4f66ad9a0b2c/json': json(INSPECT_LOUNGE) };
  errors = [];
  onReport = [];
  events = undefined;
});

afterEach(async () => {
  await source?.close();
  source = undefined;
  events?.destroy();
  engine?.closeAllConnections();
  await new Promise<void>((resolve) => (engine ? engine.close(() => resolve()) : resolve()));
  engine = undefined;
  rmSync(dir, { recursive: true, force: true });
});

describe('the Docker container source', () => {
  it('maps a container address from the first list to its name and labels', async () => {
    await startEngine();
    source = createDockerSource({ socketPath, onError: report });
    await source.start();
    expect(facts('172.17.0.2')).toEqual({
      container: {
        name: 'irc-bouncer',
        labels: { 'identgate.ident': 'znc', 'com.docker.compose.project': 'chat' },
      },
    });
    expect(facts('fd00:dead:beef:0::2')).toEqual(facts('172.17.0.2'));
    expect(facts('172.17.0.9')).toEqual({ container: null });
    expect(errors).toEqual([]);
  });

  it('gives no container fact without a NAT inner address', async () => {
    await startEngine();
    source = createDockerSource({ socketPath });
    await source.start();
    const q = { localAddress: '198.51.100.1', localPort: 40000, remoteAddress: '198.51.100.2', remotePort: 6667 };
    expect(source.gatherNow!(q, { owner: null, nat: null })).toEqual({});
    expect(source.gatherNow!(q, { owner: { uid: 0, userName: 'root' } })).toEqual({});
  });

  it('learns a started container and forgets a destroyed one from the event stream', async () => {
    await startEngine();
    source = createDockerSource({ socketPath, onError: report });
    await source.start();
    while (events === undefined) await source.changed();
    let changed = source.changed();
    events.write(START_LOUNGE);
    await changed;
    expect(facts('172.17.0.3')).toEqual({ container: { name: 'thelounge', labels: { 'identgate.ident': 'lounge' } } });
    changed = source.changed();
    events.write(DESTROY_BOUNCER);
    await changed;
    expect(facts('172.17.0.2')).toEqual({ container: null });
    expect(errors).toEqual([]);
  });

  it('starts at once and answers null when the engine is absent, and says why', async () => {
    source = createDockerSource({ socketPath, onError: report, retryMs: 60_000 });
    const started = performance.now();
    await source.start();
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(facts('172.17.0.2')).toEqual({ container: null });
    expect(errors.join('\n')).toMatch(/docker: .*ENOENT/);
  });

  it('never waits for an engine that does not answer: start gives up after startWaitMs, lookups are at once', async () => {
    routes['/containers/json'] = () => {}; // hangs
    await startEngine();
    source = createDockerSource({ socketPath, startWaitMs: 100, requestTimeoutMs: 300 });
    const started = performance.now();
    await source.start();
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(facts('172.17.0.2')).toEqual({ container: null });
  });

  it('reports garbage from the engine and keeps what it knew', async () => {
    await startEngine();
    source = createDockerSource({ socketPath, onError: report });
    await source.start();
    while (events === undefined) await source.changed();
    routes['/containers/4f66ad9a0b2c/json'] = json('{"Id": 42, "State": "yes"}');
    events.write('this is not json\n');
    events.write(START_LOUNGE);
    await reported(2);
    expect(errors[0]).toBe('docker: the event stream sent a line that is not JSON');
    expect(errors[1]).toBe('docker: /containers/4f66ad9a0b2c/json answered something that is not a container');
    expect(facts('172.17.0.2')).toEqual({
      container: { name: 'irc-bouncer', labels: { 'identgate.ident': 'znc', 'com.docker.compose.project': 'chat' } },
    });
    expect(facts('172.17.0.3')).toEqual({ container: null });
  });

  it('passes on at most 32 labels within the size limits, identgate labels first', async () => {
    const labels: Record<string, string> = { 'identgate.ident': 'big', huge: 'x'.repeat(300) };
    for (let i = 0; i < 40; i++) labels[`label${String(i).padStart(2, '0')}`] = String(i);
    routes['/containers/json'] = json(
      JSON.stringify([
        {
          Id: 'abc',
          Names: ['/big'],
          Labels: labels,
          NetworkSettings: { Networks: { bridge: { IPAddress: '172.17.0.4' } } },
        },
      ]),
    );
    await startEngine();
    source = createDockerSource({ socketPath });
    await source.start();
    const container = source.containerAt('172.17.0.4')!;
    expect(Object.keys(container.labels)).toHaveLength(32);
    expect(container.labels['identgate.ident']).toBe('big');
    expect(container.labels['huge']).toBeUndefined();
  });
});
