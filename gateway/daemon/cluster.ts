/**
 * `identgate serve --workers N`: N gateway processes accepting from the same listening sockets; the primary only
 * supervises (signals, restarts, summed metrics), never on a connection's path. With `--run-as` no child starts
 * privileged (docs/internals.md: native binds, drops, then forks; node:net forks the workers as the user).
 *
 * @example
 * identgate serve --listen [::]:113 --workers 2 --policy /etc/identgate/policy.json
 */
import cluster, { type Worker } from 'node:cluster';
import { closeSync } from 'node:fs';
import { AggregatorRegistry } from 'prom-client';
import { INHERITED_LISTENERS_ENV, type ServeConfig } from '../cli/config.js';
import type { Logger } from './log.js';
import { bindMetrics, type BoundMetrics, type MetricsEndpoint } from './metrics.js';
import { checkWorkerAtStart, createHealth, trackWorker } from './health.js';
import { probeWorker } from '../resolver/probe.js';
import { dropPrivileges, resolveRunAs, runningAsRoot, warnRoot } from './privileges.js';
import { bindError } from '../server/server.js';
import { selectTransport } from '../server/transport/index.js';
import type { NativeTransport } from '../server/transport/native.js';
import { IdentgateError } from '../../protocol/errors.js';

/** A worker process died while starting; it has logged why, so the supervisor only says that it died. */
export class WorkerStartError extends IdentgateError {
  readonly code = 'ERR_IDENTGATE_WORKER';
  override readonly userError = true;
}

/** What a worker tells the primary once it is listening. */
export interface ReadyMessage {
  type: 'identgate:ready';
  addresses: { address: string; port: number }[];
  answeredBy: string;
  ownerLookup: string;
  natLookup?: string;
  transport: string;
}

export function isReadyMessage(message: unknown): message is ReadyMessage {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === 'identgate:ready';
}

/** Sends the ready message from a worker process. */
export function announceReady(message: Omit<ReadyMessage, 'type'>): void {
  process.send?.({ type: 'identgate:ready', ...message } satisfies ReadyMessage);
}

/** Lets the primary's /metrics collect this worker's registry. */
export function exposeWorkerMetrics(registry: import('prom-client').Registry): void {
  // Constructing one installs prom-client's worker-side message listener.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([registry]);
}

const RESTART_DELAY_MS = 1_000;

/** The listening descriptors the workers inherit: bound here, or systemd's as they are. */
async function bindForWorkers(transport: NativeTransport, config: ServeConfig): Promise<number[]> {
  const fds: number[] = [];
  for (const target of config.listen) {
    if ('fd' in target) fds.push(target.fd);
    else
      fds.push(
        await transport
          .bindSocket(target)
          .catch((error: NodeJS.ErrnoException) => Promise.reject(bindError(target, error))),
      );
  }
  return fds;
}

/**
 * Runs the primary: forks `config.workers` workers, resolves with the first
 * worker's ready message once all are listening, rejects if a worker exits
 * before that (its own one-line error is already on stderr).
 */
export async function runPrimary(
  config: ServeConfig,
  log: Logger,
): Promise<{ ready: ReadyMessage; metricsPort: number | undefined; reload: () => void; stop: () => Promise<void> }> {
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  const runAs = config.runAs === undefined ? undefined : resolveRunAs(config.runAs);
  const transport = selectTransport(config.transport);
  let env: Record<string, string> | undefined;
  let fds: number[] = [];
  let boundMetrics: BoundMetrics | undefined;
  try {
    if (transport.kind === 'native') fds = await bindForWorkers(transport as NativeTransport, config);
    if (config.metrics) boundMetrics = await bindMetrics(config.metrics);
  } catch (error) {
    for (const fd of fds) if (!config.listen.some((target) => 'fd' in target && target.fd === fd)) closeSync(fd);
    throw error;
  }
  if (transport.kind === 'native') {
    cluster.setupPrimary({ stdio: [0, 1, 2, 'ipc', ...fds] });
    env = { [INHERITED_LISTENERS_ENV]: String(fds.length) };
    if (runAs) {
      dropPrivileges(runAs);
      log.info({ uid: runAs.uid, gid: runAs.gid }, `running as ${runAs.spec}`);
    }
  } else if (runAs) {
    // The primary stays root to bind when its workers ask (node:cluster); they start as the user (and no other group).
    cluster.setupPrimary({ uid: runAs.uid, gid: runAs.gid });
  }
  let stopping = false;
  let started = false;
  const readyWorkers = new Set<Worker>();

  const starting = new Promise<ReadyMessage>((resolve, reject) => {
    let first: ReadyMessage | undefined;
    const fork = () => {
      const worker = cluster.fork(env);
      worker.on('message', (message: unknown) => {
        if (!isReadyMessage(message)) return;
        readyWorkers.add(worker);
        first ??= message;
        if (!started && readyWorkers.size === config.workers) {
          started = true;
          resolve(first);
        }
      });
      worker.on('exit', (code, signal) => {
        readyWorkers.delete(worker);
        if (stopping) return;
        if (!started) {
          stopping = true;
          for (const other of Object.values(cluster.workers ?? {})) other?.process.kill('SIGKILL');
          reject(new WorkerStartError(`a gateway worker exited during start (code ${code ?? signal})`));
          return;
        }
        log.warn({ pid: worker.process.pid, code, signal }, 'gateway worker died; restarting it');
        setTimeout(() => {
          if (!stopping) fork();
        }, RESTART_DELAY_MS).unref();
      });
    };
    for (let i = 0; i < config.workers; i++) fork();
  });
  const ready = await starting.catch((error: unknown) => {
    boundMetrics?.close();
    throw error;
  });

  if (runAs && transport.kind !== 'native') {
    dropPrivileges(runAs);
    // Forking with uid/gid needs root (setgroups); a restarted worker is forked by the user it runs as.
    cluster.setupPrimary({ uid: undefined, gid: undefined });
    log.info({ uid: runAs.uid, gid: runAs.gid }, `running as ${runAs.spec}`);
  }
  if (runAs === undefined && runningAsRoot()) warnRoot(log);
  let metricsServer: MetricsEndpoint | undefined;
  // The primary asks the policy worker itself (the workers' resolvers report to no one here): readiness, start check.
  const answerer = config.answerer;
  const worker =
    answerer.kind === 'upstream'
      ? trackWorker({ probe: () => probeWorker(answerer.upstream, Math.min(config.deadlineMs, 2_000)) })
      : undefined;
  if (boundMetrics) {
    const aggregator = new AggregatorRegistry();
    const health = createHealth({
      listening: () =>
        readyWorkers.size === config.workers && !stopping
          ? { ok: true, detail: `${config.workers} gateway workers listening` }
          : { ok: false, detail: `${readyWorkers.size} of ${config.workers} gateway workers listening` },
      policy: () => worker?.check() ?? { ok: true, detail: `${ready.answeredBy} (in every gateway worker)` },
    });
    // The primary serves what its workers measured, summed.
    metricsServer = boundMetrics.serve(
      {
        text: () => aggregator.clusterMetrics(),
        contentType: aggregator.contentType,
      },
      health,
    );
  }
  if (worker) void checkWorkerAtStart(worker, ready.answeredBy, log);

  const reload = () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGHUP');
  };
  const stop = async () => {
    stopping = true;
    metricsServer?.close();
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w);
    await Promise.all(
      workers.map(
        (worker) =>
          new Promise<void>((resolve) => {
            if (worker.isDead()) return resolve();
            worker.once('exit', () => resolve());
            worker.process.kill('SIGTERM');
          }),
      ),
    );
  };
  const metricsPort = metricsServer?.address.port;
  return { ready, metricsPort, reload, stop };
}
