import { assignedVips, nodeMacs, TOPIC_LEASES, TOPIC_PEERS, TOPIC_VIPS } from '../api/agent-protocol.js';
import type { Kv, KvWatch } from '../api/kv.js';
import { type Clock, systemClock } from '../clock.js';
import type { Informer } from '../controllers/informer.js';
import { decodeLease, LEASE_PREFIX, type Lease } from '../flannel-hostgw/index.js';
import type { Logger } from '../log.js';
import type { ServiceRelay } from './service-relay.js';

export { TOPIC_LEASES, TOPIC_PEERS, TOPIC_VIPS } from '../api/agent-protocol.js';

/** Where the relay pushes: the tunnel server's sessions. */
interface PushTarget {
  push(node: string, topic: string, payload: unknown): boolean;
  readonly sessions: ReadonlyMap<string, unknown>;
}

/** Options of {@link Relay}. */
interface RelayOptions {
  nodes: Informer<'nodes'>;
  kv: Kv;
  target: PushTarget;
  clusterCidr: readonly string[];
  logger: Logger;
  /** Time source for the pause before listing the leases again [the system clock]. */
  clock?: Clock;
  /** The Services each node serves (`vipmesh/services`), pushed with the rest when a session comes up. */
  services?: ServiceRelay;
}

/** Pause before listing the leases again after their watch ended. */
const RESYNC_DELAY_MS = 500;

/**
 * Every server relays the datastore's decisions to the agents connected to it: a node's VIP assignment
 * (its Node's `status.vips`) whenever it changes and when its session comes up, and the lease set (all
 * nodes) whenever a lease changes. The master writes, every server pushes; an agent may be connected to
 * any server. Every node is also sent the MACs of all nodes' interfaces (when they change and when its
 * session comes up): an agent that lost its server trusts a claim on a VIP only from one of them. With a
 * {@link ServiceRelay}, each node also gets the Services whose VIPs it holds (`vipmesh/services`).
 */
export class Relay {
  readonly #o: RelayOptions;
  readonly #clock: Clock;
  readonly #leases = new Map<string, Lease>();
  readonly #pushed = new Map<string, string>();
  /** The node MAC list last computed, as JSON. */
  #macs = '[]';
  #watch: KvWatch | undefined;
  #leasesQueued = false;
  #closed = false;

  constructor(o: RelayOptions) {
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
  }

  /** Load the leases, watch them and the nodes. The nodes informer must be started. */
  async start(): Promise<void> {
    await this.#syncLeases();
    this.#o.services?.start();
    this.#o.nodes.on('change', this.#onNode);
  }

  /** List the leases and watch from there; when the watch ends (compaction, datastore lost), again. */
  async #syncLeases(): Promise<void> {
    const { pairs, revision } = await this.#o.kv.list(LEASE_PREFIX);
    this.#leases.clear();
    for (const p of pairs) this.#setLease(p.key, p.value);
    if (this.#closed) return;
    this.#watch = await this.#o.kv.watch(LEASE_PREFIX, revision + 1, {
      event: (e) => {
        if (e.type === 'delete') this.#leases.delete(e.key);
        else this.#setLease(e.key, e.value);
        this.#queueLeases();
      },
      error: (err) => {
        this.#o.logger.warn({ err: err.message }, 'lease watch ended; listing again');
        this.#resync();
      },
    });
  }

  #resync(): void {
    if (this.#closed) return;
    void this.#watch?.close().catch(() => undefined);
    this.#watch = undefined;
    this.#clock.setTimeout(() => {
      this.#syncLeases()
        .then(() => this.#queueLeases())
        .catch(() => this.#resync());
    }, RESYNC_DELAY_MS);
  }

  readonly #onNode = (e: { key: string }): void => {
    if (this.#o.target.sessions.has(e.key)) this.#pushVips(e.key, false);
    const macs = nodeMacs(this.#o.nodes.items.values());
    const text = JSON.stringify(macs);
    if (text === this.#macs) return;
    this.#macs = text;
    for (const node of this.#o.target.sessions.keys()) this.#o.target.push(node, TOPIC_PEERS, { macs });
  };

  #setLease(key: string, value: Buffer): void {
    try {
      this.#leases.set(key, decodeLease(key, value));
    } catch {
      this.#leases.delete(key); // not a host-gw lease of ours
    }
  }

  /** A session to `node` came up (or was replaced): push its assignment and the leases. */
  sessionUp(node: string): void {
    this.#pushVips(node, true);
    this.#o.target.push(node, TOPIC_PEERS, { macs: nodeMacs(this.#o.nodes.items.values()) });
    this.#o.target.push(node, TOPIC_LEASES, this.#leasePayload());
    this.#o.services?.sessionUp(node);
  }

  #pushVips(node: string, force: boolean): void {
    const vips = assignedVips(this.#o.nodes.items.get(node));
    const text = JSON.stringify(vips);
    if (!force && this.#pushed.get(node) === text) return;
    if (this.#o.target.push(node, TOPIC_VIPS, { vips })) {
      this.#pushed.set(node, text);
      this.#o.logger.debug({ node, vips: vips.map((v) => v.ip) }, 'pushed the assignment');
    }
  }

  #leasePayload(): { clusterCidr: readonly string[]; leases: Lease[] } {
    return { clusterCidr: this.#o.clusterCidr, leases: [...this.#leases.values()] };
  }

  #queueLeases(): void {
    if (this.#leasesQueued) return;
    this.#leasesQueued = true;
    setImmediate(() => {
      this.#leasesQueued = false;
      if (this.#closed) return;
      const payload = this.#leasePayload();
      for (const node of this.#o.target.sessions.keys()) this.#o.target.push(node, TOPIC_LEASES, payload);
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#o.nodes.off('change', this.#onNode);
    this.#o.services?.close();
    await this.#watch?.close();
  }
}
