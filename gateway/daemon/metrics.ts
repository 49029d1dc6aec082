/**
 * Prometheus metrics for `identgate serve --metrics ADDR:PORT` (prom-client,
 * in a registry of its own so that embedding identgate never pollutes the
 * host application's default registry).
 *
 * @example
 * const metrics = createMetrics();
 * metrics.countAnswer('USERID');
 * const bound = await bindMetrics({ hostname: '127.0.0.1', port: 9113 });   // before dropping root
 * const endpoint = bound.serve(registrySource(metrics.registry), health);   // GET /metrics, /healthz, /readyz
 */
import http from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { ConfigError } from '../../protocol/errors.js';
import { hostPort } from '../describe.js';
import type { HealthSource } from './health.js';

export interface GatewayMetrics {
  readonly registry: Registry;
  /** answer: USERID or the error token. */
  readonly queries: Counter<'answer'>;
  readonly upstreamLatency: Histogram<never>;
  readonly upstreamQueriesPerRequest: Histogram<never>;
  readonly upstreamFailures: Counter<'cause'>;
  /** Queries the worker failed to answer that the last-good policy answered (docs/wire.md), by cause. */
  readonly staleAnswers: Counter<'cause'>;
  readonly openConnections: Gauge<never>;
  readonly refusedConnections: Counter<'reason'>;
  /** Delegated answers (forward, userfile) by kind and result: answered, or fallback. */
  readonly delegated: Counter<'kind' | 'result'>;
  readonly ownerLookupSeconds: Histogram<'result'>;
  /** Audit records (--audit): written, retried, or dropped (queue_full, write_failed). */
  readonly auditRecords: Counter<'outcome'>;
  /** Policy file reloads (SIGHUP or a change) by outcome: loaded, unchanged, rejected. */
  readonly policyReloads: Counter<'outcome'>;
  /** Where identgate_policy_info reads the version of the policy answering now at scrape time (undefined: none known). */
  policyVersionFrom(source: () => string | undefined): void;
  /** Where the open-connections gauge reads its value at scrape time. */
  countConnectionsWith(source: () => number): void;
  /** Counts one answered query; the labelled child is looked up once per label, not per query. */
  countAnswer(label: string): void;
  /** Observes one owner lookup, like countAnswer. */
  observeOwnerLookup(found: boolean, seconds: number): void;
}

export function createMetrics(): GatewayMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'identgate_' });
  const registers = [registry];
  let openConnections = () => 0;
  const queries = new Counter({
    name: 'identgate_queries_total',
    help: 'Ident queries answered, by answer (USERID or error token)',
    labelNames: ['answer'],
    registers,
  });
  const ownerLookupSeconds = new Histogram({
    name: 'identgate_owner_lookup_seconds',
    help: 'Time to find the local owner of a queried connection, by result (found, not_found)',
    labelNames: ['result'],
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.5],
    registers,
  });
  // Labelled children, bound once: prom-client hashes the labels on every call otherwise.
  const answerCounters = new Map<string, { inc(): void }>();
  let policyVersion: () => string | undefined = () => undefined;
  new Gauge({
    name: 'identgate_policy_info',
    help: 'The policy answering now: 1, labelled with its version (the embedded policy, or the last-good copy of the worker policy)',
    labelNames: ['version'],
    // Summed over --workers N they would count processes; each says 1 for its version.
    aggregator: 'max',
    registers,
    collect() {
      this.reset();
      const version = policyVersion();
      if (version !== undefined) this.labels(version).set(1);
    },
  });
  const lookupFound = ownerLookupSeconds.labels('found');
  const lookupNotFound = ownerLookupSeconds.labels('not_found');
  const policyReloads = new Counter({
    name: 'identgate_policy_reloads_total',
    help: 'Policy file reloads (SIGHUP or a change to the file), by outcome: loaded, unchanged, rejected (the last good policy kept; the log says why)',
    labelNames: ['outcome'],
    registers,
  });
  // Present from the start, so that an alert on rejected reloads has a series to watch.
  for (const outcome of ['loaded', 'unchanged', 'rejected']) policyReloads.labels(outcome).inc(0);
  return {
    countConnectionsWith: (source) => {
      openConnections = source;
    },
    countAnswer(label) {
      let counter = answerCounters.get(label);
      if (counter === undefined) {
        counter = queries.labels(label);
        answerCounters.set(label, counter);
      }
      counter.inc();
    },
    observeOwnerLookup(found, seconds) {
      (found ? lookupFound : lookupNotFound).observe(seconds);
    },
    policyVersionFrom: (source) => {
      policyVersion = source;
    },
    registry,
    queries,
    upstreamLatency: new Histogram({
      name: 'identgate_upstream_request_seconds',
      help: 'Time for one request to the policy worker (single or batch)',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    upstreamQueriesPerRequest: new Histogram({
      name: 'identgate_upstream_queries_per_request',
      help: 'Queries carried by one request to the policy worker (batching)',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers,
    }),
    upstreamFailures: new Counter({
      name: 'identgate_upstream_failures_total',
      help: 'Queries answered with the fallback, by cause',
      labelNames: ['cause'],
      registers,
    }),
    staleAnswers: new Counter({
      name: 'identgate_stale_answers_total',
      help: "Queries the policy worker failed to answer that were answered from the gateway's last-good copy of its policy, by cause",
      labelNames: ['cause'],
      registers,
    }),
    openConnections: new Gauge({
      name: 'identgate_open_connections',
      help: 'Ident client connections open now',
      registers,
      collect() {
        this.set(openConnections());
      },
    }),
    refusedConnections: new Counter({
      name: 'identgate_refused_connections_total',
      help: 'Connections refused or evicted by a limit, by reason',
      labelNames: ['reason'],
      registers,
    }),
    delegated: new Counter({
      name: 'identgate_delegated_total',
      help: 'Delegated answers carried out by the gateway, by kind (forward, userfile) and result (answered, fallback)',
      labelNames: ['kind', 'result'],
      registers,
    }),
    ownerLookupSeconds,
    auditRecords: new Counter({
      name: 'identgate_audit_records_total',
      help: 'Audit records by outcome: written, retried (a failed write tried again), queue_full or write_failed (dropped; the answers went out)',
      labelNames: ['outcome'],
      registers,
    }),
    policyReloads,
  };
}

/** What /metrics serves: one registry, or a cluster primary's aggregate of its workers. */
export interface MetricsSource {
  text(): Promise<string>;
  readonly contentType: string;
}

export function registrySource(registry: Registry): MetricsSource {
  return { text: () => registry.metrics(), contentType: registry.contentType };
}

/** The metrics port, answering. */
export interface MetricsEndpoint {
  readonly address: AddressInfo;
  /** Stops listening and closes open connections. */
  close(): void;
}

/** A bound metrics port that answers nothing yet (see BoundMetrics.serve). */
export interface BoundMetrics {
  readonly address: AddressInfo;
  /** Starts answering GET /metrics from `source`, and /healthz, /readyz from `health` (connections that waited first). */
  serve(source: MetricsSource, health?: HealthSource): MetricsEndpoint;
  close(): void;
}

/**
 * Binds the metrics port without answering: a process started as root binds
 * it before dropping privileges and answers only after. Connections that
 * come meanwhile wait paused, unread (pauseOnConnect). Rejects with a
 * ConfigError naming the port when it cannot listen (EADDRINUSE, EACCES...).
 */
export async function bindMetrics(where: { hostname: string; port: number }): Promise<BoundMetrics> {
  let http1: http.Server | undefined;
  const waiting: Socket[] = [];
  const listener = net.createServer({ pauseOnConnect: true }, (socket) => {
    if (http1) hand(http1, socket);
    else waiting.push(socket.on('error', () => {}));
  });
  await new Promise<void>((resolve, reject) => {
    listener.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        new ConfigError(
          `--metrics ${hostPort(where.hostname, where.port)}: cannot listen (${error.code ?? error.message})`,
          {
            cause: error,
          },
        ),
      ),
    );
    listener.listen(where.port, where.hostname, () => resolve());
  });
  listener.on('error', () => {});
  const address = listener.address() as AddressInfo;
  return {
    address,
    serve(source, health) {
      const server = metricsHttpServer(source, health);
      http1 = server;
      for (const socket of waiting.splice(0)) if (!socket.destroyed) hand(server, socket);
      return {
        address,
        close() {
          listener.close();
          server.closeAllConnections();
        },
      };
    },
    close() {
      for (const socket of waiting.splice(0)) socket.destroy();
      listener.close();
    },
  };
}

/** Gives an accepted (paused) socket to the HTTP server, as http.Server's own 'connection' event does. */
function hand(server: http.Server, socket: Socket): void {
  server.emit('connection', socket);
  socket.resume();
}

function metricsHttpServer(source: MetricsSource, health: HealthSource | undefined): http.Server {
  const json = (res: http.ServerResponse, status: number, body: unknown) =>
    res
      .writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' })
      .end(`${JSON.stringify(body)}\n`);
  return http.createServer((req, res) => {
    const path = req.url;
    if (req.method === 'GET' && path === '/metrics') {
      source.text().then(
        (text) => res.writeHead(200, { 'content-type': source.contentType }).end(text),
        (error: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${error.message}\n`),
      );
      return;
    }
    // Liveness: this process answers HTTP. Readiness: it can answer ident queries now (gateway/daemon/health.ts).
    if (req.method === 'GET' && path === '/healthz' && health) return json(res, 200, { status: 'ok' });
    if (req.method === 'GET' && path === '/readyz' && health) {
      health.ready().then(
        ({ ready, checks }) => json(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not ready', checks }),
        (error: Error) => json(res, 503, { status: 'not ready', error: error.message }),
      );
      return;
    }
    const routes = health ? 'GET /metrics, /healthz or /readyz' : 'GET /metrics';
    res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: try ${routes}\n`);
  });
}

/** Serves GET /metrics; resolves once listening (bindMetrics, then serve at once). */
export async function serveMetrics(
  source: MetricsSource,
  where: { hostname: string; port: number },
  health?: HealthSource,
): Promise<MetricsEndpoint> {
  return (await bindMetrics(where)).serve(source, health);
}
