import { describe, expect, it } from 'vitest';
import { LiveConnections, type LiveNode } from '../../../gateway/server/live-connections.js';

class Node implements LiveNode<Node> {
  liveOlder: Node | null = null;
  liveNewer: Node | null = null;
  constructor(readonly name: string) {}
}

const names = (list: LiveConnections<Node>) => [...list].map((n) => n.name);

function listOf(...nodeNames: string[]) {
  const list = new LiveConnections<Node>();
  const nodes = nodeNames.map((name) => new Node(name));
  for (const node of nodes) list.add(node);
  return { list, nodes };
}

describe('LiveConnections (the server set of open connections, stalest first)', () => {
  it('iterates in the order connections were added, stalest first, and counts them', () => {
    const { list } = listOf('a', 'b', 'c');
    expect(names(list)).toEqual(['a', 'b', 'c']);
    expect(list.size).toBe(3);
  });

  it('moves a connection that asked a query to the newest end', () => {
    const { list, nodes } = listOf('a', 'b', 'c');
    list.touch(nodes[0]!);
    expect(names(list)).toEqual(['b', 'c', 'a']);
    list.touch(nodes[2]!);
    expect(names(list)).toEqual(['b', 'a', 'c']);
    list.touch(nodes[2]!);
    expect(names(list)).toEqual(['b', 'a', 'c']);
    expect(list.size).toBe(3);
  });

  it('removes from the middle and both ends, and a removed node keeps no links', () => {
    const { list, nodes } = listOf('a', 'b', 'c', 'd');
    list.remove(nodes[1]!);
    expect(names(list)).toEqual(['a', 'c', 'd']);
    list.remove(nodes[0]!);
    list.remove(nodes[3]!);
    expect(names(list)).toEqual(['c']);
    expect(list.size).toBe(1);
    for (const removed of [nodes[0]!, nodes[1]!, nodes[3]!]) {
      expect([removed.liveOlder, removed.liveNewer]).toEqual([null, null]);
      expect(list.has(removed)).toBe(false);
    }
  });

  it('ignores removing or touching a node twice or one that was never added', () => {
    const { list, nodes } = listOf('a', 'b');
    list.remove(nodes[0]!);
    list.remove(nodes[0]!);
    list.touch(nodes[0]!);
    list.remove(new Node('stranger'));
    expect(names(list)).toEqual(['b']);
    expect(list.size).toBe(1);
  });

  it('lets the current node be removed while iterating (eviction, shutdown)', () => {
    const { list } = listOf('a', 'b', 'c');
    const seen: string[] = [];
    for (const node of list) {
      seen.push(node.name);
      list.remove(node);
    }
    expect(seen).toEqual(['a', 'b', 'c']);
    expect(list.size).toBe(0);
    expect(names(list)).toEqual([]);
  });

  it('is usable again after being emptied', () => {
    const { list, nodes } = listOf('a');
    list.remove(nodes[0]!);
    list.add(nodes[0]!);
    list.add(new Node('b'));
    expect(names(list)).toEqual(['a', 'b']);
  });
});
