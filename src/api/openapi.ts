/**
 * The OpenAPI documents kubectl reads (`/openapi/v2`, `/openapi/v3`, `/openapi/v3/api/v1`,
 * `/openapi/v3/apis/GROUP/VERSION`), generated from the field declarations in src/vip-pool/schema.ts (the
 * same ones the API validates with) and the resource table: `kubectl explain` walks them, kubectl's
 * client-side validation checks field names and types against them, and it looks at each kind's PATCH
 * operation for the query parameters the server honours.
 */
import { createHash } from 'node:crypto';
import { SCHEMAS, type Schema } from '../vip-pool/index.js';
import { OBJECT_VERBS, PATCH_QUERY_PARAMS } from './discovery.js';
import { apiVersionOf, RESOURCES, type ResourceInfo } from './types.js';

type Json = Record<string, unknown>;

const META_NAME = 'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta';

/** What each kind is, for `kubectl explain KIND`. */
const KIND_DOCS: Readonly<Record<string, string>> = {
  Service:
    'A named set of ports; vipmesh gives Services of type LoadBalancer an address from a pool and announces it from one node.',
  Node: 'A machine running the vipmesh agent; it registers itself and heartbeats over its tunnel.',
  IPAddressPool: 'A pool of addresses (MetalLB format) that vipmesh gives to LoadBalancer Services.',
  L2Advertisement:
    'Which pools are announced over ARP/NDP, from which nodes and interfaces (MetalLB format).',
  Event: 'A record of what the controllers did (allocations, announcements, failures).',
  ConfigMap: "Key/value data; MetalLB's legacy `config` ConfigMap is read as pools.",
  Namespace: 'A namespace; IPAddressPool namespace selectors match its labels.',
  Endpoints:
    'The backends of the Service of the same name: the addresses (and ports) its load-balanced ports go to.',
  EndpointSlice:
    'A set of backends of the Service named by its kubernetes.io/service-name label (merged with its Endpoints).',
};

/** The OpenAPI definition name of a kind: `io.k8s.api.core.v1.Service`, `io.metallb.v1beta1.IPAddressPool`. */
export function definitionName(r: ResourceInfo): string {
  if (r.group === '') return `io.k8s.api.core.${r.version}.${r.kind}`;
  if (r.group.endsWith('.k8s.io')) return `io.k8s.api.${r.group.split('.')[0]}.${r.version}.${r.kind}`;
  const reversed = r.group.split('.').reverse().join('.');
  return `${reversed}.${r.version}.${r.kind}`;
}

/** A schema as JSON: OpenAPI v2 (`definitions`) or v3 (`components/schemas`). */
function toJson(s: Schema, v3: boolean, ref: (name: string) => string, doc?: string): Json {
  const described = (o: Json): Json => (doc === undefined ? o : { description: doc, ...o });
  if (typeof s === 'string') {
    switch (s) {
      case 'string':
        return described({ type: 'string' });
      case 'integer':
        return described({ type: 'integer', format: 'int64' });
      case 'boolean':
        return described({ type: 'boolean' });
      case 'int-or-string':
        return described({ type: 'string', format: 'int-or-string' });
      default:
        return described(v3 ? { 'x-kubernetes-preserve-unknown-fields': true } : {});
    }
  }
  if ('items' in s) return described({ type: 'array', items: toJson(s.items, v3, ref) });
  if ('values' in s) return described({ type: 'object', additionalProperties: toJson(s.values, v3, ref) });
  if (s.what === 'metadata') {
    // kube-apiserver's v3 documents wrap a described reference in allOf, where $ref allows no siblings.
    const target = { $ref: ref(META_NAME) };
    const text = 'Standard object metadata: name, namespace, labels, annotations.';
    return v3 ? { description: text, allOf: [target] } : { description: text, ...target };
  }
  // An open object in v2 is a map of anything: kubectl's v2 validation has no "more fields allowed".
  if (s.open === true && !v3) return described({ type: 'object' });
  const properties: Json = {};
  for (const [k, sub] of Object.entries(s.fields)) properties[k] = toJson(sub, v3, ref, s.docs?.[k]);
  return described({
    type: 'object',
    properties,
    ...(s.open === true ? { 'x-kubernetes-preserve-unknown-fields': true } : {}),
  });
}

function gvk(r: ResourceInfo): Json {
  return { group: r.group, version: r.version, kind: r.kind };
}

/** The definitions of `rs` and ObjectMeta, each kind tagged with its group/version/kind. */
function definitions(rs: ResourceInfo[], v3: boolean): Json {
  const ref = (name: string) => (v3 ? `#/components/schemas/${name}` : `#/definitions/${name}`);
  const out: Json = {};
  const meta = (SCHEMAS['Service'] as { fields: Record<string, Schema> }).fields['metadata']!;
  out[META_NAME] = { ...toJson({ ...(meta as object), what: 'ObjectMeta' } as Schema, v3, ref) };
  for (const r of rs) {
    const schema = SCHEMAS[r.kind];
    const body = schema === undefined ? { type: 'object' } : toJson(schema, v3, ref);
    out[definitionName(r)] = {
      ...body,
      description: KIND_DOCS[r.kind] ?? r.kind,
      'x-kubernetes-group-version-kind': [gvk(r)],
    };
  }
  return out;
}

/** The Swagger 2.0 document of every kind (definitions only: kubectl validates and explains with them). */
export function openApiV2(version: string): Json {
  return {
    swagger: '2.0',
    info: { title: 'vipmesh', version },
    paths: {},
    definitions: definitions(Object.values(RESOURCES), false),
  };
}

/** The group/version paths of the v3 documents: `api/v1`, `apis/metallb.io/v1beta1`. */
function groupVersions(): Map<string, ResourceInfo[]> {
  const out = new Map<string, ResourceInfo[]>();
  for (const r of Object.values(RESOURCES)) {
    const key = r.group === '' ? `api/${r.version}` : `apis/${apiVersionOf(r)}`;
    out.set(key, [...(out.get(key) ?? []), r]);
  }
  return out;
}

function operation(r: ResourceInfo, action: string, params: string[] = []): Json {
  const ref = { $ref: `#/components/schemas/${definitionName(r)}` };
  return {
    operationId: `${action}${r.kind}`,
    'x-kubernetes-action': action,
    'x-kubernetes-group-version-kind': gvk(r),
    parameters: params.map((name) => ({ name, in: 'query', schema: { type: 'string', uniqueItems: true } })),
    responses: { '200': { description: 'OK', content: { 'application/json': { schema: ref } } } },
  };
}

/** The paths of one resource: the collection (list, watch, create) and one object (get, put, patch, delete). */
function paths(r: ResourceInfo): Json {
  const base = r.group === '' ? '/api/v1' : `/apis/${apiVersionOf(r)}`;
  const coll = r.namespaced ? `${base}/namespaces/{namespace}/${r.resource}` : `${base}/${r.resource}`;
  const verbs = new Set(OBJECT_VERBS);
  const one: Json = {};
  const all: Json = {};
  if (verbs.has('list')) all['get'] = operation(r, 'list');
  if (verbs.has('create')) all['post'] = operation(r, 'post');
  if (verbs.has('get')) one['get'] = operation(r, 'get');
  if (verbs.has('update')) one['put'] = operation(r, 'put');
  if (verbs.has('delete')) one['delete'] = operation(r, 'delete');
  // Listed even before PATCH is served: kubectl reads the query parameters the server honours from it
  // (`fieldValidation` there means the server validates fields itself), and fails without it.
  one['patch'] = operation(r, 'patch', [...PATCH_QUERY_PARAMS]);
  return { [coll]: all, [`${coll}/{name}`]: one };
}

/** One group/version's OpenAPI 3 document, or undefined for a path that names none. */
export function openApiV3Doc(gvPath: string, version: string): Json | undefined {
  const rs = groupVersions().get(gvPath);
  if (rs === undefined) return undefined;
  return {
    openapi: '3.0.0',
    info: { title: 'vipmesh', version },
    paths: Object.assign({}, ...rs.map(paths)),
    components: { schemas: definitions(rs, true) },
  };
}

/** A content hash of a document, for the `?hash=` of the v3 index (clients cache by it). */
export function hashOf(doc: unknown): string {
  return createHash('sha512').update(JSON.stringify(doc)).digest('hex').slice(0, 32).toUpperCase();
}

/** The `/openapi/v3` index: each group/version's document and its URL. */
export function openApiV3Index(version: string): Json {
  const out: Json = {};
  for (const gv of groupVersions().keys()) {
    out[gv] = { serverRelativeURL: `/openapi/v3/${gv}?hash=${hashOf(openApiV3Doc(gv, version))}` };
  }
  return { paths: out };
}
