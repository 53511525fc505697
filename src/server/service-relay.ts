import { assignedVips, type LbService, TOPIC_SERVICES } from '../api/agent-protocol.js';
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
 * Pushes each node connected here the Services whose VIPs it holds (`vipmesh/services`), when its session
 * comes up and whenever one of them, their backends or the node's assignment changes. Changes are batched
 * per tick, and a node is pushed only when one of its Services' pushed form (or its VIP set) changed.
 * Indexes (VIP -> Services, VIP -> holder) keep a change proportional to the Services it touches, not to
 * every Service.
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
  /** Node -> its VIPs as indexed. */
  readonly #heldBy = new Map<string, string[]>();
  /** Service -> its pushed form (undefined: not a LoadBalancer of vipmesh's). */
  readonly #built = new Map<string, Built | undefined>();
  /** Node -> the Services last pushed to it (namespace/name). */
  readonly #pushed = new Map<string, Set<string>>();
  /** Node -> what its last push was made of (each Service's key, VIPs and version). */
  readonly #signature = new Map<string, string>();
  /** Service -> a number bumped whenever its pushed form changes. */
  readonly #version = new Map<string, number>();
  #nextVersion = 1;
  readonly #dirty = new Set<string>();
  #queued = false;
  #closed = false;

  constructor(o: ServiceRelayOptions) {
    this.#o = o;
    this.#defer = o.defer ?? ((fn) => setImmediate(fn));
  }

  /** Index what the informers hold and follow their changes. */
  start(): void {
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

  /** A session to `node` came up: push its Services now. */
  sessionUp(node: string): void {
    this.#pushNode(node, true);
  }

  /** True when `namespace/name` was in the last push to `node` (a health report may speak of it). */
  pushedTo(node: string, key: string): boolean {
    return this.#pushed.get(node)?.has(key) ?? false;
  }

  /** The Services `node` is to serve now, sorted by namespace/name. */
  servicesFor(node: string): LbService[] {
    const byKey = new Map<string, string[]>();
    for (const vip of this.#heldBy.get(node) ?? []) {
      for (const key of this.#byVip.get(vip) ?? []) byKey.set(key, [...(byKey.get(key) ?? []), vip]);
    }
    const out: LbService[] = [];
    for (const key of [...byKey.keys()].sort()) {
      const b = this.#build(key);
      if (b !== undefined) out.push({ ...b.lb, vips: byKey.get(key)!.sort() } as LbService);
    }
    return out;
  }

  readonly #onNode = (e: { key: string }): void => {
    const before = JSON.stringify(this.#heldBy.get(e.key) ?? []);
    this.#indexNode(e.key);
    if (JSON.stringify(this.#heldBy.get(e.key) ?? []) !== before) this.#mark(e.key);
  };

  readonly #onHolders = (changes: HolderChange[]): void => {
    const nodes = new Set<string>();
    for (const c of changes) {
      if (c.before !== undefined) nodes.add(c.before.node);
      if (c.after !== undefined) nodes.add(c.after.node);
    }
    for (const node of nodes) this.#onNode({ key: node });
  };

  readonly #onService = (e: { type: string; key: string; object: Service }): void => {
    this.#indexService(e.key, e.type === 'DELETED' ? undefined : e.object);
  };

  readonly #onBackends = (key: string): void => {
    if (!this.#vipsOf.has(key)) return;
    this.#rebuild(key);
  };

  #indexNode(node: string): void {
    for (const vip of this.#heldBy.get(node) ?? []) {
      if (this.#holder.get(vip) === node) this.#holder.delete(vip);
    }
    const keys = this.#o.holders?.vipsOf(node);
    const vips =
      keys !== undefined && keys.size > 0
        ? [...keys.keys()].sort()
        : assignedVips(this.#o.nodes.items.get(node)).map((v) => v.ip);
    if (vips.length === 0) this.#heldBy.delete(node);
    else this.#heldBy.set(node, vips);
    for (const vip of vips) this.#holder.set(vip, node);
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
    const vipsChanged = JSON.stringify(old) !== JSON.stringify(vips);
    if (vipsChanged) this.#markVips(old);
    this.#rebuild(key, vipsChanged);
  }

  /** Build `key` again; mark its holders when its pushed form changed (or `force`). */
  #rebuild(key: string, force = false): void {
    const before = this.#built.get(key)?.text;
    this.#built.delete(key);
    const after = this.#build(key)?.text;
    if (before !== after) this.#version.set(key, this.#nextVersion++);
    if (after === undefined) this.#version.delete(key);
    if (force || before !== after) this.#markVips(this.#vipsOf.get(key) ?? []);
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

  #markVips(vips: readonly string[]): void {
    for (const vip of vips) {
      const node = this.#holder.get(vip);
      if (node !== undefined) this.#mark(node);
    }
  }

  #mark(node: string): void {
    if (!this.#o.target.sessions.has(node)) return;
    this.#dirty.add(node);
    if (this.#queued) return;
    this.#queued = true;
    this.#defer(() => {
      this.#queued = false;
      if (this.#closed) return;
      const nodes = [...this.#dirty];
      this.#dirty.clear();
      for (const n of nodes) this.#pushNode(n, false);
    });
  }

  #pushNode(node: string, force: boolean): void {
    const services = this.servicesFor(node);
    const signature = services
      .map((s) => {
        const key = `${s.namespace}/${s.name}`;
        return `${key} ${s.vips.join(',')} ${this.#version.get(key) ?? 0}`;
      })
      .join('\n');
    if (!force && this.#signature.get(node) === signature) return;
    if (this.#o.target.push(node, TOPIC_SERVICES, { services })) {
      this.#signature.set(node, signature);
      this.#pushed.set(node, new Set(services.map((s) => `${s.namespace}/${s.name}`)));
      this.#o.logger.debug({ node, services: services.length }, 'pushed the services');
    }
  }
}
