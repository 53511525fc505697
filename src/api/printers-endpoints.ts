/**
 * The table columns of Endpoints and EndpointSlices, as kubectl prints them: the first three
 * `address:port` pairs and `+ N more...`.
 */
import { age, type Columns } from './printers.js';
import type { EndpointSlice, Endpoints, KubeObject } from './types.js';

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
