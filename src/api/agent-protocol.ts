/**
 * What the servers and the agents say to each other over the tunnel: the push topics, the VIP assignment
 * an agent receives and the registration it sends. Both sides import this file, and nothing else of the other.
 */
import type { Node } from './types.js';

/** Push topic: the VIPs a node must announce (`{ vips: VipAssignment[] }`). */
export const TOPIC_VIPS = 'vipmesh/vips';
/** Push topic: every node's subnet lease (`{ clusterCidr: string[], leases: Lease[] }`). */
export const TOPIC_LEASES = 'vipmesh/leases';
/**
 * Push topic: the MACs of every registered node's interfaces (`{ macs: string[] }`, lower case, sorted).
 * An agent that lost its server releases a VIP only when one of these claims it.
 */
export const TOPIC_PEERS = 'vipmesh/peers';

/** Node status field: per VIP, the interfaces to announce it on (absent: every interface). */
export const VIP_INTERFACES = 'vipInterfaces';

/** One VIP as the agent receives it. */
export interface VipAssignment {
  ip: string;
  /** Interfaces to announce on; absent: every interface. */
  interfaces?: string[];
}

/** The VIPs assigned to `node` (from its `status.vips` and `status.vipInterfaces`). */
export function assignedVips(node: Node | undefined): VipAssignment[] {
  const ifs = (node?.status?.[VIP_INTERFACES] ?? {}) as Record<string, string[]>;
  return (node?.status?.vips ?? []).map((ip) =>
    Array.isArray(ifs[ip]) ? { ip, interfaces: [...ifs[ip]] } : { ip },
  );
}

/** Every interface MAC the nodes registered (`status.interfaces[].mac`), lower case, sorted, no duplicates. */
export function nodeMacs(nodes: Iterable<Node>): string[] {
  const macs = new Set<string>();
  for (const n of nodes) {
    const ifs = n.status?.['interfaces'];
    if (!Array.isArray(ifs)) continue;
    for (const i of ifs as Array<{ mac?: unknown }>) {
      if (
        typeof i?.mac === 'string' &&
        /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(i.mac) &&
        !/^(00:){5}00$/.test(i.mac)
      )
        macs.add(i.mac.toLowerCase());
    }
  }
  return [...macs].sort();
}

/** What an agent registers (the tunnel HELLO's `info`). */
export interface NodeRegistration {
  /** `InternalIP` (the node IPs, one per family) and `Hostname`. */
  addresses?: Array<{ type: string; address: string }>;
  labels?: Record<string, string>;
  interfaces?: Array<{ name: string; mac: string; addresses: string[] }>;
  nodeInfo?: Record<string, string>;
}
