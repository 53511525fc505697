/**
 * The pure half of announcer assignment: the Nodes, the Services, the IPAM allocations and the decoded
 * pools and advertisements and the stored holders -> the assignment keys to write (each VIP's holder and
 * interfaces, only those that change), and what changed since the last pass (for logs, metrics and
 * events). No I/O, no clock, no logger, so it is tested with case tables; the AssignmentController applies
 * what it returns.
 */
import { type LbEndpoint, VIP_INTERFACES } from '../api/agent-protocol.js';
import { sameHolder, type VipHolder } from '../api/assignments.js';
import { type Node, nodeReady, type Service } from '../api/types.js';
import {
  type AddressPool,
  type AdvertisementRule,
  type Allocation,
  announcersFor,
  type NodeInfo,
  serviceKey,
} from '../vip-pool/index.js';
import type { PlannedEvent } from './events.js';
import { DRAIN_ANNOTATION, type PlacementReason, placeVips, type VipPlacement } from './placement.js';

/** What one assignment pass looks at. */
export interface AssignmentInput {
  nodes: Iterable<Node>;
  services: Iterable<Service>;
  /** The IPAM controller's allocations (which pool each Service's addresses came from). */
  allocations: readonly Allocation[];
  pools: readonly AddressPool[];
  advertisements: readonly AdvertisementRule[];
  /** Each VIP's holder as stored (`/vipmesh/assignments/<vip>`). */
  holders: ReadonlyMap<string, VipHolder>;
  /** Where the previous pass placed each VIP (undefined: nowhere); empty on the first pass after a start. */
  last: ReadonlyMap<string, string | undefined>;
  /** The backends of a Service (`namespace/name`), for `externalTrafficPolicy: Local` [none]. */
  backends?: (key: string) => readonly LbEndpoint[];
}

/** One VIP whose stored holder must change (undefined: its key is deleted). */
interface HolderWrite {
  vip: string;
  holder: VipHolder | undefined;
}

/** A VIP whose holder changed since the previous pass (or that became unplaceable). */
interface AssignmentChange {
  vip: string;
  node: string | undefined;
  reason: PlacementReason;
  /** The log line and the events' message. */
  message: string;
}

/** What a pass must do. */
interface AssignmentPlan {
  /** Assignment keys to write, VIPs gaining a holder first (on failover, the new holder is what matters). */
  writes: HolderWrite[];
  /**
   * Nodes whose status still carries a VIP list of the old layout (`status.vips`, `status.vipInterfaces`):
   * their VIPs were read as held, and once `writes` are stored the lists are dropped from the status.
   */
  legacy: Node[];
  changes: AssignmentChange[];
  /** One event per change and Service using the VIP, in the order of `changes`. */
  events: PlannedEvent[];
  /** Where this pass placed each VIP: the next pass's `last`. */
  placed: Map<string, string | undefined>;
}

/** Placement of every allocated VIP and the writes and events that follow. */
export function planAssignment(input: AssignmentInput): AssignmentPlan {
  const nodes = [...input.nodes].sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
  const ready = new Set(nodes.filter((n) => nodeReady(n) === 'True').map((n) => n.metadata.name));
  const infos: NodeInfo[] = nodes.map((n) => ({ name: n.metadata.name, labels: n.metadata.labels ?? {} }));
  const current = new Map<string, string>();
  for (const [vip, h] of input.holders) current.set(vip, h.node);
  // The old layout (every VIP listed in its node's status) counts where no key says otherwise, so an
  // upgrade moves nothing; the lists are dropped once the keys are written.
  const legacy: Node[] = [];
  const legacyHeld = new Set<string>();
  for (const n of nodes) {
    const listed = n.status?.vips;
    if (listed === undefined && n.status?.[VIP_INTERFACES] === undefined) continue;
    legacy.push(n);
    for (const ip of listed ?? []) {
      if (input.holders.has(ip)) continue;
      legacyHeld.add(ip);
      // Two nodes listing one VIP (a crash between two writes): prefer a Ready one.
      const had = current.get(ip);
      if (had === undefined || (!ready.has(had) && ready.has(n.metadata.name)))
        current.set(ip, n.metadata.name);
    }
  }
  // VIP -> eligible nodes (with interfaces), from the pool its Service's allocation came from.
  const services = new Map<string, Service>();
  for (const s of input.services) {
    services.set(serviceKey({ namespace: s.metadata.namespace ?? 'default', name: s.metadata.name }), s);
  }
  // A drained node holds a VIP only while no other node may (as a node that does not serve it).
  const drained = nodes
    .filter((n) => n.metadata.annotations?.[DRAIN_ANNOTATION] !== undefined)
    .map((n) => n.metadata.name);
  const vips = new Map<
    string,
    {
      eligible: Map<string, string[] | undefined>;
      services: Service[];
      local?: Set<string>;
      avoid: Set<string>;
    }
  >();
  const pools = new Map<string, AddressPool>();
  for (const p of input.pools) if (!pools.has(p.name)) pools.set(p.name, p);
  const allowedIn = new Map<string, ReturnType<typeof announcersFor>>();
  const bySelectors = input.advertisements.some((adv) => (adv.serviceSelectors ?? []).length > 0);
  for (const a of input.allocations) {
    const svc = services.get(a.service);
    if (svc === undefined) continue;
    const pool = pools.get(a.pool);
    if (pool === undefined) continue;
    // Who may announce is worked out once per pool per pass; it depends on the Service too (its labels,
    // whether it shares) only when an advertisement has serviceSelectors.
    const cacheKey = bySelectors
      ? `${pool.name}\u0000${a.sharingKey !== undefined}\u0000${JSON.stringify(svc.metadata.labels ?? {})}`
      : pool.name;
    let allowed = allowedIn.get(cacheKey);
    if (allowed === undefined) {
      allowed = announcersFor(pool, input.advertisements, infos, {
        labels: svc.metadata.labels ?? {},
        shared: a.sharingKey !== undefined,
      });
      allowedIn.set(cacheKey, allowed);
    }
    for (const ip of a.ips) {
      let v = vips.get(ip);
      if (v === undefined) {
        v = { eligible: new Map(allowed.map((x) => [x.node, x.interfaces])), services: [], avoid: new Set() };
        vips.set(ip, v);
      }
      v.services.push(svc);
      const local = localNodes(svc, a.service, input.backends, v.eligible);
      if (local !== undefined) v.local = new Set([...(v.local ?? []), ...local]);
      for (const n of notServing(svc)) v.avoid.add(n);
      for (const n of drained) v.avoid.add(n);
    }
  }
  const placements: VipPlacement[] = [...vips].map(([vip, v]) => ({
    vip,
    eligible: [...v.eligible.keys()],
    current: current.get(vip),
    ...(v.local === undefined ? {} : { local: [...v.local] }),
    ...(v.avoid.size === 0 ? {} : { avoid: [...v.avoid] }),
  }));
  const cordoned = new Set(nodes.filter((n) => n.spec?.unschedulable === true).map((n) => n.metadata.name));
  for (const n of drained) cordoned.add(n);
  const results = placeVips(placements, ready, cordoned);
  const plan: AssignmentPlan = { writes: [], legacy, changes: [], events: [], placed: new Map() };
  const releases: HolderWrite[] = [];
  for (const r of results) {
    const stored = input.holders.get(r.vip);
    if (r.node === undefined) {
      if (stored !== undefined) releases.push({ vip: r.vip, holder: undefined });
      continue;
    }
    const ifs = vips.get(r.vip)!.eligible.get(r.node);
    const holder: VipHolder = ifs === undefined ? { node: r.node } : { node: r.node, interfaces: [...ifs] };
    if (!sameHolder(stored, holder) || legacyHeld.has(r.vip)) plan.writes.push({ vip: r.vip, holder });
  }
  // Keys of VIPs no longer allocated go too.
  for (const vip of input.holders.keys()) if (!vips.has(vip)) releases.push({ vip, holder: undefined });
  plan.writes.push(...releases);
  for (const r of results) {
    const known = input.last.has(r.vip);
    const before = input.last.get(r.vip);
    plan.placed.set(r.vip, r.node);
    if (known && before === r.node) continue; // nothing changed since the last pass
    if (!known && r.reason === 'kept') continue; // first pass after a start: nothing moved
    const message =
      r.node === undefined
        ? `no Ready node may announce ${r.vip} (check the L2Advertisements' nodeSelectors)`
        : `announcing ${r.vip} from node ${r.node}${r.reason === 'moved' ? ` (moved from ${current.get(r.vip)})` : ''}`;
    plan.changes.push({ vip: r.vip, node: r.node, reason: r.reason, message });
    for (const svc of vips.get(r.vip)?.services ?? []) {
      plan.events.push({
        involved: svc,
        reason: r.node === undefined ? 'NoAnnouncer' : 'nodeAssigned',
        message,
        type: r.node === undefined ? 'Warning' : 'Normal',
      });
    }
  }
  return plan;
}

/**
 * With `externalTrafficPolicy: Local`, the eligible nodes running one of the Service's ready endpoints;
 * undefined when the policy is Cluster, or when no endpoint runs on an eligible node (endpoints on
 * machines that are not nodes: no node can be local to them, so none is preferred).
 */
function localNodes(
  svc: Service,
  key: string,
  backends: AssignmentInput['backends'],
  eligible: ReadonlyMap<string, unknown>,
): string[] | undefined {
  if (backends === undefined || svc.spec?.externalTrafficPolicy !== 'Local') return undefined;
  const nodes = new Set<string>();
  for (const b of backends(key)) {
    if (b.ready && b.nodeName !== undefined && eligible.has(b.nodeName)) nodes.add(b.nodeName);
  }
  return nodes.size === 0 ? undefined : [...nodes];
}

/** The nodes whose last health report said they do not serve the Service (`status.endpointHealth`). */
function notServing(svc: Service): string[] {
  const h = svc.status?.['endpointHealth'] as { notServing?: unknown } | undefined;
  return Array.isArray(h?.notServing) ? h.notServing.filter((n): n is string => typeof n === 'string') : [];
}
