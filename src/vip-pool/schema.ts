/**
 * The fields each accepted kind declares, as the Kubernetes API (and MetalLB's CRDs) declare them. An
 * object field not declared here is refused, as kube-apiserver does under strict field validation: a
 * misspelt `loadBalancerIp`, or `loadBalancerIP` indented under `ports[0]`, would otherwise be stored and
 * silently ignored. Only the names of fields are checked here; the decoders check the values of the fields
 * vipmesh reads. `status` is never checked: the store keeps the stored status on a spec write, and
 * status is written by the controllers.
 */
import { type Checker, isObj } from './checker.js';
import { Codes } from './codes.js';
import type { FieldPath } from './path.js';

/** A value with no fields: its JSON type (`int-or-string`: either, as a Service's `targetPort`). */
export type Leaf = 'any' | 'string' | 'integer' | 'boolean' | 'int-or-string';

/**
 * The shape of a value: a map with declared fields (`docs` describes some of them, `open` lets undeclared
 * ones through), a list of one shape, a map of any keys, or a leaf. The API's OpenAPI documents are
 * generated from these, so `kubectl explain` and kubectl's own validation see the same fields.
 */
export type Schema =
  | {
      readonly fields: Readonly<Record<string, Schema>>;
      readonly what: string;
      readonly docs?: Readonly<Record<string, string>>;
      readonly open?: boolean;
    }
  | { readonly items: Schema }
  | { readonly values: Schema }
  | Leaf;

const ANY = 'any' as const;
const STR = 'string' as const;
const INT = 'integer' as const;
const BOOL = 'boolean' as const;
const fields = (what: string, f: Record<string, Schema>, docs?: Record<string, string>): Schema =>
  docs === undefined ? { fields: f, what } : { fields: f, what, docs };
const listOf = (items: Schema): Schema => ({ items });
const mapOf = (values: Schema): Schema => ({ values });
/** Fields documented, others let through: kinds vipmesh writes itself and never validates. */
const open = (what: string, f: Record<string, Schema>, docs?: Record<string, string>): Schema =>
  ({
    ...(fields(what, f, docs) as object),
    open: true,
  }) as Schema;

/** meta/v1 ObjectMeta: everything kubectl and the API server put there. */
const OBJECT_META = fields(
  'metadata',
  {
    name: STR,
    generateName: STR,
    namespace: STR,
    selfLink: STR,
    uid: STR,
    resourceVersion: STR,
    generation: INT,
    creationTimestamp: STR,
    deletionTimestamp: STR,
    deletionGracePeriodSeconds: INT,
    labels: mapOf(STR),
    annotations: mapOf(STR),
    ownerReferences: listOf(
      fields('ownerReference', {
        apiVersion: STR,
        kind: STR,
        name: STR,
        uid: STR,
        controller: BOOL,
        blockOwnerDeletion: BOOL,
      }),
    ),
    finalizers: listOf(STR),
    managedFields: listOf(ANY),
  },
  {
    name: 'The name of the object, unique among objects of its kind (in its namespace).',
    namespace: 'The namespace of a namespaced object; "default" when not given.',
    labels: 'Key/value labels; IPAddressPool and L2Advertisement selectors match them.',
    resourceVersion:
      'The datastore revision of this version of the object; sent back on update to detect conflicts.',
  },
);

const LABEL_SELECTOR = fields('label selector', {
  matchLabels: mapOf(STR),
  matchExpressions: listOf(fields('selector requirement', { key: STR, operator: STR, values: listOf(STR) })),
});

const SERVICE_PORT = fields(
  'Service port',
  {
    name: STR,
    protocol: STR,
    appProtocol: STR,
    port: INT,
    targetPort: 'int-or-string',
    nodePort: INT,
  },
  {
    port: 'The port served on the Service address.',
    targetPort:
      "The backends' port: a number, or the name of a port of the Service's Endpoints/EndpointSlices; absent: the same as port.",
  },
);

const SERVICE_SPEC = fields(
  'Service spec',
  {
    ports: listOf(SERVICE_PORT),
    selector: mapOf(STR),
    clusterIP: STR,
    clusterIPs: listOf(STR),
    type: STR,
    externalIPs: listOf(STR),
    sessionAffinity: STR,
    sessionAffinityConfig: fields('sessionAffinityConfig', {
      clientIP: fields('clientIP', { timeoutSeconds: INT }),
    }),
    loadBalancerIP: STR,
    loadBalancerSourceRanges: listOf(STR),
    loadBalancerClass: STR,
    externalName: STR,
    externalTrafficPolicy: STR,
    internalTrafficPolicy: STR,
    healthCheckNodePort: INT,
    publishNotReadyAddresses: BOOL,
    ipFamilies: listOf(STR),
    ipFamilyPolicy: STR,
    allocateLoadBalancerNodePorts: BOOL,
    trafficDistribution: STR,
  },
  {
    type: 'vipmesh gives an address only to Services of type LoadBalancer.',
    loadBalancerIP:
      'The address to give this Service; it must lie in a pool (the metallb.io/loadBalancerIPs annotation does the same).',
    loadBalancerClass: 'When set, the Service belongs to another load balancer and vipmesh leaves it alone.',
    ipFamilies: 'IPv4 and/or IPv6: which families of address the Service gets.',
    ipFamilyPolicy: 'SingleStack, PreferDualStack or RequireDualStack.',
    ports: 'The ports the Service exposes.',
    externalTrafficPolicy:
      'Cluster (default): any endpoint; Local: the address is held only by a node running an endpoint, which sees the client address.',
    sessionAffinity:
      'ClientIP keeps a client on one endpoint (for sessionAffinityConfig.clientIP.timeoutSeconds).',
  },
);

const POOL_SPEC = fields(
  'IPAddressPool spec',
  {
    addresses: listOf(STR),
    autoAssign: BOOL,
    avoidBuggyIPs: BOOL,
    serviceAllocation: fields(
      'serviceAllocation',
      {
        priority: INT,
        namespaces: listOf(STR),
        namespaceSelectors: listOf(LABEL_SELECTOR),
        serviceSelectors: listOf(LABEL_SELECTOR),
      },
      {
        priority: 'Pools with a lower number are tried first; 0 or none: after the pools that have one.',
        namespaces: 'Only Services in these namespaces get addresses from this pool.',
      },
    ),
  },
  {
    addresses: 'The addresses of the pool: CIDRs (198.51.100.0/28) or ranges (198.51.100.10-198.51.100.20).',
    autoAssign:
      'When false, the pool gives addresses only to Services that ask for it (by address or the metallb.io/address-pool annotation).',
    avoidBuggyIPs: 'Never give out addresses ending in .0 or .255.',
    serviceAllocation: 'Which Services this pool serves, and in which order pools are tried.',
  },
);

const L2_SPEC = fields(
  'L2Advertisement spec',
  {
    ipAddressPools: listOf(STR),
    ipAddressPoolSelectors: listOf(LABEL_SELECTOR),
    nodeSelectors: listOf(LABEL_SELECTOR),
    serviceSelectors: listOf(LABEL_SELECTOR),
    interfaces: listOf(STR),
  },
  {
    ipAddressPools:
      'The pools (by name) whose addresses are announced; all pools when no pool is named or selected.',
    ipAddressPoolSelectors: 'Pools selected by their labels.',
    nodeSelectors: 'The nodes that may announce; all nodes when empty.',
    serviceSelectors:
      'The Services (by their labels) whose addresses are announced; all Services when empty.',
    interfaces: 'The interfaces the addresses are announced on; every interface when empty.',
  },
);

const NODE_SPEC = open(
  'Node spec',
  { podCIDR: STR, podCIDRs: listOf(STR), unschedulable: BOOL },
  { podCIDRs: 'The pod subnets vipmesh allocated to this node (host-gw routes point to it).' },
);

const TYPE_META = { apiVersion: STR, kind: STR, metadata: OBJECT_META } as const;

const OBJECT_REFERENCE = fields('object reference', {
  kind: STR,
  namespace: STR,
  name: STR,
  uid: STR,
  apiVersion: STR,
  resourceVersion: STR,
  fieldPath: STR,
});

const ENDPOINT_PORT = fields(
  'endpoint port',
  { name: STR, port: INT, protocol: STR, appProtocol: STR },
  {
    name: "The port's name: a Service's named targetPort picks the port of this name.",
    port: 'The port the backends listen on.',
    protocol: 'TCP (default) or UDP.',
  },
);

const ENDPOINT_ADDRESS = fields(
  'endpoint address',
  { ip: STR, hostname: STR, nodeName: STR, targetRef: OBJECT_REFERENCE },
  {
    ip: 'The backend address (IPv4 or IPv6).',
    nodeName: 'The node the backend runs on; found from the pod subnets or node addresses when absent.',
  },
);

const ENDPOINT_SUBSET = fields(
  'endpoint subset',
  {
    addresses: listOf(ENDPOINT_ADDRESS),
    notReadyAddresses: listOf(ENDPOINT_ADDRESS),
    ports: listOf(ENDPOINT_PORT),
  },
  {
    addresses: 'Backends that may receive traffic (when their health check passes).',
    notReadyAddresses: 'Backends that receive no traffic.',
    ports: 'The ports every address of this subset offers.',
  },
);

const SLICE_ENDPOINT = fields(
  'EndpointSlice endpoint',
  {
    addresses: listOf(STR),
    conditions: fields('endpoint conditions', { ready: BOOL, serving: BOOL, terminating: BOOL }),
    hostname: STR,
    targetRef: OBJECT_REFERENCE,
    nodeName: STR,
    zone: STR,
    hints: fields('endpoint hints', {
      forZones: listOf(fields('zone hint', { name: STR })),
      forNodes: listOf(fields('node hint', { name: STR })),
    }),
    deprecatedTopology: mapOf(STR),
  },
  {
    addresses: "The one address of this backend, of the slice's addressType.",
    conditions: 'ready: false keeps traffic away from it (absent means ready).',
    nodeName: 'The node the backend runs on; found from the pod subnets or node addresses when absent.',
  },
);

/** The declared fields of every kind vipmesh serves, by kind; objects users apply are checked against them. */
export const SCHEMAS: Readonly<Record<string, Schema>> = {
  Service: fields('Service', { ...TYPE_META, spec: SERVICE_SPEC, status: ANY }),
  IPAddressPool: fields('IPAddressPool', { ...TYPE_META, spec: POOL_SPEC, status: ANY }),
  L2Advertisement: fields('L2Advertisement', { ...TYPE_META, spec: L2_SPEC, status: ANY }),
  ConfigMap: fields('ConfigMap', {
    ...TYPE_META,
    data: mapOf(STR),
    binaryData: mapOf(STR),
    immutable: BOOL,
  }),
  Namespace: fields('Namespace', {
    ...TYPE_META,
    spec: fields('Namespace spec', { finalizers: listOf(STR) }),
    status: ANY,
  }),
  Endpoints: fields('Endpoints', { ...TYPE_META, subsets: listOf(ENDPOINT_SUBSET) }),
  EndpointSlice: fields(
    'EndpointSlice',
    {
      ...TYPE_META,
      addressType: STR,
      endpoints: listOf(SLICE_ENDPOINT),
      ports: listOf(ENDPOINT_PORT),
    },
    {
      addressType: 'IPv4 or IPv6: the family of every endpoint address.',
      endpoints: 'The backends (at most 1000).',
      ports: 'The ports every endpoint offers (at most 100).',
    },
  ),
  Node: open('Node', { ...TYPE_META, spec: NODE_SPEC, status: ANY }),
  Event: open('Event', {
    ...TYPE_META,
    involvedObject: open('involvedObject', { kind: STR, namespace: STR, name: STR, uid: STR }),
    reason: STR,
    message: STR,
    type: STR,
    count: INT,
    firstTimestamp: STR,
    lastTimestamp: STR,
  }),
};

/** Lists this long are named in the message; longer ones get a "did you mean" when one is close. */
const LIST_NAMES_UP_TO = 8;

function unknownFieldMessage(key: string, what: string, declared: readonly string[]): string {
  if (declared.length <= LIST_NAMES_UP_TO) return `unknown field (expected one of: ${declared.join(', ')})`;
  const near = declared.find((d) => d.toLowerCase() === key.toLowerCase());
  const hint = near === undefined ? '' : `; did you mean ${near}?`;
  return `unknown field: not declared in the ${what} schema${hint}`;
}

/**
 * Add a `VIPMESH_FIELD_UNKNOWN` issue for every field of `value` that `schema` does not declare, at any
 * depth the schema describes. Values of the wrong type are left to the decoders.
 */
export function checkFields(c: Checker, value: unknown, schema: Schema, path: FieldPath = []): void {
  if (typeof schema === 'string') return;
  if ('fields' in schema) {
    if (!isObj(value)) return;
    const declared = Object.keys(schema.fields);
    for (const [k, v] of Object.entries(value)) {
      const sub = Object.hasOwn(schema.fields, k) ? schema.fields[k] : undefined;
      if (sub === undefined && schema.open === true) continue;
      if (sub === undefined)
        c.add([...path, k], Codes.FIELD_UNKNOWN, unknownFieldMessage(k, schema.what, declared));
      else checkFields(c, v, sub, [...path, k]);
    }
  } else if ('items' in schema) {
    if (!Array.isArray(value)) return;
    value.forEach((v, i) => {
      checkFields(c, v, schema.items, [...path, i]);
    });
  } else if (isObj(value)) {
    for (const [k, v] of Object.entries(value)) checkFields(c, v, schema.values, [...path, k]);
  }
}
