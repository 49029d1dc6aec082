/**
 * Queries forwarded by a NAT router, on loopback: a "router" at 127.0.0.9
 * asks about a connection between 127.0.0.1 and an "IRC server" at
 * 127.0.0.5:PORT by its two ports only, as oidentd -f does; the source finds
 * the connection through the freshly built sock_diag addon whatever its remote
 * address, and only for accepted routers. The end-to-end case with a real
 * oidentd router in network namespaces is in test/interop/nat.test.ts.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createForwardedSource,
  inAnyBlock,
  parseAddressBlock,
  type AddressBlock,
  type ForwardedSource,
} from '../../../gateway/nat/forwarded.js';

const BUILD_SCRIPT = fileURLToPath(new URL('../../../gateway/owner/build-helper.mjs', import.meta.url));
const me = { uid: process.getuid?.() ?? -1, userName: userInfo().username };

let dir = '';
let addonPath = '';
let server: net.Server;
let client: net.Socket;
let serverPort = 0;
let source: ForwardedSource;

const block = (text: string) => parseAddressBlock(text) as AddressBlock;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'identgate-forwarded-'));
  execFileSync(process.execPath, [BUILD_SCRIPT, '--out', join(dir, 'identgate-sockdiag')]);
  addonPath = join(dir, 'identgate-sockdiag.node');
  server = net.createServer(() => {});
  server.listen(0, '127.0.0.5');
  await once(server, 'listening');
  serverPort = (server.address() as net.AddressInfo).port;
  client = net.connect({ host: '127.0.0.5', port: serverPort, localAddress: '127.0.0.1' });
  await once(client, 'connect');
  source = createForwardedSource({ from: [block('127.0.0.9')], addonPath });
  await source.start();
});

afterAll(async () => {
  client?.destroy();
  server?.close();
  await source?.close();
  rmSync(dir, { recursive: true, force: true });
});

function forwardedQuery(remoteAddress: string) {
  return { localAddress: '127.0.0.1', localPort: client.localPort!, remoteAddress, remotePort: serverPort };
}

async function gathered(remoteAddress: string) {
  const query = forwardedQuery(remoteAddress);
  return source.gatherNow!(query, { owner: null }) ?? (await source.gather(query, { owner: null }));
}

describe('forwarded queries', () => {
  it('answers an accepted router with the owner of the connection with the two ports, whatever its remote address', async () => {
    expect(await gathered('127.0.0.9')).toEqual({ owner: me });
  });

  it('leaves a query from anyone else alone', async () => {
    expect(await gathered('127.0.0.8')).toEqual({});
  });

  it('leaves a query alone when a connection with the router itself was found', () => {
    expect(source.gatherNow!(forwardedQuery('127.0.0.9'), { owner: { uid: 0, userName: 'root' } })).toEqual({});
  });

  it('finds nothing for ports no connection has', async () => {
    const query = { ...forwardedQuery('127.0.0.9'), remotePort: serverPort === 65535 ? 1 : serverPort + 1 };
    const now = source.gatherNow!(query, { owner: null });
    expect(now ?? (await source.gather(query, { owner: null }))).toEqual({ owner: null });
  });

  it('refuses to start without the addon, saying what to do', async () => {
    const broken = createForwardedSource({ from: [block('127.0.0.9')], addonPath: join(dir, 'missing.node') });
    await expect(broken.start()).rejects.toThrow(/--accept-forwarded-from needs the sock_diag addon: .*npm run build/);
  });
});

describe('parseAddressBlock', () => {
  it('takes addresses and CIDRs of both families and refuses the rest with the reason', () => {
    expect(inAnyBlock('10.77.0.1', [block('10.77.0.0/24')])).toBe(true);
    expect(inAnyBlock('::ffff:10.77.0.1', [block('10.77.0.1')])).toBe(true);
    expect(inAnyBlock('10.77.1.1', [block('10.77.0.0/24')])).toBe(false);
    expect(inAnyBlock('fd77:1::1', [block('fd77:1::/64')])).toBe(true);
    expect(inAnyBlock('fd77:2::1', [block('fd77:1::/64')])).toBe(false);
    expect(inAnyBlock('10.77.0.1', [block('fd77:1::/64')])).toBe(false);
    expect(parseAddressBlock('10.77.0.1/24')).toBe('host bits must be zero');
    expect(parseAddressBlock('10.77.0.0/33')).toBe('prefix length must be 0..32');
    expect(parseAddressBlock('fd77::/129')).toBe('prefix length must be 0..128');
    expect(parseAddressBlock('router')).toBe('"router" is not an IP address');
  });
});
