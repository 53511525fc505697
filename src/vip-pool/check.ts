import { stringify as toYaml } from 'yaml';
import { isVipmeshError } from '../errors.js';
import { Allocator } from './allocator.js';
import { isObj } from './checker.js';
import { Codes } from './codes.js';
import { decodeObject } from './decode.js';
import { mergeBackends, targetPortOf } from './decode-endpoints.js';
import { annotation } from './decode-service.js';
import { formatProblem, lineOfField, type ParsedObject, parseDocuments, poolProblems } from './parse.js';
import { type FieldPath, formatPath } from './path.js';
import { poolSize } from './pools.js';
import {
  type Backend,
  type BackendSet,
  type ConfigProblem,
  type LbSettings,
  type NamespaceInfo,
  type ServiceRequest,
  serviceKey,
} from './types.js';

/** One file to check: its name (as the user gave it) and its text. */
export interface CheckInput {
  file: string;
  text: string;
}

/** A pool as check-config prints it. `size` is a decimal string when it exceeds 2^53 - 1. */
interface ReportPool {
  name: string;
  addresses: string[];
  size: number | string;
  autoAssign: boolean;
  avoidBuggyIPs: boolean;
}

/** A Service's dry-run result: its addresses, or the error it would get. */
type ReportService =
  | { namespace: string; name: string; ips: string[]; pool: string; routes?: ReportRoute[] }
  | { namespace: string; name: string; error: { code: string; message: string } };

/** Where one Service port goes: `198.51.100.10:80/TCP` to `198.51.100.21:8080`, ... or the holder's own port. */
interface ReportRoute {
  from: string;
  to: string[];
}

/** The routes of a Service's ports over its backends. */
function routesOf(ips: string[], lb: LbSettings, backends: Backend[]): ReportRoute[] {
  return lb.ports.flatMap((p) =>
    ips.map((ip) => {
      const from = `${ip.includes(':') ? `[${ip}]` : ip}:${p.port}/${p.protocol}`;
      if (backends.length === 0) return { from, to: [`the holder's own port ${p.targetPort}`] };
      const to = backends.map((b) => {
        const port = targetPortOf(p, b);
        const addr = b.ip.includes(':') ? `[${b.ip}]` : b.ip;
        const text = port === undefined ? `${addr} (no port named ${p.targetPort})` : `${addr}:${port}`;
        return b.ready ? text : `${text} (not ready)`;
      });
      return { from, to };
    }),
  );
}

/** What check-config prints (`-o json` is exactly this object). */
interface CheckReport {
  pools: ReportPool[];
  services: ReportService[];
  errors: ConfigProblem[];
}

function sizeOut(n: bigint): number | string {
  return n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n.toString();
}

/** Where an allocation error points: the field the user would edit. */
function errorPath(obj: ParsedObject, svc: ServiceRequest, code: string): FieldPath {
  const meta = isObj(obj.object['metadata']) ? obj.object['metadata'] : {};
  const ann = isObj(meta['annotations']) ? (meta['annotations'] as Record<string, string>) : {};
  if (svc.requestedIPs.length > 0 && code !== Codes.POOL_NOT_FOUND && code !== Codes.POOL_NOT_ALLOWED) {
    return annotation(undefined, ann, 'loadBalancerIPs')?.path ?? ['spec', 'loadBalancerIP'];
  }
  if (svc.pool !== undefined) return annotation(undefined, ann, 'address-pool')?.path ?? [];
  return [];
}

/**
 * The dry run behind `vipmesh check-config`: parse and validate every file, check the pools together,
 * then give every Service (in file order) the addresses the allocator would give it. Never throws on
 * any input text.
 */
export function checkConfig(inputs: readonly CheckInput[]): CheckReport {
  const objects: ParsedObject[] = [];
  const errors: ConfigProblem[] = [];
  for (const input of inputs) {
    const r = parseDocuments(input.text, input.file);
    objects.push(...r.objects);
    errors.push(...r.problems);
  }
  const checked = poolProblems(objects);
  errors.push(...checked.problems);
  // Pools with a pool-set problem (the later of two overlapping or same-named pools) are left out, so
  // the others can still be tried.
  const pools = checked.pools.filter((_, i) => !checked.bad.has(i)).map((s) => s.pool);
  const namespaces: NamespaceInfo[] = objects.flatMap((o) =>
    o.decoded?.kind === 'Namespace' ? [o.decoded.namespace] : [],
  );
  const allocator = new Allocator(pools, { namespaces });
  const backendSets = new Map<string, BackendSet[]>();
  for (const o of objects) {
    const d = o.decoded;
    if (d?.kind !== 'Endpoints' && d?.kind !== 'EndpointSlice') continue;
    const key = serviceKey({ namespace: d.backends.namespace, name: d.backends.service });
    backendSets.set(key, [...(backendSets.get(key) ?? []), d.backends]);
  }
  const services: ReportService[] = [];
  for (const obj of objects) {
    if (obj.kind !== 'Service') continue;
    const namespace = obj.namespace === '' ? 'default' : obj.namespace;
    if (obj.decoded?.kind !== 'Service') {
      const first = decodeObject(obj.object).issues[0];
      const error = {
        code: first?.code ?? Codes.FIELD_INVALID,
        message: first === undefined ? 'invalid Service' : `${formatPath(first.path)}: ${first.message}`,
      };
      services.push({ namespace, name: obj.name, error });
      continue;
    }
    const svc = obj.decoded.service;
    // Not a LoadBalancer Service (or another load balancer's class): vipmesh gives it nothing.
    if (svc === undefined) continue;
    try {
      const a = allocator.assign(svc);
      const lb = obj.decoded.lb;
      const backends = mergeBackends(backendSets.get(serviceKey(svc)) ?? []);
      services.push({
        namespace: svc.namespace,
        name: svc.name,
        ips: a.ips,
        pool: a.pool,
        ...(lb === undefined ? {} : { routes: routesOf(a.ips, lb, backends) }),
      });
    } catch (err) {
      if (!isVipmeshError(err)) throw err;
      const prefix = `${serviceKey(svc)}: `;
      const message = err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
      services.push({ namespace: svc.namespace, name: svc.name, error: { code: err.code, message } });
      const path = errorPath(obj, svc, err.code);
      errors.push({
        file: obj.file,
        line: lineOfField(obj, path),
        kind: 'Service',
        name: obj.name,
        path: formatPath(path),
        code: err.code,
        message,
      });
    }
  }
  const order = new Map(inputs.map((input, i) => [input.file, i] as const));
  errors.sort((a, b) => (order.get(a.file) ?? 0) - (order.get(b.file) ?? 0) || a.line - b.line);
  const reportPools = pools.map((p) => ({
    name: p.name,
    addresses: [...p.addresses],
    size: sizeOut(poolSize(p)),
    autoAssign: p.autoAssign,
    avoidBuggyIPs: p.avoidBuggyIPs,
  }));
  return { pools: reportPools, services, errors };
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return (
    rows
      .map((r) =>
        r
          .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 2)))
          .join('')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

/** Output formats of check-config. */
export type ReportFormat = 'table' | 'json' | 'yaml';

/**
 * Render a report: `json`/`yaml` put everything in one document on stdout; `table` prints the pools and
 * Services on stdout and one line per problem on stderr.
 */
export function renderReport(r: CheckReport, format: ReportFormat): { stdout: string; stderr: string } {
  if (format === 'json') return { stdout: `${JSON.stringify(r, null, 2)}\n`, stderr: '' };
  if (format === 'yaml') return { stdout: toYaml(r), stderr: '' };
  let out = '';
  if (r.pools.length > 0) {
    const rows = [['POOL', 'ADDRESSES', 'SIZE', 'AUTO-ASSIGN', 'AVOID-BUGGY-IPS']];
    for (const p of r.pools)
      rows.push([
        p.name,
        p.addresses.join(','),
        String(p.size),
        String(p.autoAssign),
        String(p.avoidBuggyIPs),
      ]);
    out += table(rows);
  } else {
    out += 'no valid address pools\n';
  }
  if (r.services.length > 0) {
    const rows = [['SERVICE', 'POOL', 'ADDRESSES']];
    for (const s of r.services) {
      const key = `${s.namespace}/${s.name}`;
      rows.push('error' in s ? [key, '-', `error: ${s.error.code}`] : [key, s.pool, s.ips.join(',')]);
    }
    out += `\n${table(rows)}`;
    const routes = [['SERVICE', 'PORT', 'GOES TO']];
    for (const s of r.services) {
      if ('error' in s) continue;
      for (const rt of s.routes ?? []) routes.push([`${s.namespace}/${s.name}`, rt.from, rt.to.join(', ')]);
    }
    if (routes.length > 1) out += `\n${table(routes)}`;
  }
  const err = r.errors.map((p) => `${formatProblem(p)}\n`).join('');
  const summary =
    r.errors.length === 0 ? '' : `${r.errors.length} problem${r.errors.length === 1 ? '' : 's'} found\n`;
  return { stdout: out, stderr: err + summary };
}
