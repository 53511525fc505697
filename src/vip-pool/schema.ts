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

/** The shape of a value: a map with declared fields, a list of one shape, a map of any keys, or anything. */
export type Schema =
  | { readonly fields: Readonly<Record<string, Schema>>; readonly what: string }
  | { readonly items: Schema }
  | { readonly values: Schema }
  | 'any';

const ANY = 'any' as const;
const fields = (what: string, f: Record<string, Schema>): Schema => ({ fields: f, what });
const listOf = (items: Schema): Schema => ({ items });
const mapOf = (values: Schema): Schema => ({ values });

/** meta/v1 ObjectMeta: everything kubectl and the API server put there. */
const OBJECT_META = fields('metadata', {
  name: ANY,
  generateName: ANY,
  namespace: ANY,
  selfLink: ANY,
  uid: ANY,
  resourceVersion: ANY,
  generation: ANY,
  creationTimestamp: ANY,
  deletionTimestamp: ANY,
  deletionGracePeriodSeconds: ANY,
  labels: mapOf(ANY),
  annotations: mapOf(ANY),
  ownerReferences: listOf(
    fields('ownerReference', {
      apiVersion: ANY,
      kind: ANY,
      name: ANY,
      uid: ANY,
      controller: ANY,
      blockOwnerDeletion: ANY,
    }),
  ),
  finalizers: listOf(ANY),
  managedFields: listOf(ANY),
});

const LABEL_SELECTOR = fields('label selector', {
  matchLabels: mapOf(ANY),
  matchExpressions: listOf(fields('selector requirement', { key: ANY, operator: ANY, values: listOf(ANY) })),
});

const SERVICE_PORT = fields('Service port', {
  name: ANY,
  protocol: ANY,
  appProtocol: ANY,
  port: ANY,
  targetPort: ANY,
  nodePort: ANY,
});

const SERVICE_SPEC = fields('Service spec', {
  ports: listOf(SERVICE_PORT),
  selector: mapOf(ANY),
  clusterIP: ANY,
  clusterIPs: listOf(ANY),
  type: ANY,
  externalIPs: listOf(ANY),
  sessionAffinity: ANY,
  sessionAffinityConfig: fields('sessionAffinityConfig', {
    clientIP: fields('clientIP', { timeoutSeconds: ANY }),
  }),
  loadBalancerIP: ANY,
  loadBalancerSourceRanges: listOf(ANY),
  loadBalancerClass: ANY,
  externalName: ANY,
  externalTrafficPolicy: ANY,
  internalTrafficPolicy: ANY,
  healthCheckNodePort: ANY,
  publishNotReadyAddresses: ANY,
  ipFamilies: listOf(ANY),
  ipFamilyPolicy: ANY,
  allocateLoadBalancerNodePorts: ANY,
  trafficDistribution: ANY,
});

const POOL_SPEC = fields('IPAddressPool spec', {
  addresses: listOf(ANY),
  autoAssign: ANY,
  avoidBuggyIPs: ANY,
  serviceAllocation: fields('serviceAllocation', {
    priority: ANY,
    namespaces: listOf(ANY),
    namespaceSelectors: listOf(LABEL_SELECTOR),
    serviceSelectors: listOf(LABEL_SELECTOR),
  }),
});

const L2_SPEC = fields('L2Advertisement spec', {
  ipAddressPools: listOf(ANY),
  ipAddressPoolSelectors: listOf(LABEL_SELECTOR),
  nodeSelectors: listOf(LABEL_SELECTOR),
  interfaces: listOf(ANY),
});

const TYPE_META = { apiVersion: ANY, kind: ANY, metadata: OBJECT_META } as const;

/** The declared fields of every kind vipmesh validates, by kind. */
export const SCHEMAS: Readonly<Record<string, Schema>> = {
  Service: fields('Service', { ...TYPE_META, spec: SERVICE_SPEC, status: ANY }),
  IPAddressPool: fields('IPAddressPool', { ...TYPE_META, spec: POOL_SPEC, status: ANY }),
  L2Advertisement: fields('L2Advertisement', { ...TYPE_META, spec: L2_SPEC, status: ANY }),
  ConfigMap: fields('ConfigMap', { ...TYPE_META, data: mapOf(ANY), binaryData: mapOf(ANY), immutable: ANY }),
  Namespace: fields('Namespace', {
    ...TYPE_META,
    spec: fields('Namespace spec', { finalizers: listOf(ANY) }),
    status: ANY,
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
  if (schema === ANY) return;
  if ('fields' in schema) {
    if (!isObj(value)) return;
    const declared = Object.keys(schema.fields);
    for (const [k, v] of Object.entries(value)) {
      const sub = Object.hasOwn(schema.fields, k) ? schema.fields[k] : undefined;
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
