/**
 * What the servers and the agents say to each other over the tunnel: the push topics, the VIP assignment
 * an agent receives and the registration it sends. Both sides import this file, and nothing else of the other.
 */
import type { Node } from './types.js';

/** Push topic: the VIPs a node must announce (`{ vips: VipAssignment[] }`). */
export const TOPIC_VIPS = 'vipmesh/vips';
/** Push topic: every node's subnet lease (`{ clusterCidr: string[], leases: Lease[] }`). */
export const TOPIC_LEASES = 'vipmesh/leases';

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

/** What an agent registers (the tunnel HELLO's `info`). */
export interface NodeRegistration {
  /** `InternalIP` (the node IPs, one per family) and `Hostname`. */
  addresses?: Array<{ type: string; address: string }>;
  labels?: Record<string, string>;
  interfaces?: Array<{ name: string; mac: string; addresses: string[] }>;
  nodeInfo?: Record<string, string>;
}
