import {
  assignedVips,
  chunkServicesDelta,
  FEATURE_SERVICES_DELTA,
  featuresOf,
  type LbService,
  TOPIC_SERVICES,
  TOPIC_SERVICES_DELTA,
} from '../api/agent-protocol.js';
import type { AssignmentIndex, HolderChange } from '../api/assignments.js';
import type { Service } from '../api/types.js';
import { type BackendIndex, lbServiceOf } from '../controllers/index.js';
import type { Informer } from '../controllers/informer.js';
import type { Logger } from '../log.js';

/** Where the relay pushes: the tunnel server's sessions. */
interface PushTarget {
  push(node: string, topic: string, payload: unknown): boolean;
  readonly sessions: ReadonlyMap<string, unknown>;
}

/** Options of {@link ServiceRelay}. */
interface ServiceRelayOptions {
  nodes: Informer<'nodes'>;
  services: Informer<'services'>;
  backends: BackendIndex;
  /** Each VIP's holder (the assignment keys); absent: the VIP list in each Node's status. */
  holders?: AssignmentIndex;
  target: PushTarget;
  logger: Logger;
  /** Run `fn` after the current burst of changes [setImmediate]. */
  defer?: (fn: () => void) => void;
}

/** A Service as pushed, less its `vips` (which differ per node), and its text to compare with. */
interface Built {
  lb: Omit<LbService, 'vips'>;
  text: string;
}

function keyOf(s: Service): string {
  return `${s.metadata.namespace ?? 'default'}/${s.metadata.name}`;
}

function ingressOf(s: Service): string[] {
  return (s.status?.loadBalancer?.ingress ?? []).flatMap((i) => (typeof i.ip === 'string' ? [i.ip] : []));
}

/**
 * Pushes every node connected here every Service that has a VIP, when its session comes up and whenever
 * one of them or their backends change, whichever node holds the VIP: each node keeps the rules of every
 * Service, inert where the VIP is not a local address, so that taking a VIP over needs no Service pushed
 * and no rule written, only the address added (as kube-proxy programs every Service on every node). An
 * agent that takes deltas ({@link FEATURE_SERVICES_DELTA}) gets the whole list once per session, then only
 * the Services whose pushed form changed; an older agent gets the whole list on each change. Changes are
 * batched per tick; an index of the holders (VIP -> holder) answers which node's health reports speak
 * for a Service ({@link holds}).
 */
export class ServiceRelay {
  readonly #o: ServiceRelayOptions;
  readonly #defer: (fn: () => void) => void;
  /** Service -> its VIPs as indexed. */
  readonly #vipsOf = new Map<string, string[]>();
  /** VIP -> the node that holds it. */
  readonly #holder = new Map<string, string>();
  /** Node -> the VIPs it holds. */
  readonly #heldBy = new Map<string, Set<string>>();
  /** Service -> its pushed form (undefined: not a LoadBalancer of vipmesh's). */
  readonly #built = new Map<string, Built | undefined>();
  /** Node -> per Service last pushed to it, what it was (its built text and VIPs). */
  readonly #sent = new Map<string, Map<string, string>>();
  /** Nodes whose current session takes deltas. */
  readonly #deltas = new Set<string>();
  /** Node -> the Services to look at again ('all': push the whole list). */
  readonly #dirty = new Map<string, Set<string> | 'all'>();
  #queued = false;
  #closed = false;

  constructor(o: ServiceRelayOptions) {
    this.#o = o;
    this.#defer = o.defer ?? ((fn) => setImmediate(fn));
  }

  /** Index what the informers hold and follow their changes. */
  start(): void {
    for (const [vip, h] of this.#o.holders?.all ?? []) this.#setHolder(vip, h.node);
    for (const n of this.#o.nodes.items.values()) this.#indexNode(n.metadata.name);
    for (const s of this.#o.services.items.values()) this.#indexService(keyOf(s), s);
    this.#o.nodes.on('change', this.#onNode);
    this.#o.services.on('change', this.#onService);
    this.#o.backends.on('change', this.#onBackends);
    this.#o.holders?.on('change', this.#onHolders);
  }

  close(): void {
    this.#closed = true;
    this.#o.nodes.off('change', this.#onNode);
    this.#o.services.off('change', this.#onService);
    this.#o.backends.off('change', this.#onBackends);
    this.#o.holders?.off('change', this.#onHolders);
  }

  /**
   * A session to `node` came up: push its whole list now. `registration` is what the agent registered
   * (its `features` say whether it takes deltas).
   */
  sessionUp(node: string, registration?: unknown): void {
    if (featuresOf(registration).includes(FEATURE_SERVICES_DELTA)) this.#deltas.add(node);
    else this.#deltas.delete(node);
    this.#dirty.delete(node);
    this.#pushWhole(node);
  }

  /**
   * True when `namespace/name` was pushed to `node` and `node` holds one of its VIPs: the one node whose
   * health report speaks for the Service (the others keep its rules without checking its endpoints).
   */
  holds(node: string, key: string): boolean {
    if (!(this.#sent.get(node)?.has(key) ?? false)) return false;
    return (this.#vipsOf.get(key) ?? []).some((v) => this.#holder.get(v) === node);
  }

  /** The Services every node is to have, sorted by namespace/name. */
  services(): LbService[] {
    return this.#entries().map((e) => e.lb);
  }

  /** {@link services} with each entry's key and the text it is compared by. */
  #entries(): Array<{ key: string; lb: LbService; text: string }> {
    const out: Array<{ key: string; lb: LbService; text: string }> = [];
    for (const key of [...this.#vipsOf.keys()].sort()) {
      const e = this.#entry(key);
      if (e !== undefined) out.push({ key, ...e });
    }
    return out;
  }

  /** `key` as pushed (with all its VIPs), with the text to compare; none: not a Service to serve. */
  #entry(key: string): { lb: LbService; text: string } | undefined {
    const b = this.#build(key);
    if (b === undefined) return undefined;
    const vips = [...(this.#vipsOf.get(key) ?? [])].sort();
    if (vips.length === 0) return undefined;
    return { lb: { ...b.lb, vips } as LbService, text: `${vips.join(',')} ${b.text}` };
  }

  readonly #onNode = (e: { key: string }): void => {
    this.#indexNode(e.key);
  };

  readonly #onHolders = (changes: HolderChange[]): void => {
    this.holdersChanged(changes);
  };

  /**
   * VIPs changed holder: indexed now (the relay of VIPs calls this before it pushes the change, so the
   * new holder's first health report is taken). Nothing is pushed: every node has the VIP's Services
   * already. The index's own `change` event calls it too; a change already indexed is passed over.
   */
  holdersChanged(changes: readonly HolderChange[]): void {
    for (const c of changes) this.#setHolder(c.vip, c.after?.node);
  }

  readonly #onService = (e: { type: string; key: string; object: Service }): void => {
    this.#indexService(e.key, e.type === 'DELETED' ? undefined : e.object);
  };

  readonly #onBackends = (key: string): void => {
    if (!this.#vipsOf.has(key)) return;
    this.#rebuild(key);
  };

  /**
   * A Node changed: its VIPs are its assignment keys, or the VIP list in its status (the layout before the
   * keys) while it has none. Only what differs from the index is marked.
   */
  #indexNode(node: string): void {
    const keys = this.#o.holders?.vipsOf(node);
    const now =
      keys !== undefined && keys.size > 0
        ? new Set(keys.keys())
        : new Set(assignedVips(this.#o.nodes.items.get(node)).map((v) => v.ip));
    for (const vip of [...(this.#heldBy.get(node) ?? [])]) if (!now.has(vip)) this.#setHolder(vip, undefined);
    for (const vip of now) this.#setHolder(vip, node);
  }

  /** Index `vip` as held by `node` (none: no holder). */
  #setHolder(vip: string, node: string | undefined): void {
    const old = this.#holder.get(vip);
    if (old === node) return;
    if (old !== undefined) {
      const held = this.#heldBy.get(old);
      held?.delete(vip);
      if (held?.size === 0) this.#heldBy.delete(old);
    }
    if (node === undefined) this.#holder.delete(vip);
    else {
      this.#holder.set(vip, node);
      let held = this.#heldBy.get(node);
      if (held === undefined) {
        held = new Set();
        this.#heldBy.set(node, held);
      }
      held.add(vip);
    }
  }

  #indexService(key: string, svc: Service | undefined): void {
    const old = this.#vipsOf.get(key) ?? [];
    const vips = svc === undefined ? [] : ingressOf(svc);
    if (vips.length === 0) this.#vipsOf.delete(key);
    else this.#vipsOf.set(key, vips);
    const vipsChanged = old.length !== vips.length || old.some((v, i) => v !== vips[i]);
    this.#rebuild(key, vipsChanged);
  }

  /** Build `key` again; mark it on every node when its pushed form changed (or `force`). */
  #rebuild(key: string, force = false): void {
    const before = this.#built.get(key)?.text;
    this.#built.delete(key);
    const after = this.#build(key)?.text;
    if (force || before !== after) for (const node of this.#o.target.sessions.keys()) this.#mark(node, key);
  }

  #build(key: string): Built | undefined {
    if (this.#built.has(key)) return this.#built.get(key);
    const svc = this.#o.services.items.get(key);
    const lb = svc === undefined ? undefined : lbServiceOf(svc, [], this.#o.backends.backends(key));
    let built: Built | undefined;
    if (lb !== undefined) {
      const { vips: _, ...rest } = lb;
      built = { lb: rest, text: JSON.stringify(rest) };
    }
    if (this.#vipsOf.has(key)) this.#built.set(key, built);
    return built;
  }

  #mark(node: string, key: string): void {
    if (!this.#o.target.sessions.has(node)) return;
    const d = this.#dirty.get(node);
    if (d === undefined) this.#dirty.set(node, new Set([key]));
    else if (d !== 'all') d.add(key);
    if (this.#queued) return;
    this.#queued = true;
    this.#defer(() => {
      this.#queued = false;
      if (this.#closed) return;
      const dirty = [...this.#dirty];
      this.#dirty.clear();
      for (const [n, keys] of dirty) {
        if (keys === 'all' || !this.#deltas.has(n)) this.#pushWhole(n, keys !== 'all');
        else this.#pushChanges(n, keys);
      }
    });
  }

  /**
   * Push `node` its whole list: as delta messages with `reset`, or as one {@link TOPIC_SERVICES} message.
   * `onlyIfChanged`: an older agent is not pushed a list equal to its last.
   */
  #pushWhole(node: string, onlyIfChanged = false): void {
    const entries = this.#entries();
    const services = entries.map((e) => e.lb);
    const sent = new Map(entries.map((e) => [e.key, e.text]));
    if (this.#deltas.has(node)) {
      this.#send(node, { reset: true, set: services, remove: [] }, sent);
      return;
    }
    const before = this.#sent.get(node);
    if (
      onlyIfChanged &&
      before !== undefined &&
      before.size === sent.size &&
      [...sent].every(([k, v]) => before.get(k) === v)
    )
      return;
    if (this.#o.target.push(node, TOPIC_SERVICES, { services })) {
      this.#sent.set(node, sent);
      this.#o.logger.debug({ node, services: services.length }, 'pushed the services');
    } else this.#sent.delete(node);
  }

  /** Push `node` what changed among `keys` since its last push. */
  #pushChanges(node: string, keys: Set<string>): void {
    const sent = this.#sent.get(node) ?? new Map<string, string>();
    const set: LbService[] = [];
    const remove: string[] = [];
    for (const key of [...keys].sort()) {
      const e = this.#entry(key);
      if (e === undefined) {
        if (sent.delete(key)) remove.push(key);
      } else if (sent.get(key) !== e.text) {
        sent.set(key, e.text);
        set.push(e.lb);
      }
    }
    if (set.length === 0 && remove.length === 0) return;
    this.#send(node, { set, remove }, sent);
  }

  #send(
    node: string,
    delta: { reset?: boolean; set: LbService[]; remove: string[] },
    sent: Map<string, string>,
  ): void {
    for (const m of chunkServicesDelta(delta)) {
      if (!this.#o.target.push(node, TOPIC_SERVICES_DELTA, m)) {
        // The session is gone or full: the next session starts from the whole list.
        this.#sent.delete(node);
        return;
      }
    }
    this.#sent.set(node, sent);
    this.#o.logger.debug(
      { node, set: delta.set.length, remove: delta.remove.length, reset: delta.reset === true },
      'pushed a services change',
    );
  }
}
