/**
 * The NAT lookup's text fallback: /proc/net/nf_conntrack as the kernel prints
 * it (literal lines copied from a masquerading router), read from a file here,
 * and the nat FactSource on top of it. ctnetlink itself is exercised in network
 * namespaces by test/interop/nat.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addressText, createNatSource, type NatLookupError } from '../../../gateway/nat/conntrack.js';

const TABLE = [
  // An inner host masqueraded out to an IRC server (source NAT), port kept.
  'ipv4     2 tcp      6 431999 ESTABLISHED src=10.77.0.2 dst=198.51.100.2 sport=40002 dport=6667 src=198.51.100.2 dst=198.51.100.1 sport=6667 dport=40002 [ASSURED] mark=0 zone=0 use=2',
  // Another, whose port the router changed.
  'ipv4     2 tcp      6 431999 ESTABLISHED src=10.77.0.3 dst=198.51.100.2 sport=40002 dport=6667 src=198.51.100.2 dst=198.51.100.1 sport=6667 dport=61000 [ASSURED] mark=0 zone=0 use=2',
  // The same tuple in UDP: never an answer for TCP.
  'ipv4     2 udp      17 29 src=10.77.0.4 dst=198.51.100.2 sport=5000 dport=6667 src=198.51.100.2 dst=198.51.100.1 sport=6667 dport=5000 mark=0 zone=0 use=2',
  // A port forwarded inward (destination NAT): the querier connected to us.
  'ipv4     2 tcp      6 300 ESTABLISHED src=198.51.100.2 dst=198.51.100.1 sport=51000 dport=80 src=10.77.0.5 dst=198.51.100.2 sport=8080 dport=51000 [ASSURED] mark=0 zone=0 use=2',
  // This host's own connection (untranslated), its socket gone.
  'ipv4     2 tcp      6 119 TIME_WAIT src=198.51.100.1 dst=198.51.100.2 sport=45000 dport=6667 src=198.51.100.2 dst=198.51.100.1 sport=6667 dport=45000 [ASSURED] mark=0 zone=0 use=2',
  // IPv6 masquerade, printed with every group in full.
  'ipv6     10 tcp      6 431999 ESTABLISHED src=fd77:0001:0000:0000:0000:0000:0000:0002 dst=fd77:0002:0000:0000:0000:0000:0000:0002 sport=40009 dport=6667 src=fd77:0002:0000:0000:0000:0000:0000:0002 dst=fd77:0002:0000:0000:0000:0000:0000:0001 sport=6667 dport=40009 [ASSURED] mark=0 zone=0 use=2',
  '',
].join('\n');

let dir = '';
let procPath = '';

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'identgate-conntrack-'));
  procPath = join(dir, 'nf_conntrack');
  writeFileSync(procPath, TABLE);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function source() {
  const errors: NatLookupError[] = [];
  const nat = createNatSource({ mode: 'auto', addonPath: null, procPath, onError: (error) => errors.push(error) });
  await nat.start();
  return { nat, errors };
}

const query = (localAddress: string, localPort: number, remoteAddress: string, remotePort: number) => ({
  localAddress,
  localPort,
  remoteAddress,
  remotePort,
});

describe('NAT lookup from /proc/net/nf_conntrack', () => {
  it('names the masqueraded inner host and its port for a query about the translated port', async () => {
    const { nat } = await source();
    expect(nat.method).toBe('procfs');
    await expect(nat.find(query('198.51.100.1', 40002, '198.51.100.2', 6667))).resolves.toEqual({
      innerAddress: '10.77.0.2',
      innerPort: 40002,
    });
    await expect(nat.find(query('198.51.100.1', 61000, '198.51.100.2', 6667))).resolves.toEqual({
      innerAddress: '10.77.0.3',
      innerPort: 40002,
    });
    await nat.close();
  });

  it('names the inner server of a port forwarded inward (the reply direction)', async () => {
    const { nat } = await source();
    await expect(nat.find(query('198.51.100.1', 80, '198.51.100.2', 51000))).resolves.toEqual({
      innerAddress: '10.77.0.5',
      innerPort: 8080,
    });
    await nat.close();
  });

  it('finds IPv6 masquerade and reports the address in its short form', async () => {
    const { nat } = await source();
    await expect(nat.find(query('fd77:2::1', 40009, 'fd77:2::2', 6667))).resolves.toEqual({
      innerAddress: 'fd77:1::2',
      innerPort: 40009,
    });
    await nat.close();
  });

  it('answers null for an unknown tuple, a UDP entry and an untranslated connection', async () => {
    const { nat, errors } = await source();
    await expect(nat.find(query('198.51.100.1', 40003, '198.51.100.2', 6667))).resolves.toBeNull();
    await expect(nat.find(query('198.51.100.1', 5000, '198.51.100.2', 6667))).resolves.toBeNull();
    await expect(nat.find(query('198.51.100.1', 45000, '198.51.100.2', 6667))).resolves.toBeNull();
    // A querier asking about a connection it is not part of finds nothing: the tuple includes its address.
    await expect(nat.find(query('198.51.100.1', 40002, '198.51.100.3', 6667))).resolves.toBeNull();
    expect(errors).toEqual([]);
    await nat.close();
  });

  it('gives the pipeline nat only when no local owner was found', async () => {
    const { nat } = await source();
    const q = query('198.51.100.1', 40002, '198.51.100.2', 6667);
    expect(nat.gatherNow!(q, { owner: { uid: 1000, userName: 'alice' } })).toEqual({});
    expect(nat.gatherNow!(q, { owner: null })).toBeUndefined(); // the file is read asynchronously
    await expect(nat.gather(q, { owner: null })).resolves.toEqual({
      nat: { innerAddress: '10.77.0.2', innerPort: 40002 },
    });
    await nat.close();
  });

  it('is off when neither ctnetlink nor the table is there, and says so with mode on', async () => {
    const auto = createNatSource({ mode: 'auto', addonPath: null, procPath: join(dir, 'missing') });
    await auto.start();
    expect(auto.method).toBe('off');
    expect(auto.gatherNow!(query('198.51.100.1', 40002, '198.51.100.2', 6667), { owner: null })).toEqual({});
    const on = createNatSource({ mode: 'on', addonPath: null, procPath: join(dir, 'missing') });
    await expect(on.start()).rejects.toThrow(/NAT lookup is on but neither ctnetlink .* nor .*missing \(ENOENT\)/);
  });

  it('shares one read of the table among lookups asked together', async () => {
    const { nat } = await source();
    const answers = await Promise.all([
      nat.find(query('198.51.100.1', 40002, '198.51.100.2', 6667)),
      nat.find(query('198.51.100.1', 61000, '198.51.100.2', 6667)),
      nat.find(query('fd77:2::1', 40009, 'fd77:2::2', 6667)),
    ]);
    expect(answers.map((answer) => answer?.innerAddress)).toEqual(['10.77.0.2', '10.77.0.3', 'fd77:1::2']);
    await nat.close();
  });
});

describe('addressText', () => {
  it('writes IPv6 in RFC 5952 form', () => {
    const bytes = (groups: number[]) => Uint8Array.from(groups.flatMap((group) => [group >> 8, group & 0xff]));
    expect(addressText(bytes([0xfd77, 1, 0, 0, 0, 0, 0, 2]))).toBe('fd77:1::2');
    expect(addressText(bytes([0, 0, 0, 0, 0, 0, 0, 1]))).toBe('::1');
    expect(addressText(bytes([0x2001, 0xdb8, 0, 1, 0, 0, 0, 1]))).toBe('2001:db8:0:1::1');
    expect(addressText(bytes([1, 2, 3, 4, 5, 6, 7, 8]))).toBe('1:2:3:4:5:6:7:8');
    expect(addressText(Uint8Array.of(10, 77, 0, 2))).toBe('10.77.0.2');
  });
});
