/**
 * The set of an IdentServer's open connections, in eviction order (stalest
 * query first): an intrusive doubly-linked list, so adding, removing and
 * moving a connection to the newest end are O(1) and allocate nothing.
 *
 * Why not a Map: measured on the 1-query-per-connection benchmark, a Map of
 * live connections with this churn made 23–28% of the young generation
 * survive each scavenge (V8 then copies and promotes dead connections with
 * their sockets), against 9.4% with this list, the same as tracking nothing.
 * A removed node keeps no pointer to its neighbours, so a dead connection
 * never keeps another one alive.
 *
 * @example
 * const live = new LiveConnections<IdentConnection>();
 * live.add(connection);          // newest
 * live.touch(connection);        // it just asked: newest again
 * for (const c of live) { ... }  // stalest first
 * live.remove(connection);
 */

/** The links a connection carries for the list; only LiveConnections writes them. */
export interface LiveNode<T> {
  liveOlder: T | null;
  liveNewer: T | null;
}

export class LiveConnections<T extends LiveNode<T>> {
  #stalest: T | null = null;
  #newest: T | null = null;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  has(node: T): boolean {
    return node.liveOlder !== null || this.#stalest === node;
  }

  /** Adds `node` as the newest. */
  add(node: T): void {
    node.liveOlder = this.#newest;
    node.liveNewer = null;
    if (this.#newest) this.#newest.liveNewer = node;
    else this.#stalest = node;
    this.#newest = node;
    this.#size++;
  }

  /** Removes `node`; a node that is not in the list is ignored. */
  remove(node: T): void {
    if (!this.has(node)) return;
    if (node.liveOlder) node.liveOlder.liveNewer = node.liveNewer;
    else this.#stalest = node.liveNewer;
    if (node.liveNewer) node.liveNewer.liveOlder = node.liveOlder;
    else this.#newest = node.liveOlder;
    node.liveOlder = null;
    node.liveNewer = null;
    this.#size--;
  }

  /** Makes `node` the newest (it just asked a query). */
  touch(node: T): void {
    if (this.#newest === node || !this.has(node)) return;
    this.remove(node);
    this.add(node);
  }

  /** Stalest first; removing the current node while iterating is safe. */
  *[Symbol.iterator](): IterableIterator<T> {
    for (let node = this.#stalest; node !== null; ) {
      const newer: T | null = node.liveNewer;
      yield node;
      node = newer;
    }
  }
}
