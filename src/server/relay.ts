import {
  assignedVips,
  chunkDelta,
  FEATURE_VIPS_DELTA,
  featuresOf,
  nodeMacs,
  TOPIC_LEASES,
  TOPIC_PEERS,
  TOPIC_VIPS,
  TOPIC_VIPS_DELTA,
  type VipAssignment,
} from '../api/agent-protocol.js';
import type { AssignmentIndex, HolderChange, VipHolder } from '../api/assignments.js';
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
  /** Every VIP's holder (started). */
  holders: AssignmentIndex;
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
 * Every server relays the datastore's decisions to the agents connected to it: a node's VIPs (the
 * assignment keys naming it) when its session comes up and then each change, and the lease set (all
 * nodes) whenever a lease changes. The master writes, every server pushes; an agent may be connected to
 * any server. Every node is also sent the MACs of all nodes' interfaces (when they change and when its
 * session comes up): an agent that lost its server trusts a claim on a VIP only from one of them. With a
 * {@link ServiceRelay}, each node also gets every Service that has a VIP (`vipmesh/services`).
 *
 * An agent that takes deltas ({@link FEATURE_VIPS_DELTA}) is sent its whole set in messages of a bounded
 * size when its session comes up, then only the VIPs it gains or loses; an older agent is sent its whole
 * set as one message on every change, as before.
 */
export class Relay {
  readonly #o: RelayOptions;
  readonly #clock: Clock;
  readonly #leases = new Map<string, Lease>();
  /** Per node without deltas: the whole set last pushed, as JSON. */
  readonly #pushed = new Map<string, string>();
  /** Nodes whose current session takes deltas. */
  readonly #deltas = new Set<string>();
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
    this.#o.holders.on('change', this.#onHolders);
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
    // Only a Node still listing its VIPs in its status (the old layout) has an assignment that changes here.
    if (this.#o.target.sessions.has(e.key) && this.#legacy(e.key) !== undefined)
      this.#pushWhole(e.key, false);
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

  /**
   * A session to `node` came up (or was replaced): push its assignment and the leases. `registration` is
   * what the agent registered (its `features` say whether it takes deltas).
   */
  sessionUp(node: string, registration?: unknown): void {
    if (featuresOf(registration).includes(FEATURE_VIPS_DELTA)) this.#deltas.add(node);
    else this.#deltas.delete(node);
    this.#pushWhole(node, true);
    this.#o.target.push(node, TOPIC_PEERS, { macs: nodeMacs(this.#o.nodes.items.values()) });
    this.#o.target.push(node, TOPIC_LEASES, this.#leasePayload());
    this.#o.services?.sessionUp(node, registration);
  }

  /** What `node` must hold: its assignment keys, or the VIP list of the old layout while it has no keys. */
  #assigned(node: string): VipAssignment[] {
    const keys = this.#o.holders.vipsOf(node);
    if (keys.size === 0) return this.#legacy(node) ?? [];
    return [...keys].map(([ip, h]) => assignment(ip, h));
  }

  #legacy(node: string): VipAssignment[] | undefined {
    if (this.#o.holders.vipsOf(node).size > 0) return undefined;
    const n = this.#o.nodes.items.get(node);
    return n?.status?.vips === undefined ? undefined : assignedVips(n);
  }

  /** Push `node` its whole set: as delta messages with `reset`, or as one {@link TOPIC_VIPS} message. */
  #pushWhole(node: string, force: boolean): void {
    const vips = this.#assigned(node);
    const text = JSON.stringify(vips);
    if (!force && this.#pushed.get(node) === text) return;
    if (this.#deltas.has(node)) {
      this.#pushed.set(node, text);
      this.#pushDelta(node, { reset: true, add: vips });
      return;
    }
    if (this.#o.target.push(node, TOPIC_VIPS, { vips })) {
      this.#pushed.set(node, text);
      this.#o.logger.debug({ node, vips: vips.length }, 'pushed the assignment');
    }
  }

  #pushDelta(
    node: string,
    delta: { reset?: boolean; add: VipAssignment[]; remove?: string[]; moved?: string[] },
  ): void {
    for (const m of chunkDelta(delta)) if (!this.#o.target.push(node, TOPIC_VIPS_DELTA, m)) return;
    this.#o.logger.debug(
      { node, add: delta.add.length, remove: delta.remove?.length ?? 0, reset: delta.reset === true },
      'pushed an assignment change',
    );
  }

  /** Holders changed: each connected node gets what it gained and lost (or, without deltas, its set). */
  readonly #onHolders = (changes: HolderChange[]): void => {
    // The Services relay learns the new holders first: their health reports are taken from now on.
    this.#o.services?.holdersChanged(changes);
    const per = new Map<string, { add: VipAssignment[]; remove: string[]; moved: string[] }>();
    const of = (node: string) => {
      let d = per.get(node);
      if (d === undefined) {
        d = { add: [], remove: [], moved: [] };
        per.set(node, d);
      }
      return d;
    };
    for (const { vip, before, after } of changes) {
      if (before !== undefined && before.node !== after?.node) {
        const d = of(before.node);
        d.remove.push(vip);
        // Another node holds it now: the old holder answers until that node announces it.
        if (after !== undefined) d.moved.push(vip);
      }
      if (after !== undefined) of(after.node).add.push(assignment(vip, after));
    }
    for (const [node, d] of per) {
      if (!this.#o.target.sessions.has(node)) continue;
      if (this.#deltas.has(node)) this.#pushDelta(node, d);
      else this.#pushWhole(node, false);
    }
  };

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
    this.#o.holders.off('change', this.#onHolders);
    await this.#watch?.close();
  }
}

function assignment(ip: string, h: VipHolder): VipAssignment {
  return h.interfaces === undefined ? { ip } : { ip, interfaces: [...h.interfaces] };
}
