/**
 * An IdentServer's open connections in eviction order (stalest input first), as an intrusive doubly-linked list:
 * O(1) add, remove and touch with no allocation (a Map kept dead connections alive; see docs/internals.md).
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
