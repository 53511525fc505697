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

/*
 * Load balancing: the holder of a VIP serves the ports of the Services on it. The server pushes each node
 * the Services whose VIPs it holds, with their endpoints; the agent health-checks the endpoints, programs
 * its nftables table and reports the health back, which the master writes into the Service's status.
 */

/** Push topic: the Services with a VIP held by this node (`{ services: LbService[] }`, sorted by namespace/name). */
export const TOPIC_SERVICES = 'vipmesh/services';
/** Request method, agent → server: the endpoint health the agent measured (a {@link HealthReport}). */
export const METHOD_HEALTH = 'vipmesh/health';

/** A transport protocol the data plane serves. */
export type LbProtocol = 'TCP' | 'UDP';

/** One Service port: `port` on the VIP goes to `targetPort` (a number, or a name resolved through the endpoint ports). */
export interface LbPort {
  name?: string;
  protocol: LbProtocol;
  port: number;
  targetPort: number | string;
}

/** One backend address, from an Endpoints subset or an EndpointSlice endpoint. */
export interface LbEndpoint {
  ip: string;
  /** The node the backend runs on, when known (from the object, or from the pod subnet it is in). */
  nodeName?: string;
  /** The ports this backend offers (names resolve named targetPorts). */
  ports: Array<{ name?: string; port: number; protocol: LbProtocol }>;
  /** False for `notReadyAddresses` and slice endpoints whose `conditions.ready` is false: never sent traffic. */
  ready: boolean;
}

/** How the holder checks an endpoint (keepalived's real_server / HAProxy's `check` knobs). */
export interface HealthCheckSpec {
  /** `tcp`: connect to the endpoint's target port; `http`: GET `path`; `none`: every ready endpoint is healthy. */
  type: 'tcp' | 'http' | 'none';
  path: string;
  /** Accepted HTTP status codes, inclusive range. */
  expectStatus: [number, number];
  intervalMs: number;
  timeoutMs: number;
  /** Consecutive successes that make an endpoint healthy. */
  rise: number;
  /** Consecutive failures that make it unhealthy. */
  fall: number;
}

/** A Service as the holder's data plane needs it. */
export interface LbService {
  namespace: string;
  name: string;
  /** This Service's VIPs that the receiving node holds. */
  vips: string[];
  ports: LbPort[];
  /** Empty: the Service has no endpoints, and VIP:port goes to targetPort on the holder itself. */
  endpoints: LbEndpoint[];
  externalTrafficPolicy: 'Cluster' | 'Local';
  sessionAffinity: 'None' | 'ClientIP';
  /** `sessionAffinityConfig.clientIP.timeoutSeconds` [10800]. */
  affinityTimeoutSeconds: number;
  /** How new connections spread over healthy endpoints. */
  algorithm: 'random' | 'hash';
  healthCheck: HealthCheckSpec;
}

/** One endpoint's measured state, as the agent reports it. */
export interface EndpointHealth {
  ip: string;
  /** The checked port (the first Service port's target on this endpoint). */
  port: number;
  healthy: boolean;
  /** Why it is unhealthy (`connect ECONNREFUSED`, `HTTP 503`, `timeout after 1000 ms`). */
  reason?: string;
}

/** What an agent reports (the whole state for every Service it was pushed, on each change). */
export interface HealthReport {
  services: Array<{
    namespace: string;
    name: string;
    endpoints: EndpointHealth[];
    /**
     * Whether this node serves the Service's VIPs: it has a healthy endpoint (with `Local`, one on this node),
     * or the Service has no endpoints. False means the agent does not announce the VIP.
     */
    serving: boolean;
  }>;
}
