/**
 * The policy worker as a Node HTTP service (@hono/node-server) for `identgate worker`: signed lookups,
 * the file store when given a policy file (reloaded on change and reload()), else memory from DEFAULT_POLICY.
 */
import { createHmac } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { serve } from '@hono/node-server';
import { IdentgateError } from '../protocol/errors.js';
import { createApp } from './app.js';
import { createMemoryStore } from './stores/memory.js';
import { openFileStore, type FileStore, type PolicyReload } from './stores/file.js';
import type { PolicyStore } from './stores/store.js';
import { openLocalAudit, type LocalAudit, type LocalAuditOptions } from './audit/local.js';
import type { HmacSha256 } from '../protocol/signature.js';

/** node:crypto's HMAC-SHA256: synchronous, a fraction of WebCrypto's cost in Node (a thread-pool job per call). */
export const nodeHmacSha256: HmacSha256 = (secret, octets) => createHmac('sha256', secret).update(octets).digest();

/** The worker's address could not be listened on (EADDRINUSE, EACCES, EADDRNOTAVAIL): one line for the user. */
export class WorkerListenError extends IdentgateError {
  readonly code = 'ERR_IDENTGATE_LISTEN';
  override readonly userError = true;
  constructor(where: string, cause: NodeJS.ErrnoException) {
    const why =
      cause.code === 'EADDRINUSE'
        ? 'the address is already in use (another identgate worker running?)'
        : cause.code === 'EACCES'
          ? 'ports below 1024 need privileges; pick a port of 1024 or more'
          : cause.code === 'EADDRNOTAVAIL'
            ? 'no such local address on this host'
            : (cause.code ?? cause.message);
    super(`cannot listen on ${where}: ${why}`, { cause });
  }
}

export interface NodeWorkerOptions {
  hostname: string;
  /** 0 picks a free port. */
  port: number;
  policyFile?: string | undefined;
  secrets: readonly string[] | (() => readonly string[]);
  adminTokens?: readonly string[] | (() => readonly string[]) | undefined;
  log?: ((entry: Record<string, unknown>) => void) | undefined;
  /** Build and log each request's decisions (default true); false when the log level hides them anyway. */
  logDecisions?: boolean;
  /** Watch the policy file for changes. Default true. */
  watchPolicy?: boolean;
  /** The audit database (--audit FILE, docs/audit.md); without it nothing is recorded. `log` is the worker's. */
  audit?: Omit<LocalAuditOptions, 'log'> | undefined;
}

export interface NodeWorker {
  /** Base URL, e.g. http://127.0.0.1:8787 (IPv6 in brackets). */
  readonly url: string;
  readonly port: number;
  readonly store: PolicyStore;
  /** The audit database, when --audit was given. */
  readonly audit: LocalAudit | undefined;
  /** Reads the policy file again (SIGHUP); undefined when there is no file. */
  reload(): Promise<PolicyReload | undefined>;
  close(): Promise<void>;
}

/**
 * Opens the policy (failing with a one-line FileStoreError when the file is
 * missing or invalid), then listens.
 *
 * @example
 * const worker = await startNodeWorker({ hostname: '::1', port: 0, secrets: ['s3cret'] });
 */
export async function startNodeWorker(options: NodeWorkerOptions): Promise<NodeWorker> {
  const log = options.log ?? (() => {});
  const fileStore: FileStore | undefined = options.policyFile
    ? await openFileStore(options.policyFile, { log, watch: options.watchPolicy ?? true })
    : undefined;
  const store = fileStore ?? createMemoryStore();
  let audit: LocalAudit | undefined;
  try {
    audit = options.audit ? await openLocalAudit({ ...options.audit, log }) : undefined;
  } catch (error) {
    fileStore?.close();
    throw error;
  }
  const app = createApp({
    store,
    secrets: options.secrets,
    adminTokens: options.adminTokens ?? [],
    mode: 'service',
    log,
    audit,
    logDecisions: options.logDecisions ?? true,
    hmac: nodeHmacSha256,
  });

  let server: Server;
  try {
    const where = options.hostname.includes(':')
      ? `[${options.hostname}]:${options.port}`
      : `${options.hostname}:${options.port}`;
    server = await listenApp(app, options.hostname, options.port).catch((error: NodeJS.ErrnoException) => {
      throw new WorkerListenError(where, error);
    });
  } catch (error) {
    fileStore?.close();
    await audit?.close();
    throw error;
  }
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  log({ msg: 'worker_listening', url: `http://${host}:${address.port}` });

  return {
    url: `http://${host}:${address.port}`,
    port: address.port,
    store,
    audit,
    reload: () => fileStore?.reload() ?? Promise.resolve(undefined),
    async close() {
      fileStore?.close();
      await new Promise<void>((resolvePromise, reject) => {
        server.close((error) => (error ? reject(error) : resolvePromise()));
        server.closeAllConnections();
      });
      // After the last request: its records are written before the file closes.
      await audit?.close();
    },
  };
}

/**
 * Serves a Hono app with @hono/node-server; rejects with the listen error (EADDRINUSE, ...).
 *
 * @example
 * const server = await listenApp(app, '127.0.0.1', 0);
 */
export function listenApp(
  app: { fetch: (request: Request) => Response | Promise<Response> },
  hostname: string,
  port: number,
): Promise<Server> {
  return new Promise<Server>((resolvePromise, reject) => {
    const created = serve({ fetch: app.fetch, hostname, port }) as Server;
    created.once('error', reject);
    created.once('listening', () => {
      created.off('error', reject);
      resolvePromise(created);
    });
  });
}
