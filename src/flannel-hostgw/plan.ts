/**
 * The pure half of the reconciler: leases -> wanted routes (refusing what host-gw cannot route), and
 * wanted vs installed -> the changes to make. No I/O, so it is tested with case tables.
 */
import { VipmeshError } from '../errors.js';
import { type Cidr, contains, formatCidr, PrefixSet } from '../util/cidr.js';
import { parseIp } from '../util/ip.js';
import { parseCidr } from './cidr.js';
import { checkLease, type Lease } from './lease.js';
import type { KernelRoute, RouteSpec } from './netlink.js';

// Lease sets repeat almost unchanged from one pass to the next; validating 1,000 leases costs a few ms,
// so valid leases are remembered by content (bounded; cleared when full).
const checked = new Map<string, Lease>();
function checkedLease(raw: Lease): Lease {
  const key =
    typeof raw === 'object' && raw !== null && Array.isArray(raw.podCIDRs) && Array.isArray(raw.nodeIPs)
      ? `${raw.node}\0${raw.podCIDRs.join(',')}\0${raw.nodeIPs.join(',')}`
      : undefined;
  const hit = key === undefined ? undefined : checked.get(key);
  if (hit !== undefined) return hit;
  const lease = checkLease(raw);
  if (key !== undefined) {
    if (checked.size >= 16_384) checked.clear();
    checked.set(key, lease);
  }
  return lease;
}

/** What the planner knows about this node. */
export interface PlanContext {
  /** This node's name: its own lease is not routed (its subnet is local). */
  nodeName: string;
  /** The flannel interface: name (for messages) and index (for routes). */
  iface: string;
  ifindex: number;
  /** Prefixes directly connected on the flannel interface (its addresses' networks). */
  connected: readonly Cidr[];
  /** vipmesh's rtm_protocol. */
  protocol: number;
}

/** A lease (or part of one) that was not turned into a route, with the reason. */
export interface Refusal {
  node: string;
  error: VipmeshError;
}

/** The routes the leases call for, keyed by canonical destination, and the refusals. */
interface Plan {
  routes: Map<string, RouteSpec>;
  refused: Refusal[];
}

/**
 * One route per other node's pod subnet, via that node's IP of the same family, on the flannel interface.
 * Refused, each with an error naming the node: malformed leases (`VIPMESH_HOSTGW_BAD_LEASE`), a subnet
 * with no node IP of its family (`VIPMESH_HOSTGW_NO_NODE_IP`), a node IP that is not on a directly
 * connected subnet of the interface (`VIPMESH_HOSTGW_NEXTHOP_OFFLINK`: host-gw needs one L2), and a subnet
 * that overlaps this node's own or one already routed (`VIPMESH_HOSTGW_LEASE_CONFLICT`; leases are taken
 * in node-name order so the outcome does not depend on the order given).
 */
export function planRoutes(leases: readonly Lease[], ctx: PlanContext): Plan {
  const routes = new Map<string, RouteSpec>();
  const refused: Refusal[] = [];
  const valid: Lease[] = [];
  for (const raw of leases) {
    try {
      valid.push(checkedLease(raw));
    } catch (err) {
      const node = typeof raw?.node === 'string' && raw.node !== '' ? raw.node : '(unnamed)';
      refused.push({ node, error: err as VipmeshError });
    }
  }
  valid.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  const taken = new PrefixSet<string>();
  for (const l of valid.filter((l) => l.node === ctx.nodeName)) {
    for (const c of l.podCIDRs) taken.add(parseCidr(c, 'pod subnet'), l.node);
  }
  for (const lease of valid) {
    if (lease.node === ctx.nodeName) continue;
    for (const text of lease.podCIDRs) {
      const net = parseCidr(text, 'pod subnet');
      const clash = taken.findOverlap(net);
      if (clash !== undefined) {
        refused.push({
          node: lease.node,
          error: new VipmeshError(
            'VIPMESH_HOSTGW_LEASE_CONFLICT',
            `node ${lease.node}: pod subnet ${text} overlaps ${formatCidr(clash.net)} of node ${clash.value}; not routed`,
            { details: { node: lease.node, subnet: text, other: clash.value } },
          ),
        });
        continue;
      }
      const gwText = lease.nodeIPs.find((ip) => parseIp(ip)!.family === net.family);
      if (gwText === undefined) {
        refused.push({
          node: lease.node,
          error: new VipmeshError(
            'VIPMESH_HOSTGW_NO_NODE_IP',
            `node ${lease.node}: no IPv${net.family} node IP to route ${text} through`,
            { details: { node: lease.node, subnet: text } },
          ),
        });
        continue;
      }
      const gw = parseIp(gwText)!;
      if (!ctx.connected.some((c) => c.len < (gw.family === 4 ? 32 : 128) && contains(c, gw))) {
        const on = ctx.connected.filter((c) => c.family === gw.family).map(formatCidr);
        refused.push({
          node: lease.node,
          error: new VipmeshError(
            'VIPMESH_HOSTGW_NEXTHOP_OFFLINK',
            `node ${lease.node}: its IP ${gwText} is not on a directly connected subnet of ${ctx.iface} ` +
              `(${on.length > 0 ? on.join(', ') : `no IPv${gw.family} subnet`}); host-gw needs all nodes on one L2, ` +
              `so ${text} is not routed`,
            { details: { node: lease.node, nodeIP: gwText, subnet: text, iface: ctx.iface } },
          ),
        });
        continue;
      }
      taken.add(net, lease.node);
      routes.set(text, { dst: text, gateway: gwText, ifindex: ctx.ifindex, protocol: ctx.protocol });
    }
  }
  return { routes, refused };
}

/** The changes that take the kernel from `installed` (vipmesh's routes only) to `wanted`. */
interface RouteDiff {
  /** Routes to create or replace (NLM_F_REPLACE also takes over a foreign route to the same prefix). */
  replace: RouteSpec[];
  /** vipmesh routes nobody wants any more. */
  delete: KernelRoute[];
  /** Wanted routes already in place. */
  unchanged: number;
}

/** A route's metric, with the kernel's defaults filled in (0 for IPv4, 1024 for IPv6). */
export function metricOf(r: Pick<KernelRoute, 'family' | 'priority'>): number {
  return r.priority ?? (r.family === 4 ? 0 : 1024);
}

/** True when a route sits at the metric vipmesh installs at (the kernel's default). */
export function atOurMetric(r: KernelRoute): boolean {
  return metricOf(r) === (r.family === 4 ? 0 : 1024);
}

/** True when an installed route is exactly the wanted one (at vipmesh's metric). */
export function sameRoute(r: KernelRoute, spec: RouteSpec): boolean {
  return (
    r.dst === spec.dst &&
    r.gateway === spec.gateway &&
    r.ifindex === spec.ifindex &&
    r.protocol === spec.protocol &&
    atOurMetric(r)
  );
}

/**
 * Compare wanted routes with the installed ones of vipmesh's protocol. `installed` must hold only routes
 * carrying that protocol: nothing else is ever deleted.
 */
export function diffRoutes(
  wanted: ReadonlyMap<string, RouteSpec>,
  installed: Iterable<KernelRoute>,
): RouteDiff {
  const diff: RouteDiff = { replace: [], delete: [], unchanged: 0 };
  const good = new Set<string>();
  for (const r of installed) {
    const spec = wanted.get(r.dst);
    if (spec !== undefined && sameRoute(r, spec) && !good.has(r.dst)) {
      good.add(r.dst);
      diff.unchanged++;
    } else if (spec === undefined || good.has(r.dst) || !atOurMetric(r)) {
      // Not wanted, a duplicate, or one at another metric than ours: remove it. A route at our metric
      // with the wrong next hop is replaced in place below (no gap in reachability).
      diff.delete.push(r);
    }
  }
  for (const spec of wanted.values()) if (!good.has(spec.dst)) diff.replace.push(spec);
  return diff;
}
