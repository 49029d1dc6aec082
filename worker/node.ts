/**
 * The policy worker as a Node HTTP service (@hono/node-server) for `identgate worker`: signed lookups,
 * the file store when given a policy file (reloaded on change and reload()), else memory from DEFAULT_POLICY.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { serve } from '@hono/node-server';
import { createApp } from './app.js';
import { createMemoryStore } from './stores/memory.js';
import { openFileStore, type FileStore } from './stores/file.js';
import type { PolicyStore } from './stores/store.js';

export interface NodeWorkerOptions {
  hostname: string;
  /** 0 picks a free port. */
  port: number;
  policyFile?: string | undefined;
  secrets: readonly string[] | (() => readonly string[]);
  adminTokens?: readonly string[] | (() => readonly string[]) | undefined;
  log?: ((entry: Record<string, unknown>) => void) | undefined;
  /** Watch the policy file for changes. Default true. */
  watchPolicy?: boolean;
}

export interface NodeWorker {
  /** Base URL, e.g. http://127.0.0.1:8787 (IPv6 in brackets). */
  readonly url: string;
  readonly port: number;
  readonly store: PolicyStore;
  /** Reads the policy file again (SIGHUP); false when it was refused or unchanged or there is no file. */
  reload(): Promise<boolean>;
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
  const app = createApp({
    store,
    secrets: options.secrets,
    adminTokens: options.adminTokens ?? [],
    mode: 'service',
    log,
  });

  let server: Server;
  try {
    server = await new Promise<Server>((resolvePromise, reject) => {
      const created = serve({ fetch: app.fetch, hostname: options.hostname, port: options.port }) as Server;
      created.once('error', reject);
      created.once('listening', () => {
        created.off('error', reject);
        resolvePromise(created);
      });
    });
  } catch (error) {
    fileStore?.close();
    throw error;
  }
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  log({ msg: 'worker_listening', url: `http://${host}:${address.port}` });

  return {
    url: `http://${host}:${address.port}`,
    port: address.port,
    store,
    reload: () => fileStore?.reload() ?? Promise.resolve(false),
    close() {
      fileStore?.close();
      return new Promise<void>((resolvePromise, reject) => {
        server.close((error) => (error ? reject(error) : resolvePromise()));
        server.closeAllConnections();
      });
    },
  };
}
