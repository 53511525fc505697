import type { Registry } from 'prom-client';
import { VIP_INTERFACES } from '../api/agent-protocol.js';
import type { ResourceStore } from '../api/store.js';
import { type Node, nodeReady, type Service } from '../api/types.js';
import { type Clock, systemClock } from '../clock.js';
import type { Logger } from '../log.js';
import { Counter } from '../metrics.js';
import { type Allocation, announcersFor, type NodeInfo, serviceKey } from '../vip-pool/index.js';
import { recordEvent } from './events.js';
import { type Informer, Reconciler } from './informer.js';
import { placeVips, type VipPlacement } from './placement.js';
import { poolConfig } from './pool-config.js';

/** The informers the assignment controller reads. */
export interface AssignmentInformers {
  nodes: Informer<'nodes'>;
  services: Informer<'services'>;
  pools: Informer<'ipaddresspools'>;
  configmaps: Informer<'configmaps'>;
  l2advertisements: Informer<'l2advertisements'>;
}

/** Options of {@link AssignmentController}. */
export interface AssignmentControllerOptions {
  store: ResourceStore;
  informers: AssignmentInformers;
  /** The IPAM controller's allocations (which pool each Service's addresses came from). */
  allocations: () => readonly Allocation[];
  /** Subscribe to allocation changes; returns the unsubscribe. */
  onAllocations?: (fn: () => void) => () => void;
  logger: Logger;
  clock?: Clock;
  registry?: Registry;
  host?: string;
}

/**
 * Announcer assignment: every allocated VIP goes to one Ready node its L2Advertisements allow, by sticky
 * rendezvous hashing (`placeVips`): a VIP stays where it is while its holder is Ready and eligible, a
 * NotReady node's VIPs spread over the survivors, and a node joining moves nothing. The result is written
 * to each Node's `status.vips` (what the servers push to the agents); moves are recorded as events on the
 * Services.
 */
export class AssignmentController {
  readonly #o: AssignmentControllerOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #reconciler: Reconciler;
  readonly #unsub: Array<() => void> = [];
  readonly #moves: Counter<'reason'> | undefined;
  /** What the last pass placed where (for events). */
  readonly #last = new Map<string, string | undefined>();

  constructor(o: AssignmentControllerOptions) {
    this.#o = o;
    this.#log = o.logger;
    this.#clock = o.clock ?? systemClock;
    this.#reconciler = new Reconciler(() => this.#reconcile(), { logger: o.logger, clock: this.#clock });
    if (o.registry !== undefined) {
      this.#moves =
        (o.registry.getSingleMetric('vipmesh_controlplane_vip_placements_total') as Counter<'reason'>) ??
        new Counter({
          name: 'vipmesh_controlplane_vip_placements_total',
          help: 'VIP placements that changed a holder, by reason (placed, moved, unplaceable)',
          labelNames: ['reason'],
          registers: [o.registry],
        });
    }
  }

  start(): void {
    const kick = () => this.#reconciler.kick();
    const { services, ...others } = this.#o.informers;
    // Services matter through their allocations: with an allocation feed, a Service's own changes (the
    // IPAM controller's status writes among them) need no pass.
    const watched =
      this.#o.onAllocations === undefined ? [services, ...Object.values(others)] : Object.values(others);
    for (const inf of watched as Array<Informer<'nodes'>>) {
      inf.on('change', kick);
      this.#unsub.push(() => inf.off('change', kick));
    }
    if (this.#o.onAllocations !== undefined) this.#unsub.push(this.#o.onAllocations(kick));
    this.#reconciler.kick();
  }

  /** Resolves when no pass is running or queued (tests). */
  idle(): Promise<void> {
    return this.#reconciler.idle();
  }

  async close(): Promise<void> {
    for (const u of this.#unsub.splice(0)) u();
    await this.#reconciler.close();
  }

  async #reconcile(): Promise<void> {
    const inf = this.#o.informers;
    const cfg = poolConfig(
      inf.pools.items.values(),
      inf.configmaps.items.values(),
      inf.l2advertisements.items.values(),
      this.#log,
    );
    const nodes = [...inf.nodes.items.values()].sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
    const ready = new Set(nodes.filter((n) => nodeReady(n) === 'True').map((n) => n.metadata.name));
    const infos: NodeInfo[] = nodes.map((n) => ({ name: n.metadata.name, labels: n.metadata.labels ?? {} }));
    const current = new Map<string, string>();
    for (const n of nodes) {
      for (const ip of n.status?.vips ?? []) {
        // Two nodes listing one VIP (a crash between two writes): prefer a Ready one.
        const had = current.get(ip);
        if (had === undefined || (!ready.has(had) && ready.has(n.metadata.name)))
          current.set(ip, n.metadata.name);
      }
    }
    // VIP -> eligible nodes (with interfaces), from the pool its Service's allocation came from.
    const services = new Map<string, Service>();
    for (const s of inf.services.items.values()) {
      services.set(serviceKey({ namespace: s.metadata.namespace ?? 'default', name: s.metadata.name }), s);
    }
    const vips = new Map<string, { eligible: Map<string, string[] | undefined>; services: Service[] }>();
    for (const a of this.#o.allocations()) {
      const svc = services.get(a.service);
      if (svc === undefined) continue;
      const pool = cfg.pools.find((p) => p.name === a.pool);
      if (pool === undefined) continue;
      const allowed = announcersFor(pool, cfg.advertisements, infos);
      for (const ip of a.ips) {
        let v = vips.get(ip);
        if (v === undefined) {
          v = { eligible: new Map(allowed.map((x) => [x.node, x.interfaces])), services: [] };
          vips.set(ip, v);
        }
        v.services.push(svc);
      }
    }
    const placements: VipPlacement[] = [...vips].map(([vip, v]) => ({
      vip,
      eligible: [...v.eligible.keys()],
      current: current.get(vip),
    }));
    const results = placeVips(placements, ready);
    const want = new Map<string, { vips: string[]; ifs: Record<string, string[]> }>();
    for (const n of nodes) want.set(n.metadata.name, { vips: [], ifs: {} });
    for (const r of results) {
      if (r.node === undefined) continue;
      const w = want.get(r.node)!;
      w.vips.push(r.vip);
      const ifs = vips.get(r.vip)!.eligible.get(r.node);
      if (ifs !== undefined) w.ifs[r.vip] = ifs;
    }
    // Write the nodes that gain VIPs first: on failover the old holder is gone, and every write on the way
    // to the new holder is time the VIP is not answered.
    const order = [...nodes].sort((a, b) => gains(b, want) - gains(a, want));
    for (const n of order) {
      const w = want.get(n.metadata.name)!;
      w.vips.sort();
      const have = n.status?.vips ?? [];
      const haveIfs = (n.status?.[VIP_INTERFACES] ?? {}) as Record<string, string[]>;
      if (sameList(have, w.vips) && JSON.stringify(sortKeys(haveIfs)) === JSON.stringify(sortKeys(w.ifs)))
        continue;
      const status: NonNullable<Node['status']> = { ...(n.status ?? {}), vips: w.vips };
      if (Object.keys(w.ifs).length > 0) status[VIP_INTERFACES] = w.ifs;
      else delete status[VIP_INTERFACES];
      try {
        await this.#o.store.updateStatus('nodes', {
          ...n,
          metadata: { ...n.metadata, resourceVersion: undefined },
          status,
        });
      } catch (err) {
        // The node may have been deleted meanwhile; the next pass sees it.
        this.#log.warn({ node: n.metadata.name, err }, 'could not write the node assignment');
      }
    }
    for (const r of results) {
      const known = this.#last.has(r.vip);
      const before = this.#last.get(r.vip);
      this.#last.set(r.vip, r.node);
      if (known && before === r.node) continue; // nothing changed since the last pass
      if (!known && r.reason === 'kept') continue; // first pass after a start: nothing moved
      if (r.reason !== 'kept') this.#moves?.inc({ reason: r.reason });
      const msg =
        r.node === undefined
          ? `no Ready node may announce ${r.vip} (check the L2Advertisements' nodeSelectors)`
          : `announcing ${r.vip} from node ${r.node}${r.reason === 'moved' ? ` (moved from ${current.get(r.vip)})` : ''}`;
      this.#log.info({ vip: r.vip, node: r.node, reason: r.reason }, msg);
      for (const svc of vips.get(r.vip)?.services ?? []) {
        await recordEvent(
          this.#o.store,
          {
            involved: svc,
            reason: r.node === undefined ? 'NoAnnouncer' : 'nodeAssigned',
            message: msg,
            type: r.node === undefined ? 'Warning' : 'Normal',
            component: 'vipmesh-announcer',
            now: this.#clock.now(),
            ...(this.#o.host === undefined ? {} : { host: this.#o.host }),
          },
          this.#log,
        );
      }
    }
    for (const vip of [...this.#last.keys()]) if (!vips.has(vip)) this.#last.delete(vip);
  }
}

function gains(n: Node, want: Map<string, { vips: string[] }>): number {
  const have = new Set(n.status?.vips ?? []);
  return (want.get(n.metadata.name)?.vips ?? []).filter((v) => !have.has(v)).length > 0 ? 1 : 0;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const sa = [...a].sort();
  return sa.every((x, i) => x === b[i]);
}

function sortKeys(o: Record<string, string[]>): Array<[string, string[]]> {
  return Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1));
}
