import { describe, expect, it } from 'vitest';
import { addressGroupKey, AddressGroups } from '../../../gateway/server/address-groups.js';

describe('addressGroupKey', () => {
  it('counts an IPv4 client by its address', () => {
    expect(addressGroupKey('192.0.2.7', 64)).toBe('192.0.2.7');
  });

  it('counts an IPv4-mapped IPv6 client as its IPv4 address', () => {
    expect(addressGroupKey('::ffff:192.0.2.7', 64)).toBe('192.0.2.7');
    expect(addressGroupKey('::FFFF:c000:207', 64)).toBe('192.0.2.7');
  });

  it('puts every address of one IPv6 /64 in one group, and another /64 in another', () => {
    const keys = ['2001:db8:1:2::7', '2001:db8:1:2:ffff:ffff:ffff:ffff', '2001:0db8:0001:0002:0:0:0:1'].map((a) =>
      addressGroupKey(a, 64),
    );
    expect(new Set(keys)).toEqual(new Set(['2001:db8:1:2::/64']));
    expect(addressGroupKey('2001:db8:1:3::7', 64)).toBe('2001:db8:1:3::/64');
  });

  it('cuts at any prefix length, inside a 16-bit group too', () => {
    expect(addressGroupKey('2001:db8:1:2::7', 48)).toBe('2001:db8:1::/48');
    expect(addressGroupKey('2001:db8:1:2ff::7', 56)).toBe('2001:db8:1:200::/56');
    expect(addressGroupKey('2001:db8::1', 128)).toBe('2001:db8:0:0:0:0:0:1/128');
    expect(addressGroupKey('2001:db8::2', 128)).not.toBe(addressGroupKey('2001:db8::1', 128));
  });

  it('ignores a zone index and reads an embedded IPv4 tail', () => {
    expect(addressGroupKey('fe80::1%eth0', 64)).toBe('fe80:0:0:0::/64');
    expect(addressGroupKey('64:ff9b::192.0.2.7', 96)).toBe('64:ff9b:0:0:0:0::/96');
    expect(addressGroupKey('::1', 64)).toBe('0:0:0:0::/64');
  });
});

describe('AddressGroups', () => {
  it('counts members per group, longest held first, and forgets an empty group', () => {
    const groups = new AddressGroups<string>(64);
    const key = groups.keyOf('2001:db8:1:2::7');
    groups.add(key, 'a');
    groups.add(groups.keyOf('2001:db8:1:2::8'), 'b');
    groups.add(groups.keyOf('192.0.2.1'), 'c');
    expect(groups.size(key)).toBe(2);
    expect([...groups.members(key)]).toEqual(['a', 'b']);
    groups.remove(key, 'a');
    groups.remove(key, 'a');
    groups.remove(key, 'b');
    expect(groups.size(key)).toBe(0);
    expect([...groups.members(key)]).toEqual([]);
    expect(groups.size('192.0.2.1')).toBe(1);
  });
});
