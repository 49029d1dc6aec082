/**
 * How the bench starts identgate: the command lines for `serve` (embedded
 * policy, or forwarding to an upstream worker) and `worker`, built in one
 * place so a change of CLI flags is a change here only, and the scrape of the
 * gateway's Prometheus metrics that yields queries per HTTP request (how well
 * the forwarder batches).
 *
 * @example
 *   const cli = gatewayCli('/work/main');
 *   if (!cli.unavailable()) spawn(process.execPath, cli.serveEmbedded({ port: 1113, policy: 'examples/policy.json' }).args);
 */
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';

/**
 * Command lines for dist/gateway/cli/main.js under root.
 *
 * @example
 *   const { args, display } = gatewayCli(root).worker({ port: 8787, policy, secretFile });
 */
export function gatewayCli(root, distDir = join(root, 'dist')) {
  const cliPath = join(distDir, 'gateway', 'cli', 'main.js');
  const show = (args) => `node ${args.map((a) => (a.startsWith(root) ? relative(root, a) : a)).join(' ')}`;
  // Without the policy file the worker's built-in default applies (reveal a found owner).
  const policyArgs = (policy) => (policy && existsSync(policy) ? ['--policy', policy] : []);
  const spec = (args, extra = {}) => ({ args, display: show(args), ...extra });
  // Every bench client comes from 127.0.0.1, so the per-address limit (a guard
  // against one abusive peer, default 32) and the global one (default 4096)
  // are raised to let 32 load clients plus the 10,000-connection idle flood in.
  const serve = (answerArgs, { port, metricsPort, upstream, transport }) => {
    // As an operator would run it for throughput: embedded, one gateway process per core
    // (--workers auto), since the gateway does all the work; forwarding to a worker, one
    // process (the default), since the worker is the bottleneck and one process makes
    // the biggest batches (two gateways split the queries into two streams of batches).
    const workers = upstream ? '1' : 'auto';
    const args = [
      cliPath,
      'serve',
      '--listen',
      `127.0.0.1:${port}`,
      ...answerArgs,
      '--owner-lookup',
      'on',
      '--max-per-address',
      '20000',
      '--max-connections',
      '20000',
      '--workers',
      workers,
    ];
    if (metricsPort) args.push('--metrics', `127.0.0.1:${metricsPort}`);
    // By default the gateway's own choice (native where built); 'node' for the side-by-side row.
    if (transport) args.push('--transport', transport);
    return spec(args, { upstream, metricsUrl: metricsPort ? `http://127.0.0.1:${metricsPort}/metrics` : undefined });
  };
  return {
    unavailable() {
      if (!existsSync(cliPath))
        return `${relative(root, cliPath)} not built (npm run build; the CLI is gateway/cli/main.ts)`;
      return undefined;
    },
    serveEmbedded({ port, policy, metricsPort, transport }) {
      return serve(policyArgs(policy), { port, metricsPort, transport });
    },
    worker({ port, policy, secretFile }) {
      return spec([
        cliPath,
        'worker',
        '--listen',
        `127.0.0.1:${port}`,
        ...policyArgs(policy),
        '--secret-file',
        secretFile,
      ]);
    },
    serveUpstream({ port, upstream, secretFile, metricsPort }) {
      return serve(['--upstream', upstream, '--secret-file', secretFile, '--gateway-name', 'bench'], {
        port,
        metricsPort,
        upstream,
      });
    },
  };
}

/**
 * Parse Prometheus text and return sum/count of the first histogram or summary
 * whose name says it counts queries per upstream request (identgate_upstream_queries_per_request), or 'n/a'.
 *
 * @example
 *   batchRatio('identgate_upstream_queries_per_request_sum 300\nidentgate_upstream_queries_per_request_count 100\n'); // '3.00'
 */
export function batchRatio(text) {
  const sums = new Map();
  const counts = new Map();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*?)_(sum|count)(?:\{[^}]*\})?\s+([0-9.eE+-]+)/.exec(line);
    if (!m || !/queries_per_request|batch_size/i.test(m[1])) continue;
    const target = m[2] === 'sum' ? sums : counts;
    target.set(m[1], (target.get(m[1]) ?? 0) + Number(m[3]));
  }
  for (const [name, sum] of sums) {
    const count = counts.get(name);
    if (count) return (sum / count).toFixed(2);
  }
  return 'n/a';
}

/**
 * Fetch the gateway's metrics and compute queries per HTTP request ('n/a' if unavailable).
 *
 * @example
 *   const q = await queriesPerHttpRequest('http://127.0.0.1:9113/metrics');
 */
export async function queriesPerHttpRequest(url) {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(3000) });
    if (!response.ok) return `n/a (metrics: HTTP ${response.status})`;
    return batchRatio(await response.text());
  } catch (error) {
    return `n/a (metrics: ${error.message})`;
  }
}
