/**
 * `identgate serve` assembled: an IdentServer whose handler finds the local
 * owner of the queried connection, asks the policy (fixed reply, the worker
 * app embedded in this process, or the worker over HTTP) and writes its answer.
 * This is the one place where the server, the owner lookup, the resolver,
 * logging and metrics meet; each of them lives in its own module.
 *
 * @example
 * const gateway = await startGateway(parseServeArgs(['--listen', '127.0.0.1:1113']), { log: createLogger('info') });
 * process.on('SIGHUP', () => void gateway.reload());
 * await gateway.stop();
 */
import type { Server as HttpServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { WIRE_VERSION, type IdentAnswer, type LookupAnswer, type LookupRequest } from '../protocol/index.js';
import { createApp } from '../worker/app.js';
import { openFileStore, type FileStore } from '../worker/stores/file.js';
import { createMemoryStore } from '../worker/stores/memory.js';
import type { ServeConfig } from './config.js';
import { createEmbeddedResolver } from './embedded-resolver.js';
import { createHttpResolver } from './http-resolver.js';
import { workerLog, type Logger } from './log.js';
import { createMetrics, registrySource, serveMetrics, type GatewayMetrics } from './metrics.js';
import { exposeWorkerMetrics } from './cluster.js';
import { createOwnerLookup, type Owner, type OwnerLookup } from './owner/index.js';
import { dropPrivileges } from './privileges.js';
import type { FailureCause, Resolver } from './resolver.js';
import { IdentServer, type IdentHandler } from './server.js';
import { nativeTransportProblem } from './transport/index.js';
import type { IdentTransaction } from './transaction.js';

export interface RunningGateway {
  readonly server: IdentServer;
  /** 'fixed', 'embedded policy FILE', 'embedded default policy' or 'upstream URL'. */
  readonly answeredBy: string;
  readonly ownerLookup: string;
  readonly metricsPort: number | undefined;
  /** Reloads the policy file (SIGHUP); false when there is none or the new one was refused. */
  reload(): Promise<boolean>;
  /** Graceful: stop accepting, answer what was received, close. */
  stop(): Promise<void>;
}

export interface GatewayDeps {
  log: Logger;
  /** In a `--workers N` cluster worker: metrics go to the primary, which serves them. */
  clusterWorker?: boolean;
}

function answerLabel(answer: IdentAnswer): string {
  return answer.type === 'USERID' ? 'USERID' : answer.error;
}

export async function startGateway(config: ServeConfig, { log, clusterWorker = false }: GatewayDeps): Promise<RunningGateway> {
  const metrics: GatewayMetrics | undefined = config.metrics ? createMetrics() : undefined;
  let resolver: Resolver | undefined;
  let fileStore: FileStore | undefined;
  let owners: OwnerLookup | undefined;
  let answeredBy: string;
  let handler: IdentHandler;

  const onFailure = (cause: FailureCause, detail: string, count: number) => log.warn({ cause, count }, `policy worker failed, answering the fallback: ${detail}`);
  const onRecover = (failures: number, downMs: number) => log.warn({ failures, downMs }, 'policy worker answering again');
  const onBatch = metrics
    ? (size: number, latencyMs: number) => {
        metrics.upstreamLatency.observe(latencyMs / 1000);
        metrics.upstreamQueriesPerRequest.observe(size);
      }
    : undefined;

  // Per-query log lines are built only when someone reads them.
  const debug = log.isLevelEnabled('debug');
  if (config.answerer.kind === 'fixed') {
    const answer = config.answerer.answer;
    const label = answerLabel(answer);
    answeredBy = 'fixed';
    handler = (tx) => {
      tx.reply(answer);
      metrics?.countAnswer(label);
      if (debug) log.debug({ rule: 'fixed', answer, query: tx.req, remoteAddress: tx.remoteAddress }, 'query');
    };
  } else {
    if (config.answerer.kind === 'embedded') {
      const policyFile = config.answerer.policyFile;
      const policyLog = workerLog(log, 'debug');
      fileStore = policyFile ? await openFileStore(policyFile, { log: policyLog, watch: true }) : undefined;
      const app = createApp({
        store: fileStore ?? createMemoryStore(),
        secrets: [],
        mode: 'embedded',
        logDecisions: debug,
        log: policyLog,
      });
      resolver = createEmbeddedResolver({ app, deadlineMs: config.deadlineMs, fallback: config.fallback, onFailure, onRecover, onBatch });
      answeredBy = policyFile ? `embedded policy ${policyFile}` : 'embedded default policy';
    } else {
      resolver = createHttpResolver({
        upstream: config.answerer.upstream,
        secrets: config.answerer.secrets,
        connections: config.answerer.connections,
        holdMs: config.answerer.holdMs,
        deadlineMs: config.deadlineMs,
        fallback: config.fallback,
        onFailure,
        onRecover,
        onFallback: metrics ? (cause, count) => metrics.upstreamFailures.inc({ cause }, count) : undefined,
        onBatch,
      });
      answeredBy = `upstream ${config.answerer.upstream.origin}${config.answerer.upstream.pathname.replace(/\/$/, '')}`;
    }
    owners = createOwnerLookup(config.ownerLookup, { onError: (error) => log.warn({ code: error.code }, error.message) });
    // Start the lookup helper now: its start-up must not eat the first query's time budget.
    await owners.start();
    const bootId = randomBytes(4).toString('hex');
    let sequence = 0;
    const ask = resolver;
    const lookup = owners;
    const reply = (tx: IdentTransaction, request: LookupRequest, { answer, rule }: LookupAnswer): void => {
      tx.reply(answer);
      metrics?.countAnswer(answerLabel(answer));
      if (debug) log.debug({ id: request.id, rule, answer, query: request.query, remoteAddress: tx.remoteAddress, owner: request.owner }, 'query');
    };
    const decide = (tx: IdentTransaction, owner: Owner | null, started: number): void | Promise<void> => {
      if (metrics) metrics.observeOwnerLookup(owner !== null, (performance.now() - started) / 1000);
      const request: LookupRequest = {
        v: WIRE_VERSION,
        id: `${bootId}-${++sequence}`,
        gateway: config.gatewayName,
        query: tx.req,
        connection: { localAddress: tx.localAddress, localPort: tx.localPort, remoteAddress: tx.remoteAddress, remotePort: tx.remotePort },
        owner,
      };
      const now = ask.resolveNow?.(request);
      if (now !== undefined) return reply(tx, request, now);
      return ask.resolve(request).then((answer) => reply(tx, request, answer));
    };
    // Owner and policy at hand (the addon, the embedded policy): answered before the handler
    // returns, so the reply goes out with the read that brought the query — no promise, timer or turn.
    handler = (tx) => {
      const started = metrics ? performance.now() : 0;
      const query = { localAddress: tx.localAddress, localPort: tx.req.serverPort, remoteAddress: tx.remoteAddress, remotePort: tx.req.clientPort };
      const owner = lookup.lookupNow(query);
      if (owner !== undefined) return decide(tx, owner, started);
      return lookup.lookup(query).then((found) => decide(tx, found, started));
    };
  }

  const server = new IdentServer({
    listen: config.listen,
    ...config.limits,
    // The resolver answers within its deadline; this is the backstop for a fault in between.
    queryDeadlineMs: config.deadlineMs + 1_000,
    hideErrors: config.hideErrors,
    transport: config.transport,
    onError: (error) => {
      if (error.code === 'ERR_IDENT_SOCKET' || error.code === 'ERR_IDENT_LINE_TOO_LONG') log.debug({ code: error.code }, error.message);
      else log.warn({ code: error.code }, error.message);
    },
    onRefuse: (reason, remoteAddress) => {
      metrics?.refusedConnections.inc({ reason });
      log.debug({ reason, remoteAddress }, 'connection refused by a limit');
    },
  });
  let metricsServer: HttpServer | undefined;
  try {
    await server.start(handler);
    if (config.transport === 'auto' && server.transport === 'node') {
      log.info({ reason: nativeTransportProblem() }, 'using the node:net transport: the native one is not available here');
    }
    if (metrics && config.metrics) {
      metrics.countConnectionsWith(() => server.connectionCount);
      if (clusterWorker) exposeWorkerMetrics(metrics.registry);
      else metricsServer = await serveMetrics(registrySource(metrics.registry), config.metrics);
    }
    if (config.runAs) {
      const { uid, gid } = dropPrivileges(config.runAs);
      log.info({ uid, gid }, `running as ${config.runAs}`);
    }
  } catch (error) {
    await server.stop({ graceMs: 0 });
    metricsServer?.close();
    await Promise.all([resolver?.close(), owners?.close(), fileStore?.close()]);
    throw error;
  }

  return {
    server,
    answeredBy,
    ownerLookup: owners?.method ?? 'off',
    metricsPort: metricsServer ? (metricsServer.address() as { port: number }).port : undefined,
    reload: async () => (fileStore ? fileStore.reload() : false),
    stop: async () => {
      await server.stop({ graceMs: config.shutdownGraceMs });
      metricsServer?.close();
      await Promise.all([resolver?.close(), owners?.close(), fileStore?.close()]);
    },
  };
}
