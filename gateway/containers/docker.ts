/**
 * The container fact (`--docker-socket PATH`): which Docker container holds the inner address conntrack found,
 * with its name and labels, answered from a cache the engine's event stream keeps current.
 * How the cache stays right: docs/internals.md; for operators: docs/nat.md.
 *
 * @example
 * const docker = createDockerSource({ socketPath: '/run/docker.sock', onError: (message) => log.warn(message) });
 * await docker.start();
 * createQueryPipeline({ ..., sources: [nat, docker] });
 */
import { request, type IncomingMessage } from 'node:http';
import { z } from 'zod';
import { CONTAINER_LIMITS, type Container } from '../../protocol/index.js';
import { addressBytes, type OwnerQuery } from '../owner/address.js';
import { addressText } from '../nat/conntrack.js';
import type { ConnectionFacts, FactSource } from '../pipeline.js';

export interface DockerSourceOptions {
  /** The Docker Engine API's Unix socket, e.g. /run/docker.sock. */
  socketPath: string;
  /** Bound on one API request (not the event stream); 2000 ms. */
  requestTimeoutMs?: number;
  /** How long start() waits for the first container list; 1000 ms. Queries before it see no containers. */
  startWaitMs?: number;
  /** First delay before reopening a broken event stream (doubling up to 30 s); 1000 ms. */
  retryMs?: number;
  /** Told, in one line, about every failure: engine absent, slow, or answering garbage. */
  onError?: (message: string) => void;
}

export interface DockerSource extends FactSource {
  /** Reads the container list (waiting at most startWaitMs) and opens the event stream. Never rejects. */
  start(): Promise<void>;
  close(): Promise<void>;
  /** The container with this address in the cache, or null. */
  containerAt(address: string): Container;
  /** Resolves after the next time the cache changed (tests await it instead of sleeping). */
  changed(): Promise<void>;
}

const Networks = z.record(
  z.string(),
  z.object({ IPAddress: z.string().optional(), GlobalIPv6Address: z.string().optional() }).nullable(),
);
const Labels = z.record(z.string(), z.string()).nullable().optional();

const ListedContainer = z.object({
  Id: z.string().min(1),
  Names: z.array(z.string()).optional(),
  Labels,
  NetworkSettings: z.object({ Networks: Networks.nullable().optional() }).nullable().optional(),
});
const ContainerList = z.array(ListedContainer);

const InspectedContainer = z.object({
  Id: z.string().min(1),
  Name: z.string(),
  State: z.object({ Running: z.boolean() }),
  Config: z.object({ Labels }).nullable().optional(),
  NetworkSettings: z.object({ Networks: Networks.nullable().optional() }).nullable().optional(),
});

const DockerEvent = z.object({
  Type: z.string().optional(),
  Action: z.string().optional(),
  Actor: z.object({ ID: z.string().optional(), Attributes: z.record(z.string(), z.string()).optional() }).optional(),
});

/** A container as the cache keeps it. */
interface Known {
  readonly id: string;
  readonly container: NonNullable<Container>;
  readonly addresses: readonly string[];
}

/** Bounded response bodies: a container list of a busy host fits, a runaway engine does not. */
const MAX_BODY_OCTETS = 16 * 1024 * 1024;
const MAX_EVENT_LINE_OCTETS = 64 * 1024;

/**
 * @example
 * const docker = createDockerSource({ socketPath: '/run/docker.sock' });
 */
export function createDockerSource(options: DockerSourceOptions): DockerSource {
  const socketPath = options.socketPath;
  const requestTimeoutMs = options.requestTimeoutMs ?? 2_000;
  const onError = options.onError ?? (() => {});
  const byId = new Map<string, Known>();
  const byAddress = new Map<string, Known>();
  let closed = false;
  let events: IncomingMessage | null = null;
  let eventsRequest: ReturnType<typeof request> | null = null;
  let retryTimer: NodeJS.Timeout | undefined;
  let retryMs = options.retryMs ?? 1_000;
  let waiters: (() => void)[] = [];

  const notify = () => {
    const woken = waiters;
    waiters = [];
    for (const wake of woken) wake();
  };

  const forget = (id: string) => {
    const known = byId.get(id);
    if (known === undefined) return;
    byId.delete(id);
    for (const address of known.addresses) if (byAddress.get(address) === known) byAddress.delete(address);
  };

  const remember = (known: Known) => {
    forget(known.id);
    byId.set(known.id, known);
    for (const address of known.addresses) byAddress.set(address, known);
  };

  /** GET path as JSON, bounded in time and size; rejects with a one-line reason. */
  const getJson = (path: string): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const req = request({ socketPath, path, method: 'GET', headers: { host: 'docker' } }, (res) => {
        const chunks: Buffer[] = [];
        let octets = 0;
        res.on('data', (chunk: Buffer) => {
          octets += chunk.length;
          if (octets > MAX_BODY_OCTETS) req.destroy(new Error(`answer to ${path} over ${MAX_BODY_OCTETS} octets`));
          else chunks.push(chunk);
        });
        res.on('end', () => {
          if (res.statusCode === 404) return resolve(null);
          if (res.statusCode !== 200) return reject(new Error(`${path} answered HTTP ${res.statusCode}`));
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
          } catch {
            reject(new Error(`${path} answered something that is not JSON`));
          }
        });
        res.on('error', reject);
      });
      req.setTimeout(requestTimeoutMs, () => req.destroy(new Error(`${path} took over ${requestTimeoutMs} ms`)));
      req.on('error', reject);
      req.end();
    });

  const listAll = async (): Promise<void> => {
    const parsed = ContainerList.safeParse(await getJson('/containers/json'));
    if (!parsed.success) throw new Error('/containers/json answered something that is not a container list');
    byId.clear();
    byAddress.clear();
    for (const listed of parsed.data) {
      const name = (listed.Names?.[0] ?? listed.Id.slice(0, 12)).replace(/^\//, '');
      remember(known(listed.Id, name, listed.Labels, listed.NetworkSettings?.Networks));
    }
    notify();
  };

  const refresh = async (id: string): Promise<void> => {
    if (!/^[0-9a-zA-Z_.-]{1,128}$/.test(id)) return;
    const body = await getJson(`/containers/${id}/json`);
    if (body === null) {
      forget(id);
      return notify();
    }
    const parsed = InspectedContainer.safeParse(body);
    if (!parsed.success) throw new Error(`/containers/${id}/json answered something that is not a container`);
    const inspected = parsed.data;
    if (!inspected.State.Running) forget(inspected.Id);
    else
      remember(
        known(
          inspected.Id,
          inspected.Name.replace(/^\//, ''),
          inspected.Config?.Labels,
          inspected.NetworkSettings?.Networks,
        ),
      );
    notify();
  };

  const report = (error: unknown) => onError(`docker: ${(error as Error).message ?? String(error)}`);

  const onEvent = (line: string) => {
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      return report(new Error('the event stream sent a line that is not JSON'));
    }
    const parsed = DockerEvent.safeParse(json);
    if (!parsed.success) return report(new Error('the event stream sent something that is not an event'));
    const event = parsed.data;
    const id = event.Type === 'network' ? event.Actor?.Attributes?.['container'] : event.Actor?.ID;
    if (id === undefined || (event.Type !== 'container' && event.Type !== 'network')) return;
    if (event.Action === 'destroy') {
      forget(id);
      return notify();
    }
    refresh(id).catch(report);
  };

  const scheduleReopen = () => {
    if (closed || retryTimer !== undefined) return;
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      openEvents();
    }, retryMs);
    retryTimer.unref();
    retryMs = Math.min(retryMs * 2, 30_000);
  };

  const openEvents = () => {
    if (closed) return;
    const filters = encodeURIComponent(JSON.stringify({ type: ['container', 'network'] }));
    const req = request({ socketPath, path: `/events?filters=${filters}`, headers: { host: 'docker' } }, (res) => {
      if (res.statusCode !== 200) {
        report(new Error(`/events answered HTTP ${res.statusCode}`));
        res.resume();
        return scheduleReopen();
      }
      events = res;
      retryMs = options.retryMs ?? 1_000;
      // Events missed while the stream was down are made up for by a fresh list.
      listAll().catch(report);
      let pending = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        pending += chunk;
        let end: number;
        while ((end = pending.indexOf('\n')) !== -1) {
          const line = pending.slice(0, end).trim();
          pending = pending.slice(end + 1);
          if (line) onEvent(line);
        }
        if (pending.length > MAX_EVENT_LINE_OCTETS) {
          report(new Error(`an event over ${MAX_EVENT_LINE_OCTETS} octets`));
          res.destroy();
        }
      });
      res.on('close', () => {
        events = null;
        if (!closed) {
          report(new Error('the event stream ended; reopening it'));
          scheduleReopen();
        }
      });
    });
    eventsRequest = req;
    req.on('error', (error) => {
      if (closed) return;
      report(error);
      scheduleReopen();
    });
    req.end();
  };

  const containerAt = (address: string): Container => {
    const bytes = addressBytes(address);
    if (bytes === null) return null;
    return byAddress.get(addressText(bytes))?.container ?? null;
  };

  const facts = (facts: ConnectionFacts): Partial<ConnectionFacts> => {
    const nat = facts.nat;
    if (nat === undefined || nat === null) return NO_FACTS;
    return { container: containerAt(nat.innerAddress) };
  };

  return {
    name: 'container',
    async start() {
      let timer: NodeJS.Timeout | undefined;
      const first = listAll().catch(report);
      openEvents();
      await Promise.race([
        first,
        new Promise<void>((resolve) => (timer = setTimeout(resolve, options.startWaitMs ?? 1_000))),
      ]);
      clearTimeout(timer);
    },
    async close() {
      closed = true;
      clearTimeout(retryTimer);
      events?.destroy();
      eventsRequest?.destroy();
      notify();
    },
    containerAt,
    changed: () => new Promise<void>((resolve) => waiters.push(resolve)),
    gatherNow: (_query: OwnerQuery, found: ConnectionFacts) => facts(found),
    gather: async (_query: OwnerQuery, found: ConnectionFacts) => facts(found),
  };
}

const NO_FACTS: Partial<ConnectionFacts> = {};

/** The cache entry for one running container: its addresses normalized, its labels within the wire's limits. */
function known(
  id: string,
  rawName: string,
  rawLabels: Record<string, string> | null | undefined,
  networks: z.infer<typeof Networks> | null | undefined,
): Known {
  const addresses: string[] = [];
  for (const network of Object.values(networks ?? {})) {
    for (const address of [network?.IPAddress, network?.GlobalIPv6Address]) {
      const bytes = address ? addressBytes(address) : null;
      if (bytes !== null) addresses.push(addressText(bytes));
    }
  }
  const fits = ([key, value]: [string, string]) =>
    key.length >= 1 &&
    Buffer.byteLength(key) <= CONTAINER_LIMITS.keyOctets &&
    Buffer.byteLength(value) <= CONTAINER_LIMITS.valueOctets;
  // identgate's own labels first, so that a container with many labels keeps them.
  const entries = Object.entries(rawLabels ?? {})
    .filter(fits)
    .sort(([a], [b]) => Number(b.startsWith('identgate.')) - Number(a.startsWith('identgate.')) || (a < b ? -1 : 1))
    .slice(0, CONTAINER_LIMITS.labels);
  const name = rawName.slice(0, CONTAINER_LIMITS.nameOctets) || id.slice(0, 12);
  return { id, container: { name, labels: Object.fromEntries(entries) }, addresses };
}
