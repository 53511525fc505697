import type { IpFamily } from '../util/ip.js';

/** A Kubernetes label selector (`matchLabels` AND every `matchExpressions` entry). Empty matches all. */
export interface LabelSelector {
  matchLabels?: Readonly<Record<string, string>>;
  matchExpressions?: ReadonlyArray<{
    key: string;
    operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
    values?: readonly string[];
  }>;
}

/** Which Services a pool serves (IPAddressPool `spec.serviceAllocation`). */
export interface ServiceAllocation {
  /** Lower is tried first; 0 or absent means after every pool with a priority (as in MetalLB). */
  priority?: number;
  /** Namespaces allowed by name (ORed with namespaceSelectors); both empty: every namespace. */
  namespaces: string[];
  namespaceSelectors: LabelSelector[];
  /** Service label selectors (ORed); empty: every Service. */
  serviceSelectors: LabelSelector[];
}

/**
 * A normalized address pool, from an IPAddressPool or a legacy ConfigMap `address-pools` entry.
 * Plain JSON (no bigint): the allocator parses `addresses` itself.
 */
export interface AddressPool {
  name: string;
  /** Pool labels (metadata.labels), matched by L2Advertisement ipAddressPoolSelectors. */
  labels: Readonly<Record<string, string>>;
  /** Canonical entries: CIDR, `start-end` or one address, in the order written. */
  addresses: string[];
  /** Hand out addresses to Services that did not ask for this pool; default true. */
  autoAssign: boolean;
  /** Never hand out IPv4 addresses ending in .0 or .255; default false. */
  avoidBuggyIPs: boolean;
  serviceAllocation?: ServiceAllocation;
}

/** A normalized L2Advertisement: which pools it announces, from which nodes, on which interfaces. */
export interface AdvertisementRule {
  name: string;
  /** Pools by name; with ipAddressPoolSelectors empty too, the advertisement covers every pool. */
  ipAddressPools: string[];
  ipAddressPoolSelectors: LabelSelector[];
  /** Nodes that may announce (ORed); empty: every node. */
  nodeSelectors: LabelSelector[];
  /** Services whose addresses it announces (ORed); empty or absent: every Service of its pools. */
  serviceSelectors?: LabelSelector[];
  /** Interfaces to announce on; empty: every interface. */
  interfaces: string[];
}

/** A `spec.ports` entry: what a shared address must not have twice. */
export interface ProtocolPort {
  protocol: 'TCP' | 'UDP' | 'SCTP';
  port: number;
}

/** `spec.ipFamilyPolicy`. */
export type IpFamilyPolicy = 'SingleStack' | 'PreferDualStack' | 'RequireDualStack';

/** A normalized LoadBalancer Service: what the allocator needs to give it addresses. */
export interface ServiceRequest {
  namespace: string;
  name: string;
  labels: Readonly<Record<string, string>>;
  /** spec.loadBalancerIP or the loadBalancerIPs annotation, canonical text (at most one per family). */
  requestedIPs: string[];
  /** The `metallb.io/address-pool` annotation. */
  pool?: string;
  /** The `metallb.io/allow-shared-ip` annotation. */
  sharingKey?: string;
  /**
   * With `externalTrafficPolicy: Local`, the Service's pod selector as `k=v,k2=v2` (keys sorted): an
   * address is shared only among Services with the same one. Absent for `Cluster` (or no selector).
   */
  backendKey?: string;
  ipFamilyPolicy: IpFamilyPolicy;
  /** spec.ipFamilies; empty means "either, IPv4 preferred". */
  ipFamilies: IpFamily[];
  ports: ProtocolPort[];
}

/** A namespace's labels, for serviceAllocation namespaceSelectors. */
export interface NamespaceInfo {
  name: string;
  labels: Readonly<Record<string, string>>;
}

/**
 * One problem found in configuration, located for a human: formats as
 * `pools.yaml:12 IPAddressPool/office spec.addresses[1]: range start 10.0.0.9 is after end 10.0.0.5`.
 */
export interface ConfigProblem {
  file: string;
  /** 1-based line of the offending field (of the object or document when the field is absent). */
  line: number;
  kind: string;
  name: string;
  /** Field path such as `spec.addresses[1]`; empty for the whole object. */
  path: string;
  code: string;
  message: string;
}

/** `service.namespace/service.name`: the key allocations are stored under. */
export function serviceKey(s: { namespace: string; name: string }): string {
  return `${s.namespace}/${s.name}`;
}

/** A transport protocol the load balancer serves (SCTP Service ports get an address but are not served). */
export type LbProtocol = 'TCP' | 'UDP';

/** One served Service port: `port` on the VIP goes to `targetPort` (a number, or a port name). */
export interface LbPortSpec {
  name?: string;
  protocol: LbProtocol;
  port: number;
  targetPort: number | string;
}

/** How the holder checks an endpoint (the annotations under `vipmesh.io/health-check`). */
export interface HealthCheckSettings {
  type: 'tcp' | 'http' | 'none';
  path: string;
  /** Accepted HTTP status codes, inclusive range. */
  expectStatus: [number, number];
  intervalMs: number;
  timeoutMs: number;
  rise: number;
  fall: number;
}

/** A LoadBalancer Service's load-balancing settings (what the holder of its VIPs serves). */
export interface LbSettings {
  ports: LbPortSpec[];
  externalTrafficPolicy: 'Cluster' | 'Local';
  sessionAffinity: 'None' | 'ClientIP';
  affinityTimeoutSeconds: number;
  algorithm: 'random' | 'hash';
  healthCheck: HealthCheckSettings;
}

/** One backend address from an Endpoints subset or an EndpointSlice endpoint. */
export interface Backend {
  ip: string;
  nodeName?: string;
  ports: Array<{ name?: string; port: number; protocol: LbProtocol }>;
  ready: boolean;
}

/** The backends one Endpoints object or EndpointSlice gives its Service. */
export interface BackendSet {
  namespace: string;
  /** The Service they belong to (the Endpoints' name, the slice's `kubernetes.io/service-name`). */
  service: string;
  backends: Backend[];
}
