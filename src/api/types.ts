/**
 * The objects the control plane stores, shaped like Kubernetes (apiVersion/kind/metadata/spec/status), and
 * the table of resources the store and the API know. Only the fields vipmesh reads are typed; every object
 * keeps the fields it was given (an index signature), so a Service from a real cluster round-trips. Which
 * fields each kind declares (anything else is refused on write, as by `check-config`) is in
 * src/vip-pool/schema.ts, where both the API's validation and `check-config` read it.
 */

/** Kubernetes ObjectMeta, the part vipmesh uses. `resourceVersion` is the datastore's mod revision. */
interface ObjectMeta {
  name: string;
  /** Absent on cluster-scoped objects (Node); `default` when a namespaced object is created without one. */
  namespace?: string;
  uid?: string | undefined;
  /** The datastore mod revision of this version of the object, as a decimal string. */
  resourceVersion?: string | undefined;
  /** Bumped by the store whenever `spec` changes (not on status-only updates). */
  generation?: number;
  creationTimestamp?: string | undefined;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [key: string]: unknown;
}

/** Any stored object. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [key: string]: unknown;
}

/** A condition as on Node and Service status (`type: Ready`, `status: 'True' | 'False' | 'Unknown'`). */
export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
  lastTransitionTime?: string | undefined;
  lastHeartbeatTime?: string;
  [key: string]: unknown;
}

/** One port of a Service. */
interface ServicePort {
  name?: string;
  protocol?: 'TCP' | 'UDP' | 'SCTP';
  port: number;
  targetPort?: number | string;
  nodePort?: number;
  [key: string]: unknown;
}

/** core/v1 Service. The IPAM controller fills `status.loadBalancer.ingress`. */
export interface Service extends KubeObject {
  spec?: {
    type?: string;
    loadBalancerIP?: string;
    loadBalancerClass?: string;
    ports?: ServicePort[];
    selector?: Record<string, string>;
    clusterIP?: string;
    ipFamilies?: string[];
    [key: string]: unknown;
  };
  status?: {
    loadBalancer?: { ingress?: Array<{ ip?: string; hostname?: string; [key: string]: unknown }> };
    conditions?: Condition[];
    [key: string]: unknown;
  };
}

/** core/v1 Node, registered by its agent. */
export interface Node extends KubeObject {
  spec?: { podCIDR?: string; podCIDRs?: string[]; unschedulable?: boolean; [key: string]: unknown };
  status?: {
    /** `Ready` is `True` while the node heartbeats (node lifecycle controller). */
    conditions?: Condition[];
    addresses?: Array<{ type: string; address: string }>;
    /** The VIPs this node announces now (announcer assignment), shown by `vipmesh get services -o wide`. */
    vips?: string[];
    nodeInfo?: Record<string, string>;
    [key: string]: unknown;
  };
}

/** metallb.io/v1beta1 IPAddressPool. */
export interface IPAddressPool extends KubeObject {
  spec?: {
    addresses?: string[];
    autoAssign?: boolean;
    avoidBuggyIPs?: boolean;
    [key: string]: unknown;
  };
}

/** metallb.io/v1beta1 L2Advertisement. */
export interface L2Advertisement extends KubeObject {
  spec?: {
    ipAddressPools?: string[];
    ipAddressPoolSelectors?: unknown[];
    nodeSelectors?: unknown[];
    interfaces?: string[];
    [key: string]: unknown;
  };
}

/** core/v1 Event: allocation and announcement history, shown by `vipmesh describe`. */
export interface Event extends KubeObject {
  involvedObject?: { kind?: string; namespace?: string; name?: string; uid?: string; [key: string]: unknown };
  reason?: string;
  message?: string;
  type?: 'Normal' | 'Warning' | string;
  count?: number;
  firstTimestamp?: string;
  lastTimestamp?: string;
  source?: { component?: string; host?: string };
}

/** core/v1 ConfigMap (the legacy MetalLB `config` ConfigMap is stored as one). */
export interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}

/** core/v1 Namespace: only its labels matter (IPAddressPool `serviceAllocation.namespaceSelectors`). */
interface Namespace extends KubeObject {}

/** One port of an Endpoints subset or an EndpointSlice. */
interface EndpointPort {
  name?: string;
  port?: number;
  protocol?: string;
  [key: string]: unknown;
}

/** core/v1 Endpoints: the backends of the Service of the same name (vipmesh has no pods: users apply them). */
export interface Endpoints extends KubeObject {
  subsets?: Array<{
    addresses?: Array<{ ip: string; nodeName?: string; [key: string]: unknown }>;
    notReadyAddresses?: Array<{ ip: string; nodeName?: string; [key: string]: unknown }>;
    ports?: EndpointPort[];
    [key: string]: unknown;
  }>;
}

/** discovery.k8s.io/v1 EndpointSlice: backends of the Service named by its `kubernetes.io/service-name` label. */
export interface EndpointSlice extends KubeObject {
  addressType?: string;
  endpoints?: Array<{
    addresses?: string[];
    conditions?: { ready?: boolean; [key: string]: unknown };
    nodeName?: string;
    [key: string]: unknown;
  }>;
  ports?: EndpointPort[];
}

/** The resource (plural, lowercase) -> object type map that makes the store typed. */
export interface ResourceTypes {
  services: Service;
  nodes: Node;
  ipaddresspools: IPAddressPool;
  l2advertisements: L2Advertisement;
  events: Event;
  configmaps: ConfigMap;
  namespaces: Namespace;
  endpoints: Endpoints;
  endpointslices: EndpointSlice;
}

/** A resource name: `services`, `nodes`, ... */
export type ResourceName = keyof ResourceTypes;

/** What the store and the API know about one resource. */
export interface ResourceInfo {
  resource: ResourceName;
  kind: string;
  /** `''` for the core group (paths under /api/v1). */
  group: string;
  version: string;
  namespaced: boolean;
  /** Has a status subresource: PUT on the object keeps the stored status, PUT on /status only the status. */
  hasStatus: boolean;
  /** Names the CLI accepts (`svc`, `service`, ...), besides the plural. */
  aliases: string[];
}

/** The version served of each group (MetalLB's CRDs are v1beta1). */
const GROUP_VERSIONS: Readonly<Record<string, string>> = { '': 'v1', 'discovery.k8s.io': 'v1' };

/** Every resource, by name. */
export const RESOURCES: Readonly<Record<ResourceName, ResourceInfo>> = {
  services: info('services', 'Service', '', true, true, ['service', 'svc']),
  nodes: info('nodes', 'Node', '', false, true, ['node', 'no']),
  ipaddresspools: info('ipaddresspools', 'IPAddressPool', 'metallb.io', true, true, [
    'ipaddresspool',
    'pool',
    'pools',
  ]),
  l2advertisements: info('l2advertisements', 'L2Advertisement', 'metallb.io', true, true, [
    'l2advertisement',
    'l2adv',
  ]),
  events: info('events', 'Event', '', true, false, ['event', 'ev']),
  configmaps: info('configmaps', 'ConfigMap', '', true, false, ['configmap', 'cm']),
  namespaces: info('namespaces', 'Namespace', '', false, false, ['namespace', 'ns']),
  endpoints: info('endpoints', 'Endpoints', '', true, false, ['ep']),
  endpointslices: info('endpointslices', 'EndpointSlice', 'discovery.k8s.io', true, false, ['endpointslice']),
};

function info(
  resource: ResourceName,
  kind: string,
  group: string,
  namespaced: boolean,
  hasStatus: boolean,
  aliases: string[],
): ResourceInfo {
  return {
    resource,
    kind,
    group,
    version: GROUP_VERSIONS[group] ?? 'v1beta1',
    namespaced,
    hasStatus,
    aliases,
  };
}

/** `v1` or `metallb.io/v1beta1`. */
export function apiVersionOf(r: ResourceInfo): string {
  return r.group === '' ? r.version : `${r.group}/${r.version}`;
}

/** The resource a kind name, plural or alias names (case-insensitive), or undefined. */
export function resourceFor(name: string): ResourceInfo | undefined {
  const n = name.toLowerCase();
  for (const r of Object.values(RESOURCES)) {
    if (r.resource === n || r.kind.toLowerCase() === n || r.aliases.includes(n)) return r;
  }
  return undefined;
}

/** A Kubernetes-style list, e.g. `{apiVersion: 'v1', kind: 'ServiceList', metadata: {resourceVersion}, items}`. */
export interface ObjectList<T extends KubeObject = KubeObject> {
  apiVersion: string;
  kind: string;
  /** `continue`: set on a page of a `limit`ed list while objects remain; pass it back for the next page. */
  metadata: { resourceVersion: string; continue?: string };
  items: T[];
}

/** One line of a watch stream. `ERROR` carries a Status object. */
export interface WatchEvent<T extends KubeObject = KubeObject> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'ERROR';
  object: T;
}

/** The `Ready` condition's status of a Node (`Unknown` when it has none). */
export function nodeReady(node: Node): 'True' | 'False' | 'Unknown' {
  return node.status?.conditions?.find((c) => c.type === 'Ready')?.status ?? 'Unknown';
}
