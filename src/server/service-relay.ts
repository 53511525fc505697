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
 * Pushes each node connected here the Services whose VIPs it holds, when its session comes up and whenever
 * one of them, their backends or the node's VIPs change. An agent that takes deltas
 * ({@link FEATURE_SERVICES_DELTA}) gets the whole list once per session, then only the Services whose
 * pushed form changed; an older agent gets the whole list on each change. Changes are batched per tick and
 * followed per (node, Service): indexes (VIP -> Services, VIP -> holder) keep the work of a change
 * proportional to the Services it touches, never to every Service a node holds.
 */
export class ServiceRelay {
  readonly #o: ServiceRelayOptions;
  readonly #defer: (fn: () => void) => void;
  /** VIP -> the Services that have it in their status. */
  readonly #byVip = new Map<string, Set<string>>();
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

  /** True when `namespace/name` was in what `node` was last pushed (a health report may speak of it). */
  pushedTo(node: string, key: string): boolean {
    return this.#sent.get(node)?.has(key) ?? false;
  }

  /** The Services `node` is to serve now, sorted by namespace/name. */
  servicesFor(node: string): LbService[] {
    return this.#entriesFor(node).map((e) => e.lb);
  }

  /** {@link servicesFor} with each entry's key and the text it is compared by. */
  #entriesFor(node: string): Array<{ key: string; lb: LbService; text: string }> {
    const keys = new Set<string>();
    for (const vip of this.#heldBy.get(node) ?? [])
      for (const key of this.#byVip.get(vip) ?? []) keys.add(key);
    const out: Array<{ key: string; lb: LbService; text: string }> = [];
    for (const key of [...keys].sort()) {
      const e = this.#entry(node, key);
      if (e !== undefined) out.push({ key, ...e });
    }
    return out;
  }

  /** `key` as `node` is to serve it (its VIPs that `node` holds), with the text to compare; none: not served there. */
  #entry(node: string, key: string): { lb: LbService; text: string } | undefined {
    const b = this.#build(key);
    if (b === undefined) return undefined;
    const vips = (this.#vipsOf.get(key) ?? []).filter((v) => this.#holder.get(v) === node).sort();
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
   * VIPs changed holder. A new holder is pushed their Services now, not on the next turn: the relay of
   * VIPs calls this before it pushes the same change, so the new holder has a VIP's Services ahead of the
   * VIP and announces it only once their rules are in (a VIP announced first would refuse connections
   * until then). What the old holder loses goes on the next turn as before, after the VIP's move: it
   * serves the VIP's Services until it lets the VIP go. The index's own `change` event calls it too: a
   * change already indexed is passed over, so whichever call comes second does nothing.
   */
  holdersChanged(changes: readonly HolderChange[]): void {
    const gained = new Map<string, Set<string>>();
    for (const c of changes) {
      const node = c.after?.node;
      if (!this.#setHolder(c.vip, node)) continue;
      if (node === undefined || !this.#deltas.has(node) || !this.#o.target.sessions.has(node)) continue;
      for (const key of this.#byVip.get(c.vip) ?? []) {
        const keys = gained.get(node);
        if (keys === undefined) gained.set(node, new Set([key]));
        else keys.add(key);
      }
    }
    if (this.#closed) return;
    for (const [node, keys] of gained) this.#pushChanges(node, keys);
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

  /** Index `vip` as held by `node` (none: no holder) and mark its Services; false when it already was. */
  #setHolder(vip: string, node: string | undefined): boolean {
    const old = this.#holder.get(vip);
    if (old === node) return false;
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
    for (const key of this.#byVip.get(vip) ?? []) {
      if (old !== undefined) this.#mark(old, key);
      if (node !== undefined) this.#mark(node, key);
    }
    return true;
  }

  #indexService(key: string, svc: Service | undefined): void {
    const old = this.#vipsOf.get(key) ?? [];
    const vips = svc === undefined ? [] : ingressOf(svc);
    for (const vip of old) {
      const set = this.#byVip.get(vip);
      set?.delete(key);
      if (set?.size === 0) this.#byVip.delete(vip);
    }
    for (const vip of vips) {
      const set = this.#byVip.get(vip) ?? new Set<string>();
      this.#byVip.set(vip, set);
      set.add(key);
    }
    if (vips.length === 0) this.#vipsOf.delete(key);
    else this.#vipsOf.set(key, vips);
    const vipsChanged = old.length !== vips.length || old.some((v, i) => v !== vips[i]);
    if (vipsChanged) this.#markHolders(key, old);
    this.#rebuild(key, vipsChanged);
  }

  /** Build `key` again; mark its holders when its pushed form changed (or `force`). */
  #rebuild(key: string, force = false): void {
    const before = this.#built.get(key)?.text;
    this.#built.delete(key);
    const after = this.#build(key)?.text;
    if (force || before !== after) this.#markHolders(key, this.#vipsOf.get(key) ?? []);
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

  /** Mark `key` on the nodes holding any of `vips`. */
  #markHolders(key: string, vips: readonly string[]): void {
    for (const vip of vips) {
      const node = this.#holder.get(vip);
      if (node !== undefined) this.#mark(node, key);
    }
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
    const entries = this.#entriesFor(node);
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
      const e = this.#entry(node, key);
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
