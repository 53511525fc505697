/**
 * API discovery as kube-apiserver answers it, built from the {@link RESOURCES} table, so clients such as
 * kubectl find the resources vipmesh serves: `/version`, `/api` (APIVersions), `/api/v1` and
 * `/apis/GROUP/VERSION` (APIResourceList), `/apis` (APIGroupList), `/apis/GROUP` (APIGroup), and the
 * aggregated form (`apidiscovery.k8s.io/v2` APIGroupDiscoveryList) at `/api` and `/apis` when the client's
 * Accept header asks for it.
 */
import { apiVersionOf, RESOURCES, type ResourceInfo } from './types.js';

/**
 * The verbs the handler serves on every resource (list and watch on the collection, get/update/delete on
 * one object, create by POST). Keep in step with handler.ts.
 */
export const OBJECT_VERBS: readonly string[] = [
  'create',
  'delete',
  'get',
  'list',
  'patch',
  'update',
  'watch',
];
/**
 * The query parameters the handler honours on PATCH, published on each kind's PATCH operation in the
 * OpenAPI documents. kubectl validates fields itself unless `fieldValidation` is among them.
 */
export const PATCH_QUERY_PARAMS: readonly string[] = ['dryRun', 'fieldManager', 'fieldValidation'];
/** The verbs on a `/status` subresource: PATCH and PUT. */
export const STATUS_VERBS: readonly string[] = ['patch', 'update'];

/** The Kubernetes release whose API shapes vipmesh follows; `/version` reports it with vipmesh's own. */
export const KUBE_API_VERSION = { major: '1', minor: '32' };

/** The Accept media type parameters of the aggregated discovery document. */
const AGGREGATED = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList';

/** A discovery answer: the body and its Content-Type. */
export interface DiscoveryAnswer {
  contentType: string;
  body: unknown;
}

/** The `/version` document: the Kubernetes API level with vipmesh's version as build metadata. */
export function versionInfo(packageVersion: string): Record<string, string> {
  const { major, minor } = KUBE_API_VERSION;
  return {
    major,
    minor,
    gitVersion: `v${major}.${minor}.0+vipmesh-${packageVersion}`,
    gitCommit: '',
    gitTreeState: '',
    buildDate: '',
    goVersion: `node${process.versions.node}`,
    compiler: 'node',
    platform: `${process.platform}/${process.arch}`,
  };
}

/** The groups (besides core `''`) with their one version each, in a stable order. */
function groups(): Array<{ group: string; version: string; resources: ResourceInfo[] }> {
  const out = new Map<string, { group: string; version: string; resources: ResourceInfo[] }>();
  for (const r of Object.values(RESOURCES)) {
    const g = out.get(r.group) ?? { group: r.group, version: r.version, resources: [] };
    g.resources.push(r);
    out.set(r.group, g);
  }
  return [...out.values()];
}

/** The short names of a resource: its aliases less the singular and plural spellings. */
export function shortNamesOf(r: ResourceInfo): string[] {
  const singular = r.kind.toLowerCase();
  return r.aliases.filter((a) => a !== singular && a !== r.resource && !r.aliases.includes(a.slice(0, -1)));
}

function categoriesOf(r: ResourceInfo): string[] {
  return r.resource === 'services' ? ['all'] : [];
}

function apiResources(rs: ResourceInfo[]): unknown[] {
  const out: unknown[] = [];
  for (const r of rs) {
    out.push({
      name: r.resource,
      singularName: r.kind.toLowerCase(),
      namespaced: r.namespaced,
      kind: r.kind,
      verbs: [...OBJECT_VERBS],
      shortNames: shortNamesOf(r),
      categories: categoriesOf(r),
    });
    if (r.hasStatus) {
      out.push({
        name: `${r.resource}/status`,
        singularName: '',
        namespaced: r.namespaced,
        kind: r.kind,
        verbs: [...STATUS_VERBS],
      });
    }
  }
  return out;
}

function aggregatedResource(r: ResourceInfo): unknown {
  const responseKind = { group: r.group, version: r.version, kind: r.kind };
  return {
    resource: r.resource,
    responseKind,
    scope: r.namespaced ? 'Namespaced' : 'Cluster',
    singularResource: r.kind.toLowerCase(),
    verbs: [...OBJECT_VERBS],
    shortNames: shortNamesOf(r),
    categories: categoriesOf(r),
    ...(r.hasStatus
      ? { subresources: [{ subresource: 'status', responseKind, verbs: [...STATUS_VERBS] }] }
      : {}),
  };
}

/** True when the Accept header asks for the aggregated discovery document (any q, v2 only). */
function wantsAggregated(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  return accept.split(',').some((part) => {
    const params = part
      .split(';')
      .map((p) => p.trim().toLowerCase())
      .filter((p) => !p.startsWith('q='));
    return (
      params[0] === 'application/json' &&
      params.includes('g=apidiscovery.k8s.io') &&
      params.includes('v=v2') &&
      params.includes('as=apigroupdiscoverylist')
    );
  });
}

function aggregated(core: boolean): DiscoveryAnswer {
  const items = groups()
    .filter((g) => (g.group === '') === core)
    .map((g) => ({
      metadata: g.group === '' ? {} : { name: g.group },
      versions: [
        { version: g.version, resources: g.resources.map(aggregatedResource), freshness: 'Current' },
      ],
    }));
  return {
    contentType: AGGREGATED,
    body: { kind: 'APIGroupDiscoveryList', apiVersion: 'apidiscovery.k8s.io/v2', metadata: {}, items },
  };
}

function groupDoc(g: { group: string; version: string }): unknown {
  const gv = { groupVersion: `${g.group}/${g.version}`, version: g.version };
  return { name: g.group, versions: [gv], preferredVersion: gv };
}

/**
 * The discovery document at `path`, or undefined when `path` is not a discovery path (a resource path, or
 * nothing). `accept` is the request's Accept header (aggregated discovery at `/api` and `/apis`).
 */
export function discovery(path: string, accept: string | undefined): DiscoveryAnswer | undefined {
  const p = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
  const json = (body: unknown): DiscoveryAnswer => ({ contentType: 'application/json', body });
  const all = groups();
  if (p === '/api') {
    if (wantsAggregated(accept)) return aggregated(true);
    return json({ kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] });
  }
  if (p === '/apis') {
    if (wantsAggregated(accept)) return aggregated(false);
    return json({
      kind: 'APIGroupList',
      apiVersion: 'v1',
      groups: all.filter((g) => g.group !== '').map(groupDoc),
    });
  }
  for (const g of all) {
    const gv = apiVersionOf(g.resources[0]!);
    const base = g.group === '' ? '/api/v1' : `/apis/${gv}`;
    if (p === base) {
      return json({
        kind: 'APIResourceList',
        apiVersion: 'v1',
        groupVersion: gv,
        resources: apiResources(g.resources),
      });
    }
    if (g.group !== '' && p === `/apis/${g.group}`) {
      return json({ kind: 'APIGroup', apiVersion: 'v1', ...(groupDoc(g) as object) });
    }
  }
  return undefined;
}
