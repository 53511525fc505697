/**
 * kubectl-like output of objects: the tables of `vipmesh get` (with `-o wide` columns) and the text of
 * `vipmesh describe service`. Pure functions of the objects and the current time.
 */

import type { Backend } from '../vip-pool/index.js';
import { placesOf, withNodes } from './backend-nodes.js';
import { ENDPOINT_COLUMNS, endpointsSection } from './printers-endpoints.js';
import type {
  Event,
  IPAddressPool,
  KubeObject,
  L2Advertisement,
  Node,
  ResourceInfo,
  Service,
} from './types.js';
import { nodeReady } from './types.js';

/** How to print a table. */
export interface TableOptions {
  wide?: boolean;
  /** Show the NAMESPACE column (listing across namespaces). */
  withNamespace?: boolean;
  /** Now, in ms since the epoch (for AGE). */
  now: number;
  /** The Nodes, to show which one holds each Service's VIPs (wide Service tables). */
  nodes?: Node[];
  /** Columns added after the kind's own (the CLI's SOURCE of address pools). */
  extraColumns?: Array<{ header: string; value: (o: KubeObject) => string }>;
}

/** kubectl's short age: `45s`, `12m`, `5h`, `3d`. */
export function age(created: string | undefined, now: number): string {
  if (created === undefined) return '<unknown>';
  const s = Math.max(0, Math.floor((now - Date.parse(created)) / 1000));
  if (!Number.isFinite(s)) return '<unknown>';
  if (s < 120) return `${s}s`;
  if (s < 120 * 60) return `${Math.floor(s / 60)}m`;
  if (s < 48 * 3600) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** Left-aligned columns separated by three spaces, as kubectl prints them. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('   ')
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}

const NONE = '<none>';

function list(xs: readonly unknown[] | undefined): string {
  return xs === undefined || xs.length === 0 ? NONE : xs.map(String).join(',');
}

/** The IPs in a Service's `status.loadBalancer.ingress`. */
function ingressIPs(svc: Service): string[] {
  return (svc.status?.loadBalancer?.ingress ?? [])
    .map((i) => i.ip ?? i.hostname ?? '')
    .filter((x) => x !== '');
}

/** The names of the Nodes announcing any of `ips` (from each Node's `status.vips`). */
function holdersOf(ips: string[], nodes: Node[] | undefined): string[] {
  return (nodes ?? [])
    .filter((n) => (n.status?.vips ?? []).some((v) => ips.includes(v)))
    .map((n) => n.metadata.name);
}

function ports(svc: Service): string {
  const ps = svc.spec?.ports ?? [];
  if (ps.length === 0) return NONE;
  return ps
    .map((p) => `${p.port}${p.nodePort === undefined ? '' : `:${p.nodePort}`}/${p.protocol ?? 'TCP'}`)
    .join(',');
}

function externalIP(svc: Service): string {
  const ips = ingressIPs(svc);
  if (ips.length > 0) return ips.join(',');
  return svc.spec?.type === 'LoadBalancer' ? '<pending>' : NONE;
}

function labelsText(l: Record<string, string> | undefined): string {
  const e = Object.entries(l ?? {});
  return e.length === 0 ? NONE : e.map(([k, v]) => `${k}=${v}`).join(',');
}

function nodeStatus(n: Node): string {
  const r = nodeReady(n);
  const s = r === 'True' ? 'Ready' : r === 'False' ? 'NotReady' : 'Unknown';
  return n.spec?.unschedulable === true ? `${s},SchedulingDisabled` : s;
}

function roles(n: Node): string {
  const rs = Object.keys(n.metadata.labels ?? {})
    .filter((k) => k.startsWith('node-role.kubernetes.io/'))
    .map((k) => k.slice('node-role.kubernetes.io/'.length));
  return rs.length === 0 ? NONE : rs.sort().join(',');
}

/** The columns of one kind's table: the standard ones, the `-o wide` ones, and how to fill each row. */
export type Columns = {
  header: string[];
  wide: string[];
  row: (o: KubeObject, opts: TableOptions) => string[];
  wideRow: (o: KubeObject, opts: TableOptions) => string[];
};

const COLUMNS: Record<string, Columns> = {
  Service: {
    header: ['NAME', 'TYPE', 'CLUSTER-IP', 'EXTERNAL-IP', 'PORT(S)', 'AGE'],
    wide: ['SELECTOR', 'POOL', 'HOLDER'],
    row: (o, opts) => {
      const s = o as Service;
      return [
        s.metadata.name,
        s.spec?.type ?? 'ClusterIP',
        s.spec?.clusterIP ?? NONE,
        externalIP(s),
        ports(s),
        age(s.metadata.creationTimestamp, opts.now),
      ];
    },
    wideRow: (o, opts) => {
      const s = o as Service;
      return [
        labelsText(s.spec?.selector),
        s.metadata.annotations?.['metallb.io/ip-allocated-from-pool'] ?? allocatedPool(s) ?? NONE,
        list(holdersOf(ingressIPs(s), opts.nodes)),
      ];
    },
  },
  Node: {
    header: ['NAME', 'STATUS', 'ROLES', 'AGE', 'VERSION'],
    wide: ['INTERNAL-IP', 'POD-CIDR', 'VIPS'],
    row: (o, opts) => {
      const n = o as Node;
      return [
        n.metadata.name,
        nodeStatus(n),
        roles(n),
        age(n.metadata.creationTimestamp, opts.now),
        n.status?.nodeInfo?.['version'] ?? NONE,
      ];
    },
    wideRow: (o) => {
      const n = o as Node;
      const ips = (n.status?.addresses ?? []).filter((a) => a.type === 'InternalIP').map((a) => a.address);
      return [list(ips), n.spec?.podCIDR ?? NONE, list(n.status?.vips)];
    },
  },
  IPAddressPool: {
    header: ['NAME', 'AUTO ASSIGN', 'AVOID BUGGY IPS', 'ADDRESSES'],
    wide: [],
    row: (o) => {
      const p = o as IPAddressPool;
      return [
        p.metadata.name,
        String(p.spec?.autoAssign ?? true),
        String(p.spec?.avoidBuggyIPs ?? false),
        list(p.spec?.addresses),
      ];
    },
    wideRow: () => [],
  },
  L2Advertisement: {
    header: ['NAME', 'IPADDRESSPOOLS', 'IPADDRESSPOOL SELECTORS', 'INTERFACES'],
    wide: ['NODE SELECTORS'],
    row: (o) => {
      const l = o as L2Advertisement;
      const sel = l.spec?.ipAddressPoolSelectors;
      return [
        l.metadata.name,
        list(l.spec?.ipAddressPools),
        sel === undefined || sel.length === 0 ? NONE : JSON.stringify(sel),
        list(l.spec?.interfaces),
      ];
    },
    wideRow: (o) => {
      const sel = (o as L2Advertisement).spec?.nodeSelectors;
      return [sel === undefined || sel.length === 0 ? NONE : JSON.stringify(sel)];
    },
  },
  Event: {
    header: ['LAST SEEN', 'TYPE', 'REASON', 'OBJECT', 'MESSAGE'],
    wide: [],
    row: (o, opts) => {
      const e = o as Event;
      const io = e.involvedObject;
      return [
        age(e.lastTimestamp ?? e.metadata.creationTimestamp, opts.now),
        e.type ?? 'Normal',
        e.reason ?? '',
        `${(io?.kind ?? '').toLowerCase()}/${io?.name ?? ''}`,
        e.message ?? '',
      ];
    },
    wideRow: () => [],
  },
};

/** The table columns of a kind (NAME and AGE for kinds without their own). */
export function columnsOf(kind: string): Columns {
  return (
    COLUMNS[kind] ??
    ENDPOINT_COLUMNS[kind] ?? {
      header: ['NAME', 'AGE'],
      wide: [],
      row: (o, t) => [o.metadata.name, age(o.metadata.creationTimestamp, t.now)],
      wideRow: () => [],
    }
  );
}

/** The `vipmesh get` table for `items` of resource `r`. */
export function printTable(r: ResourceInfo, items: KubeObject[], opts: TableOptions): string {
  if (items.length === 0) return '';
  const cols = columnsOf(r.kind);
  const header = [
    ...(opts.withNamespace ? ['NAMESPACE'] : []),
    ...cols.header,
    ...(opts.wide ? cols.wide : []),
    ...(opts.extraColumns ?? []).map((c) => c.header),
  ];
  const rows = items.map((o) => [
    ...(opts.withNamespace ? [o.metadata.namespace ?? ''] : []),
    ...cols.row(o, opts),
    ...(opts.wide ? cols.wideRow(o, opts) : []),
    ...(opts.extraColumns ?? []).map((c) => c.value(o)),
  ]);
  return formatTable(header, rows);
}

function kv(label: string, value: string): string {
  return `${`${label}:`.padEnd(26)}${value}\n`;
}

function multi(label: string, m: Record<string, string> | undefined, sep = '='): string {
  const e = Object.entries(m ?? {});
  if (e.length === 0) return kv(label, NONE);
  return e
    .map(([k, v], i) => (i === 0 ? kv(label, `${k}${sep}${v}`) : `${''.padEnd(26)}${k}${sep}${v}\n`))
    .join('');
}

/**
 * `vipmesh describe service`: the Service, who holds its VIPs, its conditions, its endpoints (`backends`,
 * merged from its Endpoints and EndpointSlices) with their health, and its events.
 */
export function describeService(
  svc: Service,
  events: Event[],
  nodes: Node[],
  now: number,
  backends: readonly Backend[] = [],
): string {
  let out = '';
  out += kv('Name', svc.metadata.name);
  out += kv('Namespace', svc.metadata.namespace ?? 'default');
  out += multi('Labels', svc.metadata.labels);
  out += multi('Annotations', svc.metadata.annotations, ': ');
  out += kv('Selector', labelsText(svc.spec?.selector));
  out += kv('Type', svc.spec?.type ?? 'ClusterIP');
  if (svc.spec?.loadBalancerIP !== undefined) out += kv('LoadBalancer IP', svc.spec.loadBalancerIP);
  const ips = ingressIPs(svc);
  out += kv('LoadBalancer Ingress', ips.length === 0 ? '<pending>' : ips.join(', '));
  for (const p of svc.spec?.ports ?? []) {
    out += kv('Port', `${p.name ?? '<unset>'}  ${p.port}/${p.protocol ?? 'TCP'}`);
  }
  out += kv('Announced by', list(holdersOf(ips, nodes)));
  for (const c of svc.status?.conditions ?? []) out += kv(`Condition ${c.type}`, conditionText(c));
  // A backend the objects give no node is on the node whose address or pod subnet it is (as the server
  // finds it for `externalTrafficPolicy: Local`).
  out += endpointsSection(svc, withNodes(backends, placesOf(nodes)));
  return `${out}${eventsSection(events, now)}`;
}

function conditionText(c: { status: string; reason?: string; message?: string }): string {
  return `${c.status}${c.reason === undefined ? '' : ` (${c.reason})`}${c.message === undefined ? '' : `: ${c.message}`}`;
}

/** The `Events:` part of describe, oldest first, header underlined as kubectl does. */
function eventsSection(events: Event[], now: number): string {
  if (events.length === 0) return kv('Events', NONE);
  const sorted = [...events].sort(
    (a, b) => Date.parse(a.lastTimestamp ?? '') - Date.parse(b.lastTimestamp ?? ''),
  );
  const table = formatTable(
    ['Type', 'Reason', 'Age', 'From', 'Message'],
    sorted.map((e) => [
      e.type ?? 'Normal',
      e.reason ?? '',
      age(e.lastTimestamp ?? e.metadata.creationTimestamp, now),
      e.source?.component ?? '',
      e.message ?? '',
    ]),
  );
  const under = ['----', '------', '----', '----', '-------'];
  const lines = table.split('\n');
  const header = lines[0]!;
  const starts = ['Type', 'Reason', 'Age', 'From', 'Message'].map((h) => header.indexOf(h));
  let ul = '';
  starts.forEach((s, i) => {
    ul = ul.padEnd(s) + under[i];
  });
  return `Events:\n${[header, ul, ...lines.slice(1)].map((l) => (l === '' ? l : `  ${l}`)).join('\n')}`;
}

/** `vipmesh describe node`: readiness, addresses, pod subnet, the VIPs it announces, and its events. */
export function describeNode(node: Node, events: Event[], now: number): string {
  let out = '';
  out += kv('Name', node.metadata.name);
  out += kv('Roles', roles(node));
  out += multi('Labels', node.metadata.labels);
  out += multi('Annotations', node.metadata.annotations, ': ');
  out += kv('CreationTimestamp', node.metadata.creationTimestamp ?? '<unknown>');
  out += kv('Status', nodeStatus(node));
  for (const c of node.status?.conditions ?? []) out += kv(`Condition ${c.type}`, conditionText(c));
  for (const a of node.status?.addresses ?? []) out += kv(a.type, a.address);
  out += kv('PodCIDR', node.spec?.podCIDR ?? NONE);
  out += kv('VIPs', list(node.status?.vips));
  return `${out}${eventsSection(events, now)}`;
}

/** The pool named in a Service's IPAllocated condition (`allocated 198.51.100.100 from pool lan`). */
function allocatedPool(s: Service): string | undefined {
  const cond = s.status?.conditions?.find((c) => c.type === 'IPAllocated' && c.status === 'True');
  return cond?.message === undefined ? undefined : /from pool (\S+)$/.exec(cond.message)?.[1];
}
