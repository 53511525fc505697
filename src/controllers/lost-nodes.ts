import { EventEmitter } from 'node:events';
import { type Node, nodeReady } from '../api/types.js';
import { type Clock, systemClock } from '../clock.js';
import type { Informer } from './informer.js';
import { conditionTime, withReady } from './node-lifecycle.js';

/** How long a verdict stands without its NotReady reaching the informer [10 s]. */
const DEFAULT_TTL_MS = 10_000;

/**
 * The nodes this server has judged lost whose NotReady is not yet in its informer. A failover otherwise
 * waits for that write and its watch event before the master places anything; with these verdicts the
 * master's assignment moves the VIPs on the verdict itself, and the NotReady is written beside it.
 *
 * A verdict ends when the informer shows the node not Ready (or deleted), when the node's session comes
 * back, when the node lifecycle decides not to write (the node reconnected, or another server speaks for
 * it), or after `ttlMs` in any case. The assignment is sticky, so a verdict that ends without a NotReady
 * does not move the VIPs back: the new holders keep them while they are Ready.
 */
export class LostNodes extends EventEmitter<{ change: [] }> {
  readonly #clock: Clock;
  readonly #ttlMs: number;
  /** Node -> when it was judged lost. */
  readonly #since = new Map<string, number>();
  readonly #nodes: Informer<'nodes'>;

  constructor(o: { nodes: Informer<'nodes'>; clock?: Clock; ttlMs?: number }) {
    super();
    this.#nodes = o.nodes;
    this.#clock = o.clock ?? systemClock;
    this.#ttlMs = o.ttlMs ?? DEFAULT_TTL_MS;
    this.#nodes.on('change', this.#onNode);
  }

  /** `node` was judged lost now (its NotReady is being written). */
  add(node: string): void {
    this.#since.set(node, this.#clock.now());
    this.emit('change');
  }

  /** The verdict on `node` no longer stands (its session is back, or no NotReady will be written). */
  delete(node: string): void {
    if (this.#since.delete(node)) this.emit('change');
  }

  /** True while `node` stands judged lost. */
  has(node: string): boolean {
    const at = this.#since.get(node);
    if (at === undefined) return false;
    if (this.#clock.now() - at < this.#ttlMs) return true;
    this.#since.delete(node);
    return false;
  }

  /** The informer's nodes, each judged lost shown NotReady (copies; the informer's objects are untouched). */
  *overlay(nodes: Iterable<Node>): Iterable<Node> {
    for (const n of nodes) {
      if (!this.has(n.metadata.name) || nodeReady(n) !== 'True') {
        yield n;
        continue;
      }
      const at = conditionTime(this.#since.get(n.metadata.name)!);
      const conditions = withReady(
        n.status?.conditions,
        'False',
        'NodeLost',
        'judged lost by its server',
        at,
      );
      yield { ...n, status: { ...(n.status ?? {}), conditions } };
    }
  }

  close(): void {
    this.#nodes.off('change', this.#onNode);
    this.#since.clear();
  }

  readonly #onNode = (e: { type: string; key: string; object: Node }): void => {
    if (!this.#since.has(e.key)) return;
    if (e.type === 'DELETED' || nodeReady(e.object) !== 'True') this.delete(e.key);
  };
}
