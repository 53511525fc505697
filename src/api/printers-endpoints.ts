/**
 * The table columns of Endpoints and EndpointSlices, as kubectl prints them (the first three
 * `address:port` pairs and `+ N more...`), and the endpoints part of `vipmesh describe service`.
 */
import { type Backend, lbSettingsOf, targetPortOf } from '../vip-pool/index.js';
import { age, type Columns, formatTable } from './printers.js';
import type { EndpointSlice, Endpoints, KubeObject, Service } from './types.js';

/** kubectl shows this many endpoints in a row, then how many more there are. */
const SHOWN = 3;

function bracketed(ip: string): string {
  return ip.includes(':') ? `[${ip}]` : ip;
}

function shortList(items: string[]): string {
  if (items.length === 0) return '<none>';
  const more = items.length - SHOWN;
  return items.slice(0, SHOWN).join(',') + (more > 0 ? ` + ${more} more...` : '');
}

function endpointsText(e: Endpoints): string {
  const out: string[] = [];
  for (const s of e.subsets ?? []) {
    const ports = (s.ports ?? []).map((p) => p.port);
    for (const a of s.addresses ?? []) {
      if (ports.length === 0) out.push(a.ip);
      for (const p of ports) out.push(`${bracketed(a.ip)}:${p}`);
    }
  }
  return shortList(out);
}

/** The columns of the endpoint kinds, by kind. */
export const ENDPOINT_COLUMNS: Record<string, Columns> = {
  Endpoints: {
    header: ['NAME', 'ENDPOINTS', 'AGE'],
    wide: [],
    row: (o: KubeObject, opts) => [
      o.metadata.name,
      endpointsText(o as Endpoints),
      age(o.metadata.creationTimestamp, opts.now),
    ],
    wideRow: () => [],
  },
  EndpointSlice: {
    header: ['NAME', 'ADDRESSTYPE', 'PORTS', 'ENDPOINTS', 'AGE'],
    wide: [],
    row: (o: KubeObject, opts) => {
      const s = o as EndpointSlice;
      const ports = (s.ports ?? []).map((p) => String(p.port ?? ''));
      const addrs = (s.endpoints ?? []).flatMap((e) => e.addresses ?? []);
      return [
        s.metadata.name,
        s.addressType ?? '<unset>',
        ports.length === 0 ? '<unset>' : ports.join(','),
        shortList(addrs),
        age(s.metadata.creationTimestamp, opts.now),
      ];
    },
    wideRow: () => [],
  },
};

/** One endpoint's health as the Service's `status.endpointHealth` lists it. */
interface ListedHealth {
  ip: string;
  port: number;
  healthy: boolean;
  reason?: string;
}

/**
 * The `Endpoints:` part of `vipmesh describe service`: per Service port, each backend with the port it
 * serves it on, its node, and its health as the VIP holder last reported it (`not ready` for backends
 * the objects mark so, `unknown` before any report).
 */
export function endpointsSection(svc: Service, backends: readonly Backend[]): string {
  const lb = lbSettingsOf(svc);
  if (lb === undefined) return '';
  if (backends.length === 0) {
    const own = lb.ports.map((p) => `${p.port}/${p.protocol} -> the holder's own port ${p.targetPort}`);
    return `Endpoints:                <none> (${own.join(', ') || 'no ports'})\n`;
  }
  const health = (svc.status?.['endpointHealth'] as { endpoints?: ListedHealth[] } | undefined)?.endpoints;
  const byKey = new Map((Array.isArray(health) ? health : []).map((h) => [`${h.ip} ${h.port}`, h] as const));
  let out = 'Endpoints:\n';
  for (const p of lb.ports) {
    out += `  ${p.name ?? '<unset>'} ${p.port}/${p.protocol} -> ${p.targetPort}:\n`;
    const rows = backends.map((b) => {
      const port = targetPortOf(p, b);
      const h = port === undefined ? undefined : byKey.get(`${b.ip} ${port}`);
      const state = !b.ready
        ? 'not ready'
        : port === undefined
          ? `no port named ${p.targetPort}`
          : h === undefined
            ? 'unknown'
            : h.healthy
              ? 'healthy'
              : `unhealthy${h.reason === undefined ? '' : `: ${h.reason}`}`;
      return [port === undefined ? b.ip : `${bracketed(b.ip)}:${port}`, b.nodeName ?? '-', state];
    });
    out += formatTable(['ENDPOINT', 'NODE', 'HEALTH'], rows)
      .split('\n')
      .map((l) => (l === '' ? l : `    ${l}`))
      .join('\n');
  }
  return out;
}
