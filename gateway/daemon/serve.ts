/**
 * `identgate serve` assembled: an IdentServer whose handler is a fixed reply or
 * the query pipeline (gateway/pipeline.ts), with the resolver (embedded policy or
 * the worker over HTTP), owner lookup, metrics and privileges wired together.
 * The order is the privilege boundary: bind the listeners and the metrics
 * port, drop root (`--run-as`), then start the owner-lookup helper and accept.
 *
 * @example
 * const gateway = await startGateway(parseServeArgs(['--listen', '127.0.0.1:1113']), { log: createLogger('info') });
 * process.on('SIGHUP', () => void gateway.reload());
 * await gateway.stop();
 */
import type { Server as HttpServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { createApp } from '../../worker/app.js';
import { openLocalAudit, type LocalAudit } from '../../worker/audit/local.js';
import { identgateVersion } from '../version.js';
import { explain } from '../../worker/policy/index.js';
import { WIRE_VERSION } from '../../protocol/wire.js';
import { openFileStore, type FileStore, type PolicyReload } from '../../worker/stores/file.js';
import { createMemoryStore } from '../../worker/stores/memory.js';
import { listenApp } from '../../worker/node.js';
import type { PolicyStore } from '../../worker/stores/store.js';
import { ConfigError } from '../../protocol/errors.js';
import { errnoCode, errnoMessage, hostPort } from '../describe.js';
import type { ServeConfig } from '../cli/config.js';
import { createEmbeddedResolver } from '../resolver/embedded.js';
import { createHttpResolver } from '../resolver/http.js';
import type { LastGoodPolicy } from '../resolver/last-good.js';
import { workerLog, type Logger } from './log.js';
import { checkWorkerAtStart, createHealth, trackWorker, type CheckResult, type WorkerTracker } from './health.js';
import { probeWorker } from '../resolver/probe.js';
import {
  bindMetrics,
  createMetrics,
  registrySource,
  type BoundMetrics,
  type GatewayMetrics,
  type MetricsEndpoint,
} from './metrics.js';
import { exposeWorkerMetrics } from './cluster.js';
import { createOwnerLookup, type OwnerLookup } from '../owner/index.js';
import { answerLabel, createQueryPipeline, type FactSource } from '../pipeline.js';
import { createDelegateRunner, forwardAllowList } from '../delegate/index.js';
import { createNatSource, type NatSource } from '../nat/conntrack.js';
import { createForwardedSource, type ForwardedSource } from '../nat/forwarded.js';
import { createDockerSource, type DockerSource } from '../containers/docker.js';
import { dropPrivileges, resolveRunAs, runningAsRoot, warnRoot } from './privileges.js';
import type { FailureCause, Resolver } from '../resolver/types.js';
import { IdentServer, type IdentHandler } from '../server/server.js';
import { nativeTransportProblem } from '../server/transport/index.js';
import { createClaimsApp } from '../claims/api.js';
import { loadPeerCredentials } from '../claims/peer.js';
import { ClaimRegistry } from '../claims/registry.js';
import { bindClaimsSocket, credentialsOf, type BoundClaimsSocket, type ClaimsEndpoint } from '../claims/socket.js';
import { claimsSource } from '../claims/source.js';

export interface RunningGateway {
  readonly server: IdentServer;
  /** 'fixed', 'embedded policy FILE', 'embedded default policy' or 'upstream URL'. */
  readonly answeredBy: string;
  readonly ownerLookup: string;
  /** 'ctnetlink', 'procfs' or 'off' (gateway/nat/conntrack.ts). */
  readonly natLookup: string;
  readonly metricsPort: number | undefined;
  /** The --console port, when on. */
  readonly consolePort: number | undefined;
  /** The claims API's socket, when it is on. */
  readonly claimsSocket: string | undefined;
  /** The live claims, when the claims API is on. */
  readonly claims: ClaimRegistry | undefined;
  /**
   * Whether a query from `remoteAddress` about a connection with no known owner answers a user id (the banner's
   * suggestion); undefined when this process cannot tell (an upstream worker decides).
   */
  answersUserId(query: { serverPort: number; clientPort: number }, remoteAddress: string): boolean | undefined;
  /** Reloads the policy file (SIGHUP); undefined when there is none. A refused file keeps the last good policy. */
  reload(): Promise<PolicyReload | undefined>;
  /** Graceful: stop accepting, answer what was received, close. */
  stop(): Promise<void>;
}

export interface GatewayDeps {
  log: Logger;
  /** In a `--workers N` cluster worker: metrics go to the primary, which serves them. */
  clusterWorker?: boolean;
}

export async function startGateway(
  config: ServeConfig,
  { log, clusterWorker = false }: GatewayDeps,
): Promise<RunningGateway> {
  // Looked up (and refused if it is root) before anything is bound.
  const runAs = config.runAs === undefined ? undefined : resolveRunAs(config.runAs);
  const metrics: GatewayMetrics | undefined = config.metrics ? createMetrics() : undefined;
  let resolver: Resolver | undefined;
  let lastGood: LastGoodPolicy | undefined;
  let fileStore: FileStore | undefined;
  let embeddedStore: PolicyStore | undefined;
  let audit: LocalAudit | undefined;
  let owners: OwnerLookup | undefined;
  let claims: ClaimRegistry | undefined;
  let nat: NatSource | undefined;
  let forwarded: ForwardedSource | undefined;
  let docker: DockerSource | undefined;
  let answeredBy: string;
  let handler: IdentHandler;
  // What readiness knows of the policy worker (upstream only): the resolver's reports and a probe of its /healthz.
  let worker: WorkerTracker | undefined;

  const onFailure = (cause: FailureCause, detail: string, count: number) => {
    worker?.failed(cause, detail);
    log.warn({ cause, count }, `policy worker failed, answering the fallback: ${detail}`);
  };
  const onRecover = (failures: number, downMs: number) => {
    worker?.recovered();
    log.warn({ failures, downMs }, 'policy worker answering again');
  };
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
      const onReload = metrics ? ({ outcome }: PolicyReload) => metrics.policyReloads.inc({ outcome }) : undefined;
      fileStore = policyFile ? await openFileStore(policyFile, { log: policyLog, watch: true, onReload }) : undefined;
      const auditConfig = config.answerer.audit;
      audit = auditConfig
        ? await openLocalAudit({
            path: auditConfig.path,
            retentionDays: auditConfig.retentionDays,
            log: workerLog(log, 'info'),
            onCount: metrics ? (outcome, count) => metrics.auditRecords.inc({ outcome }, count) : undefined,
          })
        : undefined;
      embeddedStore = fileStore ?? createMemoryStore();
      const app = createApp({
        store: embeddedStore,
        audit,
        version: identgateVersion(),
        secrets: [],
        mode: 'embedded',
        logDecisions: debug,
        log: policyLog,
      });
      resolver = createEmbeddedResolver({
        app,
        deadlineMs: config.deadlineMs,
        fallback: config.fallback,
        onFailure,
        onRecover,
        onBatch,
      });
      answeredBy = policyFile ? `embedded policy ${policyFile}` : 'embedded default policy';
    } else {
      const { staleMaxAgeMs, staleRefreshMs } = config.answerer;
      // One warning per outage for the stale answers; the failure lines go on as before.
      let staleSince: string | undefined;
      const http = createHttpResolver({
        upstream: config.answerer.upstream,
        secrets: config.answerer.secrets,
        connections: config.answerer.connections,
        holdMs: config.answerer.holdMs,
        deadlineMs: config.deadlineMs,
        fallback: config.fallback,
        onFailure,
        onRecover: (failures, downMs) => {
          staleSince = undefined;
          onRecover(failures, downMs);
        },
        onFallback: metrics ? (cause, count) => metrics.upstreamFailures.inc({ cause }, count) : undefined,
        onStale: (cause, count) => {
          metrics?.staleAnswers.inc({ cause }, count);
          const version = http.lastGood?.usableVersion;
          if (staleSince === version) return;
          staleSince = version;
          log.warn({ cause, count, version }, 'answering from the last-good policy');
        },
        onBatch,
        lastGood:
          staleMaxAgeMs === 0
            ? undefined
            : {
                gateway: config.gatewayName,
                maxAgeMs: staleMaxAgeMs,
                refreshMs: staleRefreshMs,
                onUpdate: (version, rules, workerOnly) =>
                  log.info({ version, rules, workerOnly }, 'last-good policy updated'),
                onPollFailure: (failure) =>
                  log.warn({ cause: failure.reason }, `last-good policy not refreshed: ${failure.message}`),
              },
      });
      resolver = http;
      lastGood = http.lastGood;
      answeredBy = `upstream ${config.answerer.upstream.origin}${config.answerer.upstream.pathname.replace(/\/$/, '')}`;
      const upstream = config.answerer.upstream;
      const held = http.lastGood;
      // A probe has at most the queries' deadline: a worker slower than that could not answer them either.
      worker = trackWorker({
        probe: () => probeWorker(upstream, Math.min(config.deadlineMs, 2_000)),
        // Ready while the worker is down if the last-good policy may still answer (within --stale-policy-max-age).
        lastGood: () => {
          const version = held?.usableVersion;
          return version === undefined ? undefined : { version, ageMs: held!.confirmedAgeMs };
        },
      });
    }
    owners = createOwnerLookup(config.ownerLookup, {
      onError: (error) => log.warn({ code: error.code }, error.message),
    });
    if (config.claims) {
      claims = new ClaimRegistry({
        owners,
        claimsPerUid: config.claims.claimsPerUid,
        onEnded: (claim) => log.debug({ id: claim.id, uid: claim.uid }, 'claim ended with its connection'),
      });
    }
    const sources: FactSource[] = claims ? [claimsSource(claims, { waitMs: config.claims!.waitMs })] : [];
    if (config.acceptForwardedFrom.length > 0) {
      forwarded = createForwardedSource({
        from: config.acceptForwardedFrom,
        onError: (error) => log.warn({ code: error.code }, `forwarded query: ${error.message}`),
      });
      await forwarded.start();
      sources.push(forwarded);
    }
    // Opened now, before privileges drop: the conntrack table file stays readable after --run-as.
    nat = createNatSource({
      mode: config.natLookup,
      onError: (error) => log.warn({ code: error.code }, `NAT lookup: ${error.message}`),
    });
    await nat.start();
    if (nat.method !== 'off') sources.push(nat);
    if (config.dockerSocket !== undefined) {
      docker = createDockerSource({
        socketPath: config.dockerSocket,
        onError: (message) => log.warn(message),
      });
      await docker.start();
      sources.push(docker);
    }
    handler = createQueryPipeline({
      gatewayName: config.gatewayName,
      owners,
      sources,
      resolver,
      metrics,
      log,
      bootId: randomBytes(4).toString('hex'),
      // A delegate has what is left of the query's time: a claim wait, then the policy's deadline.
      deadlineMs: config.deadlineMs + (config.claims?.waitMs ?? 0),
      delegates: createDelegateRunner({ log, forwardAllowed: forwardAllowList(config.forwardAllow) }),
    });
  }

  const server = new IdentServer({
    listen: config.listen,
    ...config.limits,
    // The resolver answers within its deadline (after a held query's claim wait); this is the backstop for a fault in between.
    queryDeadlineMs: config.deadlineMs + (config.claims?.waitMs ?? 0) + 1_000,
    hideErrors: config.hideErrors,
    transport: config.transport,
    onError: (error) => {
      if (error.code === 'ERR_IDENT_SOCKET' || error.code === 'ERR_IDENT_LINE_TOO_LONG')
        log.debug({ code: error.code }, error.message);
      else log.warn({ code: error.code }, error.message);
    },
    onRefuse: (reason, remoteAddress) => {
      metrics?.refusedConnections.inc({ reason });
      log.debug({ reason, remoteAddress }, 'connection refused by a limit');
    },
    onInvalidQuery: metrics ? () => metrics.countAnswer('INVALID-PORT') : undefined,
  });
  let stopping = false;
  const health = createHealth({
    listening: (): CheckResult =>
      server.listening && !stopping
        ? { ok: true, detail: `listening on ${server.addresses.map((a) => hostPort(a.address, a.port)).join(', ')}` }
        : { ok: false, detail: stopping ? 'stopping' : 'not listening yet' },
    policy: (): CheckResult | Promise<CheckResult> => {
      if (worker) return worker.check();
      if (config.answerer.kind === 'fixed') return { ok: true, detail: 'a fixed reply (--reply)' };
      const version = embeddedStore?.peek?.()?.version;
      return { ok: true, detail: `${answeredBy}${version === undefined ? '' : `, version ${version}`}` };
    },
  });
  let boundMetrics: BoundMetrics | undefined;
  let metricsServer: MetricsEndpoint | undefined;
  let consoleServer: HttpServer | undefined;
  let boundClaims: BoundClaimsSocket | undefined;
  let claimsEndpoint: ClaimsEndpoint | undefined;
  try {
    await server.bind();
    if (metrics && config.metrics && !clusterWorker) boundMetrics = await bindMetrics(config.metrics);
    // Created (mode, group) while still privileged; answered only after the drop below.
    if (config.claims) boundClaims = await bindClaimsSocket(config.claims.socket);
    if (runAs) {
      dropPrivileges(runAs);
      log.info({ uid: runAs.uid, gid: runAs.gid }, `running as ${runAs.spec}`);
    }
    // Children start unprivileged: the lookup helper now, so its start-up does not eat the first query's time budget.
    await owners?.start();
    await server.start(handler);
    // Unprivileged too: its polls read the worker's answers.
    lastGood?.start();
    // Once serving (a failed start stays one line); a cluster worker's supervisor warns for it.
    if (runAs === undefined && runningAsRoot() && !clusterWorker) warnRoot(log);
    if (config.transport === 'auto' && server.transport === 'node') {
      log.info(
        { reason: nativeTransportProblem() },
        'using the node:net transport: the native one is not available here',
      );
    }
    if (owners?.fallbackReason !== undefined) {
      log.info(
        { reason: owners.fallbackReason },
        `owner lookup through ${owners.method === 'procfs' ? '/proc/net/tcp' : 'the sock_diag helper'}: the sock_diag addon is not available here`,
      );
    }
    if (metrics) {
      metrics.countConnectionsWith(() => server.connectionCount);
      // Upstream: the worker's policy as last fetched (its current one, refreshed every --stale-policy-refresh).
      metrics.policyVersionFrom(() => embeddedStore?.peek?.()?.version ?? lastGood?.version);
      if (clusterWorker) exposeWorkerMetrics(metrics.registry);
      else metricsServer = boundMetrics?.serve(registrySource(metrics.registry), health);
    }
    // Once, at start: a worker that cannot be reached is said now, not at the first query (a cluster's primary says it).
    if (worker && !clusterWorker) void checkWorkerAtStart(worker, answeredBy, log);
    // After the drop: the console reads admin requests, which no root process should.
    if (config.console && embeddedStore) consoleServer = await serveConsole(config.console, embeddedStore, log, audit);
    if (boundClaims && claims && owners) {
      const peers = loadPeerCredentials();
      if ('problem' in peers)
        log.warn(`claims API: ${peers.problem}; every request to ${boundClaims.path} is refused (503)`);
      const app = createClaimsApp({
        registry: claims,
        owners,
        peerUid: (socket) => credentialsOf(socket)?.uid ?? null,
        claimsPerUid: config.claims!.claimsPerUid,
        onError: (error) => log.error({ err: error }, 'claims API fault'),
      });
      claimsEndpoint = boundClaims.serve(app.fetch, 'problem' in peers ? () => null : peers.of);
      claims.start();
      log.info(`claims API on ${boundClaims.path}`);
    }
  } catch (error) {
    await server.stop({ graceMs: 0 });
    boundMetrics?.close();
    consoleServer?.close();
    claims?.close();
    await (claimsEndpoint ?? boundClaims)?.close();
    await Promise.all([
      resolver?.close(),
      owners?.close(),
      fileStore?.close(),
      audit?.close(),
      nat?.close(),
      forwarded?.close(),
      docker?.close(),
    ]);
    throw error;
  }

  return {
    server,
    answeredBy,
    ownerLookup: owners?.method ?? 'off',
    natLookup: nat?.method ?? 'off',
    metricsPort: metricsServer?.address.port,
    consolePort: consoleServer ? (consoleServer.address() as { port: number }).port : undefined,
    claimsSocket: boundClaims?.path,
    claims,
    answersUserId(query, remoteAddress) {
      if (config.answerer.kind === 'fixed') return config.answerer.answer.type === 'USERID';
      const snapshot = embeddedStore?.peek?.();
      if (snapshot === undefined) return undefined;
      const { answer, delegate } = explain(snapshot.compiled, {
        v: WIRE_VERSION,
        id: 'banner',
        gateway: config.gatewayName,
        query,
        connection: { localAddress: remoteAddress, localPort: 113, remoteAddress, remotePort: 40000 },
        owner: null,
      });
      return answer.type === 'USERID' && delegate === undefined;
    },
    reload: async () => fileStore?.reload(),
    stop: async () => {
      stopping = true;
      await claimsEndpoint?.close();
      await server.stop({ graceMs: config.shutdownGraceMs });
      claims?.close();
      metricsServer?.close();
      consoleServer?.closeAllConnections();
      consoleServer?.close();
      await Promise.all([
        resolver?.close(),
        owners?.close(),
        fileStore?.close(),
        nat?.close(),
        forwarded?.close(),
        docker?.close(),
      ]);
      // After the last answer: what it recorded is written before the file closes.
      await audit?.close();
    },
  };
}

/**
 * The operator console for the embedded policy (--console): the worker app in service mode over the same store, with
 * no signing secret, so its lookup routes refuse (503) and only the admin API and /admin answer.
 */
async function serveConsole(
  { listen, adminTokens }: NonNullable<ServeConfig['console']>,
  store: PolicyStore,
  log: Logger,
  audit: LocalAudit | undefined,
): Promise<HttpServer> {
  // With --audit, the same audit database: /v1/audit, /v1/assignments (into the decisions' own cache), /v1/gateways.
  const app = createApp({ store, secrets: [], adminTokens, mode: 'service', log: workerLog(log, 'debug'), audit });
  try {
    const server = await listenApp(app, listen.hostname, listen.port);
    const { port } = server.address() as { port: number };
    log.info(`console on http://${hostPort(listen.hostname, port)}/admin`);
    return server;
  } catch (error) {
    throw new ConfigError(
      `--console ${hostPort(listen.hostname, listen.port)}: cannot listen (${errnoCode(error) ?? errnoMessage(error)})`,
    );
  }
}
