/**
 * The server-side printing Kubernetes clients ask for: with `Accept: application/json;as=Table;v=v1;
 * g=meta.k8s.io` a list, an object or a watch event is answered as a `meta.k8s.io` Table, whose columns
 * are those of `vipmesh get` (printers.ts). `kubectl get` prints these columns as they come; the `-o wide`
 * ones have priority 1.
 */

import { columnsOf, type TableOptions } from './printers.js';
import { apiError } from './status.js';
import type { KubeObject } from './types.js';

/** The Table versions served: kubectl asks for v1 and falls back to v1beta1. */
type TableVersion = 'v1' | 'v1beta1';

/** What a row carries besides its cells (`includeObject`): nothing, the metadata (default), or the object. */
type IncludeObject = 'None' | 'Metadata' | 'Object';

/** The Table version an `Accept` header asks for first, or undefined when it wants plain JSON. */
export function tableVersionOf(accept: string | undefined): TableVersion | undefined {
  for (const range of (accept ?? '').split(',')) {
    const [type, ...params] = range.split(';').map((s) => s.trim());
    if (type !== 'application/json' && type !== '*/*') continue;
    const p = Object.fromEntries(params.map((x) => x.split('=').map((s) => s.trim()) as [string, string]));
    if (p['as'] === undefined) return undefined;
    if (p['as'] === 'Table' && p['g'] === 'meta.k8s.io' && (p['v'] === 'v1' || p['v'] === 'v1beta1')) {
      return p['v'];
    }
  }
  return undefined;
}

/** The `includeObject` query parameter. */
export function parseIncludeObject(v: string | null): IncludeObject {
  if (v === null || v === '') return 'Metadata';
  if (v === 'None' || v === 'Metadata' || v === 'Object') return v;
  throw apiError(
    'VIPMESH_API_BAD_REQUEST',
    `includeObject: invalid value "${v.slice(0, 32)}": must be one of None, Metadata, Object`,
  );
}

/** `PORT(S)` -> `Port(s)`, `CLUSTER-IP` -> `Cluster-IP`: the column names as kube-apiserver words them. */
function columnName(header: string): string {
  return header
    .toLowerCase()
    .replace(/(^|[\s-])([a-z])/g, (_m, sep: string, c: string) => sep + c.toUpperCase())
    .replace(/-Ip\b/, '-IP')
    .replace(/\bIps\b/, 'IPs');
}

/** A meta.k8s.io Table of `items`. */
export function toTable(
  items: KubeObject[],
  kind: string,
  opts: TableOptions & {
    version: TableVersion;
    includeObject: IncludeObject;
    listMeta?: { resourceVersion?: string; continue?: string };
  },
): Record<string, unknown> {
  const cols = columnsOf(kind);
  const defs = [
    ...cols.header.map((h, i) => def(h, i === 0 ? 'name' : '', 0)),
    ...cols.wide.map((h) => def(h, '', 1)),
  ];
  const apiVersion = `meta.k8s.io/${opts.version}`;
  return {
    kind: 'Table',
    apiVersion,
    metadata: opts.listMeta ?? {},
    columnDefinitions: defs,
    rows: items.map((o) => ({
      cells: [...cols.row(o, opts), ...cols.wideRow(o, { ...opts, wide: true })],
      ...(opts.includeObject === 'None'
        ? {}
        : {
            object:
              opts.includeObject === 'Object'
                ? o
                : { kind: 'PartialObjectMetadata', apiVersion, metadata: o.metadata },
          }),
    })),
  };
}

function def(header: string, format: string, priority: number) {
  return {
    name: columnName(header),
    type: 'string',
    format,
    description: header === 'NAME' ? 'Name must be unique within a namespace.' : columnName(header),
    priority,
  };
}
