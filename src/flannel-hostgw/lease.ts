/**
 * Subnet leases, and their layout in the datastore. The layout is flannel's etcd layout, so tools that
 * read flannel's leases (etcdctl, flannel's own subnet manager) read ours:
 *
 *   key   /coreos.com/network/subnets/10.42.1.0-24            (dual stack: 10.42.1.0-24&fd00:42:0:1::-64)
 *   value {"PublicIP":"198.51.100.11","PublicIPv6":"2001:db8::11","BackendType":"host-gw",...}
 *
 * flannel's value has no node name; ours adds `VipmeshNode` (unknown JSON fields are ignored by flannel's
 * Go decoder). A lease without it is named after its PublicIP.
 */
import { VipmeshError } from '../errors.js';
import { type Cidr, formatCidr } from '../util/cidr.js';
import { formatIp, parseIp } from '../util/ip.js';
import { parseCidr } from './cidr.js';

/** One node's lease: its pod subnets and the addresses other nodes route them through. */
export interface Lease {
  /** Node name. */
  node: string;
  /** Pod subnets, at most one per family (`198.18.1.0/24`, `2001:db8:42:1::/64`). */
  podCIDRs: string[];
  /** The node's addresses on the shared L2, at most one per family: the next hops. */
  nodeIPs: string[];
}

/** flannel's key prefix for subnet leases. */
export const LEASE_PREFIX = '/coreos.com/network/subnets/';

/** The JSON value of a lease, field names as flannel writes them. */
interface FlannelLeaseValue {
  PublicIP?: string;
  PublicIPv6?: string;
  BackendType: string;
  BackendData?: unknown;
  BackendV6Data?: unknown;
  /** vipmesh's addition: the node name. */
  VipmeshNode?: string;
}

function badLease(message: string, details: Record<string, unknown> = {}): VipmeshError {
  return new VipmeshError('VIPMESH_HOSTGW_BAD_LEASE', message, { details });
}

function byFamily(cidrs: readonly string[], what: string): { v4?: Cidr; v6?: Cidr } {
  const out: { v4?: Cidr; v6?: Cidr } = {};
  for (const text of cidrs) {
    const c = parseCidr(text, what);
    const slot = c.family === 4 ? 'v4' : 'v6';
    if (out[slot] !== undefined) throw badLease(`${what}: two IPv${c.family} subnets (${cidrs.join(', ')})`);
    out[slot] = c;
  }
  return out;
}

/**
 * The datastore key of a lease: `leaseKey('10.42.1.0/24')` is `/coreos.com/network/subnets/10.42.1.0-24`;
 * dual stack (`['10.42.1.0/24', 'fd00:42:0:1::/64']`) joins both with `&` as flannel does; an IPv6-only
 * lease is keyed by its IPv6 subnet alone.
 */
export function leaseKey(podCIDRs: string | readonly string[], prefix = LEASE_PREFIX): string {
  const list = typeof podCIDRs === 'string' ? [podCIDRs] : podCIDRs;
  const { v4, v6 } = byFamily(list, 'lease subnet');
  const part = (c: Cidr) => `${formatIp(c)}-${c.len}`;
  if (v4 !== undefined) return `${prefix}${part(v4)}${v6 === undefined ? '' : `&${part(v6)}`}`;
  if (v6 !== undefined) return `${prefix}${part(v6)}`;
  throw badLease('a lease key needs at least one subnet');
}

/** The pod CIDRs named by a lease key (the inverse of {@link leaseKey}); `VIPMESH_HOSTGW_BAD_LEASE` otherwise. */
export function parseLeaseKey(key: string, prefix = LEASE_PREFIX): string[] {
  if (!key.startsWith(prefix)) throw badLease(`lease key ${key} does not start with ${prefix}`, { key });
  const parts = key.slice(prefix.length).split('&');
  if (parts.length > 2) throw badLease(`lease key ${key} has more than two subnets`, { key });
  const cidrs = parts.map((p) => {
    const dash = p.lastIndexOf('-');
    if (dash < 0) throw badLease(`lease key ${key}: "${p}" is not <address>-<length>`, { key });
    try {
      return formatCidr(parseCidr(`${p.slice(0, dash)}/${p.slice(dash + 1)}`, 'lease key'));
    } catch (err) {
      throw new VipmeshError('VIPMESH_HOSTGW_BAD_LEASE', `lease key ${key}: "${p}" is not a subnet`, {
        cause: err,
        details: { key },
      });
    }
  });
  const fams = byFamily(cidrs, `lease key ${key}`);
  if (parts.length === 2 && (fams.v4 === undefined || fams.v6 === undefined || !cidrs[0]!.includes('.'))) {
    throw badLease(`lease key ${key}: a dual-stack key is <IPv4 subnet>&<IPv6 subnet>`, { key });
  }
  return cidrs;
}

/** The JSON value flannel stores for a host-gw lease, with the node name added. */
export function encodeLeaseValue(lease: Lease): string {
  const l = checkLease(lease);
  const v4 = l.nodeIPs.find((ip) => ip.includes('.'));
  const v6 = l.nodeIPs.find((ip) => ip.includes(':'));
  const value: FlannelLeaseValue = { BackendType: 'host-gw' };
  if (v4 !== undefined) value.PublicIP = v4;
  if (v6 !== undefined) value.PublicIPv6 = v6;
  value.VipmeshNode = l.node;
  return JSON.stringify(value);
}

/**
 * A lease from its datastore key and JSON value. Refuses (`VIPMESH_HOSTGW_BAD_LEASE`) anything that is not
 * a host-gw lease with at least one public address.
 */
export function decodeLease(key: string, value: string | Uint8Array, prefix = LEASE_PREFIX): Lease {
  const podCIDRs = parseLeaseKey(key, prefix);
  const text = typeof value === 'string' ? value : Buffer.from(value).toString('utf8');
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new VipmeshError('VIPMESH_HOSTGW_BAD_LEASE', `lease ${key}: value is not JSON`, {
      cause: err,
      details: { key },
    });
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    throw badLease(`lease ${key}: value is not an object`, { key });
  const v = doc as Record<string, unknown>;
  if (v['BackendType'] !== 'host-gw') {
    throw badLease(`lease ${key}: backend ${JSON.stringify(v['BackendType'])} is not host-gw`, { key });
  }
  const nodeIPs: string[] = [];
  for (const [field, family] of [
    ['PublicIP', 4],
    ['PublicIPv6', 6],
  ] as const) {
    const raw = v[field];
    if (raw === undefined || raw === null || raw === '') continue;
    const ip = typeof raw === 'string' ? parseIp(raw) : undefined;
    if (ip === undefined || ip.family !== family)
      throw badLease(`lease ${key}: ${field} ${JSON.stringify(raw)} is not an IPv${family} address`, { key });
    nodeIPs.push(formatIp(ip));
  }
  const named = v['VipmeshNode'];
  if (named !== undefined && (typeof named !== 'string' || named === ''))
    throw badLease(`lease ${key}: VipmeshNode is not a name`, { key });
  if (nodeIPs.length === 0) throw badLease(`lease ${key}: no PublicIP or PublicIPv6`, { key });
  return checkLease({ node: named ?? nodeIPs[0]!, podCIDRs, nodeIPs });
}

/**
 * Validate a lease and return it in canonical form (canonical address text, at most one subnet and one
 * node IP per family). Throws `VIPMESH_HOSTGW_BAD_LEASE` naming the node.
 */
export function checkLease(lease: Lease): Lease {
  if (typeof lease !== 'object' || lease === null || typeof lease.node !== 'string' || lease.node === '') {
    throw badLease('a lease needs a node name');
  }
  const { node } = lease;
  if (!Array.isArray(lease.podCIDRs) || !Array.isArray(lease.nodeIPs)) {
    throw badLease(`lease of node ${node}: podCIDRs and nodeIPs must be lists`, { node });
  }
  let subnets: { v4?: Cidr; v6?: Cidr };
  try {
    subnets = byFamily(lease.podCIDRs, `pod subnet of node ${node}`);
  } catch (err) {
    throw new VipmeshError('VIPMESH_HOSTGW_BAD_LEASE', `lease of node ${node}: ${(err as Error).message}`, {
      cause: err,
      details: { node },
    });
  }
  const ips: string[] = [];
  const families = new Set<number>();
  for (const text of lease.nodeIPs) {
    const ip = typeof text === 'string' ? parseIp(text) : undefined;
    if (ip === undefined)
      throw badLease(`lease of node ${node}: node IP ${JSON.stringify(text)} is not an address`, { node });
    if (families.has(ip.family))
      throw badLease(`lease of node ${node}: two IPv${ip.family} node IPs`, { node });
    families.add(ip.family);
    ips.push(formatIp(ip));
  }
  if (subnets.v4 === undefined && subnets.v6 === undefined)
    throw badLease(`lease of node ${node}: no pod subnet`, { node });
  const podCIDRs = [subnets.v4, subnets.v6].filter((c) => c !== undefined).map(formatCidr);
  return { node, podCIDRs, nodeIPs: ips };
}
