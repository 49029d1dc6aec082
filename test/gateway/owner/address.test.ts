/**
 * The pure parts of owner lookup: turning query addresses into connection
 * ends (IPv4-mapped folding), the /proc/net/tcp text of an address, passwd
 * parsing and which socket states count as an owned connection.
 */
import { describe, expect, it } from 'vitest';
import {
  addressBytes,
  connectionEnds,
  formatAddress,
  mappedBytes,
  procAddressHex,
} from '../../../gateway/owner/address.js';
import { parsePasswd } from '../../../gateway/owner/passwd.js';
import { isOwnedConnection, TCP_STATE } from '../../../gateway/owner/tcp-state.js';

describe('connection ends', () => {
  it('folds IPv4-mapped IPv6 addresses to IPv4', () => {
    expect(addressBytes('::ffff:127.0.0.1')).toEqual(Uint8Array.of(127, 0, 0, 1));
    expect(addressBytes('::ffff:7f00:1')).toEqual(Uint8Array.of(127, 0, 0, 1));
    expect(addressBytes('0:0:0:0:0:ffff:10.1.2.3')).toEqual(Uint8Array.of(10, 1, 2, 3));
  });

  it('expands IPv6 addresses to 16 bytes', () => {
    expect(addressBytes('::1')).toEqual(Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1));
    expect(addressBytes('2001:db8::8:800:200c:417a')).toEqual(
      Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0x08, 0x08, 0, 0x20, 0x0c, 0x41, 0x7a),
    );
    expect(addressBytes('fe80::1%eth0')?.[15]).toBe(1);
    expect(addressBytes('::')).toEqual(new Uint8Array(16));
  });

  it('does not fold IPv4-compatible or other IPv6 addresses', () => {
    expect(addressBytes('::127.0.0.1')).toHaveLength(16);
    expect(addressBytes('::fffe:127.0.0.1')).toHaveLength(16);
  });

  it('rejects what is not an IP address', () => {
    expect(addressBytes('localhost')).toBeNull();
    expect(addressBytes('1.2.3')).toBeNull();
    expect(addressBytes('')).toBeNull();
  });

  it('puts a mapped end and an IPv4 end in one IPv4 connection', () => {
    expect(
      connectionEnds({
        localAddress: '::ffff:127.0.0.1',
        localPort: 6667,
        remoteAddress: '127.0.0.2',
        remotePort: 40_000,
      }),
    ).toEqual({
      family: 4,
      local: Uint8Array.of(127, 0, 0, 1),
      localPort: 6667,
      remote: Uint8Array.of(127, 0, 0, 2),
      remotePort: 40_000,
    });
  });

  it('has no connection between an IPv4 end and a true IPv6 end, or with a bad port', () => {
    expect(connectionEnds({ localAddress: '127.0.0.1', localPort: 1, remoteAddress: '::1', remotePort: 1 })).toBeNull();
    expect(connectionEnds({ localAddress: '::1', localPort: 65_536, remoteAddress: '::1', remotePort: 1 })).toBeNull();
    expect(connectionEnds({ localAddress: '::1', localPort: 1.5, remoteAddress: '::1', remotePort: 1 })).toBeNull();
  });

  it('formats bytes back to text inet_pton reads', () => {
    expect(formatAddress(Uint8Array.of(10, 0, 0, 255))).toBe('10.0.0.255');
    expect(formatAddress(addressBytes('2001:db8::1')!)).toBe('2001:db8:0:0:0:0:0:1');
    expect(formatAddress(mappedBytes(Uint8Array.of(127, 0, 0, 1)))).toBe('0:0:0:0:0:ffff:7f00:1');
  });
});

describe('/proc/net/tcp address text', () => {
  it('prints each 32-bit word in host order', () => {
    expect(procAddressHex(Uint8Array.of(127, 0, 0, 1), true)).toBe('0100007F');
    expect(procAddressHex(Uint8Array.of(127, 0, 0, 1), false)).toBe('7F000001');
    expect(procAddressHex(addressBytes('::1')!, true)).toBe('00000000000000000000000001000000');
    expect(procAddressHex(mappedBytes(Uint8Array.of(127, 0, 0, 1)), true)).toBe('0000000000000000FFFF00000100007F');
  });
});

describe('passwd parsing', () => {
  it('maps uids to the first name given', () => {
    const names = parsePasswd(
      'root:x:0:0:root:/root:/bin/sh\n# comment\ntoor:x:0:0::/:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n+nis\nbroken:x:notanumber:0::/:\n',
    );
    expect([...names]).toEqual([
      [0, 'root'],
      [1000, 'alice'],
    ]);
  });
});

describe('owned connection states', () => {
  it('counts connections a process holds', () => {
    expect(isOwnedConnection(TCP_STATE.ESTABLISHED, 1234)).toBe(true);
    expect(isOwnedConnection(TCP_STATE.CLOSE_WAIT, 1234)).toBe(true);
    expect(isOwnedConnection(TCP_STATE.FIN_WAIT2, 1234)).toBe(true);
  });

  it('does not count listeners, handshakes, TIME_WAIT or orphans', () => {
    expect(isOwnedConnection(TCP_STATE.LISTEN, 1234)).toBe(false);
    expect(isOwnedConnection(TCP_STATE.SYN_RECV, 0)).toBe(false);
    expect(isOwnedConnection(TCP_STATE.TIME_WAIT, 0)).toBe(false);
    expect(isOwnedConnection(TCP_STATE.FIN_WAIT2, 0)).toBe(false);
  });
});
