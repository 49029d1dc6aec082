/**
 * The NAT rig for the NAT interop suites: three network namespaces created
 * for the test and removed after it,
 *   inner  10.77.0.2, fd77:1::2      a LAN host behind the router; 10.77.0.3 plays a container
 *   router 10.77.0.1, fd77:1::1 | 198.51.100.1, fd77:2::1   masquerades inner (nftables),
 *                                    and forwards its port 8080 to inner's 80
 *   outer  198.51.100.2, fd77:2::2   the IRC server, which asks the router's port 113
 *          198.51.100.3, fd77:2::3   another host there (a querier that is not the connection's far end)
 * joined by two veth pairs. Nothing is routed anywhere but between these
 * three namespaces; every address is one of the above. Processes run in a
 * namespace through `ip netns exec`; an `Agent` (peers/netns-agent.mjs) is a
 * TCP peer the test drives line by line.
 *
 * @example
 * const rig = await createNatRig();
 * const irc = await rig.agent('outer');
 * await irc.ask({ op: 'listen', host: '::', port: 6667 });
 * await rig.destroy();
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { PEERS_DIR, run, startService, type RunResult, type Service } from './netns.js';

export const ADDRESSES = {
  inner4: '10.77.0.2',
  inner6: 'fd77:1::2',
  /** A second address of the inner namespace: the "container" a fake Docker engine names. */
  container4: '10.77.0.3',
  routerIn4: '10.77.0.1',
  routerIn6: 'fd77:1::1',
  routerOut4: '198.51.100.1',
  routerOut6: 'fd77:2::1',
  outer4: '198.51.100.2',
  outer6: 'fd77:2::2',
  /** A second outer host: a querier that is not the far end of the connection it asks about. */
  stranger4: '198.51.100.3',
  stranger6: 'fd77:2::3',
} as const;

/** The router forwards this port of its outer addresses to INNER_SERVER_PORT on inner4 (destination NAT). */
export const FORWARDED_PORT = 8080;
export const INNER_SERVER_PORT = 80;

export type Namespace = 'inner' | 'router' | 'outer';

/** A TCP peer in one namespace that answers one JSON line per command (peers/netns-agent.mjs). */
export interface Agent {
  ask<T = Record<string, unknown>>(command: Record<string, unknown>): Promise<T>;
  stop(): Promise<void>;
}

export interface NatRig {
  /** The namespace's name for `ip netns exec`. */
  readonly names: Readonly<Record<Namespace, string>>;
  exec(ns: Namespace, command: string, args: readonly string[], timeoutMs?: number): Promise<RunResult>;
  /** Like exec, failing with the command's output unless it exits 0. */
  must(ns: Namespace, command: string, args: readonly string[], timeoutMs?: number): Promise<string>;
  service(ns: Namespace, command: string, args: readonly string[]): Service;
  agent(ns: Namespace): Promise<Agent>;
  /** Stops every service and agent started through the rig and deletes the namespaces. */
  destroy(): Promise<void>;
}

/**
 * Builds the three namespaces, the veth pairs, addresses, routes and the router's masquerade.
 *
 * @example
 * const rig = await createNatRig();
 */
export async function createNatRig(): Promise<NatRig> {
  const tag = `ig${process.pid.toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
  const names = { inner: `${tag}-in`, router: `${tag}-rt`, outer: `${tag}-out` } as const;
  const stoppers: (() => Promise<void>)[] = [];
  const ip = async (args: readonly string[]) => {
    const result = await run('ip', args, { timeoutMs: 10_000 });
    if (result.code !== 0) throw new Error(`ip ${args.join(' ')}: ${result.stderr.trim()}`);
  };
  const exec = (ns: Namespace, command: string, args: readonly string[], timeoutMs = 10_000) =>
    run('ip', ['netns', 'exec', names[ns], command, ...args], { timeoutMs });
  const must = async (ns: Namespace, command: string, args: readonly string[], timeoutMs?: number) => {
    const result = await exec(ns, command, args, timeoutMs);
    if (result.code !== 0)
      throw new Error(`${command} ${args.join(' ')} in ${ns}: exit ${result.code}: ${result.stderr.trim()}`);
    return result.stdout;
  };
  const destroy = async () => {
    await Promise.all(stoppers.splice(0).map((stop) => stop().catch(() => undefined)));
    for (const name of Object.values(names)) await run('ip', ['netns', 'del', name], { timeoutMs: 10_000 });
  };

  try {
    for (const name of Object.values(names)) await ip(['netns', 'add', name]);
    // veth names are per namespace once moved, but are created in ours: keep them unique.
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((end) => `${tag}${end}`) as [string, string, string, string];
    await ip(['link', 'add', a, 'netns', names.inner, 'type', 'veth', 'peer', 'name', b, 'netns', names.router]);
    await ip(['link', 'add', c, 'netns', names.router, 'type', 'veth', 'peer', 'name', d, 'netns', names.outer]);
    const plan: [Namespace, string, string[]][] = [
      ['inner', a, [`${ADDRESSES.inner4}/24`, `${ADDRESSES.container4}/24`, `${ADDRESSES.inner6}/64`]],
      ['router', b, [`${ADDRESSES.routerIn4}/24`, `${ADDRESSES.routerIn6}/64`]],
      ['router', c, [`${ADDRESSES.routerOut4}/24`, `${ADDRESSES.routerOut6}/64`]],
      [
        'outer',
        d,
        [`${ADDRESSES.outer4}/24`, `${ADDRESSES.outer6}/64`, `${ADDRESSES.stranger4}/24`, `${ADDRESSES.stranger6}/64`],
      ],
    ];
    for (const [ns, dev, addresses] of plan) {
      for (const address of addresses) {
        const extra = address.includes(':') ? ['nodad'] : [];
        await ip(['-n', names[ns], 'addr', 'add', address, 'dev', dev, ...extra]);
      }
      await ip(['-n', names[ns], 'link', 'set', dev, 'up']);
    }
    for (const ns of ['inner', 'router', 'outer'] as const) await ip(['-n', names[ns], 'link', 'set', 'lo', 'up']);
    await ip(['-n', names.inner, 'route', 'add', 'default', 'via', ADDRESSES.routerIn4]);
    await ip(['-n', names.inner, '-6', 'route', 'add', 'default', 'via', ADDRESSES.routerIn6]);
    await must('router', 'sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
    await must('router', 'nft', [
      [
        'add table inet nat',
        'add chain inet nat post { type nat hook postrouting priority srcnat ; }',
        `add rule inet nat post oifname "${c}" masquerade`,
        // A port forwarded inward: the router's 8080 is the inner host's 80.
        'add chain inet nat pre { type nat hook prerouting priority dstnat ; }',
        `add rule inet nat pre iifname "${c}" tcp dport ${FORWARDED_PORT} dnat ip to ${ADDRESSES.inner4}:${INNER_SERVER_PORT}`,
      ].join('; '),
    ]);
  } catch (error) {
    await destroy();
    throw error;
  }

  return {
    names,
    exec,
    must,
    service(ns, command, args) {
      const service = startService('ip', ['netns', 'exec', names[ns], command, ...args]);
      stoppers.push(() => service.stop());
      return service;
    },
    async agent(ns) {
      const child = spawn('ip', ['netns', 'exec', names[ns], process.execPath, join(PEERS_DIR, 'netns-agent.mjs')], {
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      const lines = createInterface({ input: child.stdout });
      const waiting: ((line: string) => void)[] = [];
      lines.on('line', (line) => waiting.shift()?.(line));
      const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
      const stop = async () => {
        child.stdin.end();
        const timer = setTimeout(() => child.kill('SIGKILL'), 2_000);
        await exited;
        clearTimeout(timer);
      };
      stoppers.push(stop);
      return {
        ask: <T>(command: Record<string, unknown>) =>
          new Promise<T>((resolve, reject) => {
            const timer = setTimeout(
              () => reject(new Error(`agent in ${ns}: no answer to ${JSON.stringify(command)}`)),
              15_000,
            );
            waiting.push((line) => {
              clearTimeout(timer);
              resolve(JSON.parse(line) as T);
            });
            child.stdin.write(`${JSON.stringify(command)}\n`);
          }),
        stop,
      };
    },
    destroy,
  };
}
