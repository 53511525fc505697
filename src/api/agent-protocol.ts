/**
 * What the servers and the agents say to each other over the tunnel: the push topics, the VIP assignment
 * an agent receives and the registration it sends. Both sides import this file, and nothing else of the other.
 */
import type { Node } from './types.js';

/**
 * Push topic: the VIPs a node must announce, the whole set (`{ vips: VipAssignment[] }`). What a server
 * sends an agent that does not list {@link FEATURE_VIPS_DELTA} in its registration (an older agent); such a
 * set is one frame, so it stops working above ~45,000 VIPs on one node (the 1 MiB frame limit).
 */
export const TOPIC_VIPS = 'vipmesh/vips';
/**
 * Push topic: a change to the VIPs a node must announce (a {@link VipsDelta}). Sent, instead of
 * {@link TOPIC_VIPS}, to an agent that lists {@link FEATURE_VIPS_DELTA}: the whole set when the session
 * comes up (the first message with `reset`), then only what changes, each message at most
 * {@link VIPS_PER_MESSAGE} entries.
 */
export const TOPIC_VIPS_DELTA = 'vipmesh/vips-delta';
/** What an agent lists in its registration's `features` when it takes {@link TOPIC_VIPS_DELTA}. */
export const FEATURE_VIPS_DELTA = 'vips-delta';
/** Entries (added plus removed VIPs) in one {@link TOPIC_VIPS_DELTA} message: ~100 KB, far below a frame. */
export const VIPS_PER_MESSAGE = 2000;

/** One {@link TOPIC_VIPS_DELTA} message. Applied in order: `reset` (forget the set), then `remove`, then `add`. */
export interface VipsDelta {
  /** The set starts again from empty (the first message of a whole set). */
  reset?: boolean;
  add?: VipAssignment[];
  remove?: string[];
  /**
   * The VIPs of `remove` that another node holds now: the agent keeps answering for each until that node
   * is heard announcing it (make-before-break). Older agents ignore it and release at once.
   */
  moved?: string[];
}
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

/**
 * The VIPs a Node's status lists, the layout before the assignment keys (`status.vips` and
 * `status.vipInterfaces`); servers still read it while a Node carries it (an upgrade in progress).
 */
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
  /** Protocol features the agent takes (e.g. {@link FEATURE_VIPS_DELTA}); absent: none (an older agent). */
  features?: string[];
}

/** The features a registration lists (strings only; anything else is none). */
export function featuresOf(reg: unknown): string[] {
  const f = (reg as { features?: unknown } | undefined)?.features;
  return Array.isArray(f) ? f.filter((x): x is string => typeof x === 'string') : [];
}

/**
 * `delta` as messages of at most `per` entries (removals first), the first carrying `reset` when set.
 * An empty delta is no message, unless it resets (one message: the set is empty).
 */
export function chunkDelta(delta: VipsDelta, per = VIPS_PER_MESSAGE): VipsDelta[] {
  const out: VipsDelta[] = [];
  const remove = delta.remove ?? [];
  const add = delta.add ?? [];
  const moved = new Set(delta.moved ?? []);
  for (let i = 0; i < remove.length; i += per) {
    const part = remove.slice(i, i + per);
    const m = part.filter((v) => moved.has(v));
    out.push(m.length === 0 ? { remove: part } : { remove: part, moved: m });
  }
  // Fill the last removal message up with additions, then whole messages of additions.
  let a = 0;
  const last = out.at(-1);
  if (last !== undefined && last.remove!.length < per) {
    a = per - last.remove!.length;
    if (add.length > 0) last.add = add.slice(0, a);
  }
  for (; a < add.length; a += per) out.push({ add: add.slice(a, a + per) });
  if (delta.reset === true) {
    if (out.length === 0) out.push({});
    out[0] = { reset: true, ...out[0] };
  }
  return out;
}

/*
 * Load balancing: the holder of a VIP serves the ports of the Services on it. The server pushes every node
 * every Service that has a VIP, with its endpoints; the agent programs them all in its nftables table (live
 * only where the VIP is a local address), health-checks the endpoints of the Services on the VIPs it holds
 * and reports their health back, which the master writes into the Service's status.
 */

/**
 * Push topic: the Services that have a VIP, the whole list (`{ services: LbService[] }`, sorted by
 * namespace/name; a server from before every node was sent every Service sends those of this node's
 * VIPs). What a server sends an agent that does not list {@link FEATURE_SERVICES_DELTA}.
 */
export const TOPIC_SERVICES = 'vipmesh/services';
/**
 * Push topic: a change to those Services (a {@link ServicesDelta}). Sent instead of {@link TOPIC_SERVICES} to
 * an agent that lists {@link FEATURE_SERVICES_DELTA}: the whole list when the session comes up (the first
 * message with `reset`), then only the Services whose pushed form changed, each message at most
 * {@link SERVICES_BYTES_PER_MESSAGE} of JSON (a cluster of tens of thousands of Services does not send
 * megabytes on every change).
 */
export const TOPIC_SERVICES_DELTA = 'vipmesh/services-delta';
/** What an agent lists in its registration's `features` when it takes {@link TOPIC_SERVICES_DELTA}. */
export const FEATURE_SERVICES_DELTA = 'services-delta';
/** About this much JSON in one {@link TOPIC_SERVICES_DELTA} message (a larger Service goes alone). */
export const SERVICES_BYTES_PER_MESSAGE = 256 * 1024;

/** One {@link TOPIC_SERVICES_DELTA} message. Applied in order: `reset` (forget the list), `remove`, then `set`. */
export interface ServicesDelta {
  /** The list starts again from empty (the first message of a whole list). */
  reset?: boolean;
  /** Services added or changed, each whole. */
  set?: LbService[];
  /** Services no longer served here (`namespace/name`). */
  remove?: string[];
}

/**
 * `delta` as messages of about `maxBytes` of JSON at most (removals first), the first carrying `reset` when
 * set. An empty delta is no message, unless it resets (one message: the list is empty).
 */
export function chunkServicesDelta(
  delta: { reset?: boolean; set: LbService[]; remove: string[] },
  maxBytes = SERVICES_BYTES_PER_MESSAGE,
): ServicesDelta[] {
  const out: Array<{ set: LbService[]; remove: string[] }> = [];
  let cur: (typeof out)[number] = { set: [], remove: [] };
  let size = 0;
  const room = (n: number) => {
    if (size > 0 && size + n > maxBytes) {
      out.push(cur);
      cur = { set: [], remove: [] };
      size = 0;
    }
    size += n;
  };
  for (const key of delta.remove) {
    room(key.length + 3);
    cur.remove.push(key);
  }
  for (const s of delta.set) {
    room(JSON.stringify(s).length + 1);
    cur.set.push(s);
  }
  if (size > 0) out.push(cur);
  const msgs = out.map(
    (m): ServicesDelta => ({
      ...(m.remove.length > 0 ? { remove: m.remove } : {}),
      ...(m.set.length > 0 ? { set: m.set } : {}),
    }),
  );
  if (delta.reset === true) {
    if (msgs.length === 0) msgs.push({});
    msgs[0] = { reset: true, ...msgs[0] };
  }
  return msgs;
}
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

/*
 * Planned hand-over: an agent that is stopping asks to leave before it lets its VIPs go, so they move to
 * other nodes while it still answers for them (make-before-break).
 */

/**
 * Request method, agent → server: this node is stopping (no params). The server marks the Node NotReady
 * (reason {@link REASON_AGENT_STOPPING}), so nothing is placed on it any more, waits until the master has
 * moved the node's VIPs (or its own time limit) and answers with a {@link LeaveResult}.
 */
export const METHOD_LEAVE = 'vipmesh/leave';
/** The Ready condition's reason on a Node whose agent asked to leave. */
export const REASON_AGENT_STOPPING = 'AgentStopping';

/** The answer to {@link METHOD_LEAVE}: where each VIP the node held went. */
export interface LeaveResult {
  /**
   * Every VIP the node held when it asked, with its new holder; `node` absent: no other node may hold it
   * (unplaceable), or it had not moved when the server stopped waiting.
   */
  moved: Array<{ vip: string; node?: string }>;
}
