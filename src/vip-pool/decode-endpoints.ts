/**
 * core/v1 Endpoints and discovery.k8s.io/v1 EndpointSlice: the backends of a Service. vipmesh runs no
 * pods, so a Service's selector selects nothing by itself; these objects, applied by the user, name the
 * machines, node processes or pod addresses its ports go to.
 */
import { familyName, formatIp, parseIp } from '../util/ip.js';
import { type Checker, isObj, type Obj } from './checker.js';
import { Codes } from './codes.js';
import { decodeMetadata } from './decode-pool.js';
import type { FieldPath } from './path.js';
import type { Backend, BackendSet, LbPortSpec, LbProtocol } from './types.js';

/** The label that ties an EndpointSlice to its Service (set by Kubernetes' own controller too). */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** Kubernetes' limits on one slice: 1000 endpoints, 100 ports. */
const SLICE_MAX_ENDPOINTS = 1000;
const SLICE_MAX_PORTS = 100;

type Port = Backend['ports'][number];

/** The `ports` list of an Endpoints subset or a slice: name, port 1-65535, protocol TCP or UDP. */
function decodePorts(c: Checker, obj: Obj, path: FieldPath, max: number): Port[] {
  const out: Port[] = [];
  const list = c.list(obj, 'ports', path) ?? [];
  if (list.length > max)
    c.add([...path, 'ports'], Codes.FIELD_INVALID, `at most ${max} ports, got ${list.length}`);
  list.slice(0, max).forEach((v, i) => {
    const p = [...path, 'ports', i];
    if (!isObj(v)) {
      c.add(p, Codes.FIELD_INVALID, 'must be a map with port and protocol');
      return;
    }
    const proto = c.str(v, 'protocol', p) ?? 'TCP';
    if (proto !== 'TCP' && proto !== 'UDP') {
      c.add([...p, 'protocol'], Codes.FIELD_INVALID, `must be TCP or UDP, got "${proto}"`);
      return;
    }
    const port = v['port'];
    if (port === undefined || port === null) {
      c.add([...p, 'port'], Codes.FIELD_REQUIRED, 'required: the port the backends listen on');
      return;
    }
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
      c.add([...p, 'port'], Codes.FIELD_INVALID, 'must be a port number 1-65535');
      return;
    }
    const name = c.str(v, 'name', p);
    const twin = out.findIndex(
      (q) => (name !== undefined && q.name === name) || (q.port === port && q.protocol === proto),
    );
    if (twin >= 0) {
      c.add(p, Codes.FIELD_INVALID, `the same port or name as ports[${twin}]`);
      return;
    }
    out.push(
      name === undefined || name === ''
        ? { port, protocol: proto as LbProtocol }
        : { name, port, protocol: proto as LbProtocol },
    );
  });
  return out;
}

/** One address (an IP), canonical, or undefined with an issue. */
function address(c: Checker, v: unknown, path: FieldPath, family?: 4 | 6): string | undefined {
  const ip = typeof v === 'string' ? parseIp(v.trim()) : undefined;
  if (ip === undefined) {
    c.add(path, Codes.BAD_ADDRESS, `${typeof v === 'string' ? `"${v}"` : 'the value'} is not an IP address`);
    return undefined;
  }
  if (family !== undefined && ip.family !== family) {
    c.add(path, Codes.FIELD_INVALID, `${v} is not an ${familyName(family)} address (addressType)`);
    return undefined;
  }
  return formatIp(ip);
}

/** core/v1 Endpoints -> the backends of the Service of the same name. */
export function decodeEndpoints(c: Checker, obj: Obj): BackendSet {
  const meta = decodeMetadata(c, obj);
  const backends: Backend[] = [];
  (c.list(obj, 'subsets', []) ?? []).forEach((s, i) => {
    const sp = ['subsets', i];
    if (!isObj(s)) {
      c.add(sp, Codes.FIELD_INVALID, 'must be a map with addresses and ports');
      return;
    }
    const ports = decodePorts(c, s, sp, Number.MAX_SAFE_INTEGER);
    for (const [key, ready] of [
      ['addresses', true],
      ['notReadyAddresses', false],
    ] as const) {
      (c.list(s, key, sp) ?? []).forEach((a, j) => {
        const ap = [...sp, key, j];
        if (!isObj(a)) {
          c.add(ap, Codes.FIELD_INVALID, 'must be a map with ip');
          return;
        }
        if (a['ip'] === undefined) {
          c.add([...ap, 'ip'], Codes.FIELD_REQUIRED, 'required');
          return;
        }
        const ip = address(c, a['ip'], [...ap, 'ip']);
        const nodeName = c.str(a, 'nodeName', ap);
        if (nodeName !== undefined && nodeName !== '') c.name(nodeName, [...ap, 'nodeName']);
        if (ip === undefined) return;
        backends.push({ ip, ...(nodeName ? { nodeName } : {}), ports: ports.map((p) => ({ ...p })), ready });
      });
    }
  });
  return { namespace: meta.namespace === '' ? 'default' : meta.namespace, service: meta.name, backends };
}

/** discovery.k8s.io/v1 EndpointSlice -> the backends of the Service its `kubernetes.io/service-name` names. */
export function decodeEndpointSlice(c: Checker, obj: Obj): BackendSet {
  const meta = decodeMetadata(c, obj);
  const service = meta.labels[SERVICE_NAME_LABEL] ?? '';
  if (service === '') {
    c.add(
      ['metadata', 'labels'],
      Codes.FIELD_REQUIRED,
      `needs the label ${SERVICE_NAME_LABEL}: the name of the Service these endpoints serve`,
    );
  } else c.name(service, ['metadata', 'labels', SERVICE_NAME_LABEL], 'dns1035-label');
  const type = c.str(obj, 'addressType', [], true);
  let family: 4 | 6 | undefined;
  if (type === 'IPv4') family = 4;
  else if (type === 'IPv6') family = 6;
  else if (type !== undefined)
    c.add(
      ['addressType'],
      Codes.FIELD_INVALID,
      type === 'FQDN'
        ? 'FQDN endpoints are not served: vipmesh balances to addresses (IPv4 or IPv6)'
        : `must be IPv4 or IPv6, got "${type}"`,
    );
  const ports = decodePorts(c, obj, [], SLICE_MAX_PORTS);
  const backends: Backend[] = [];
  const list = c.list(obj, 'endpoints', [], true) ?? [];
  if (list.length > SLICE_MAX_ENDPOINTS)
    c.add(['endpoints'], Codes.FIELD_INVALID, `at most ${SLICE_MAX_ENDPOINTS} endpoints, got ${list.length}`);
  list.slice(0, SLICE_MAX_ENDPOINTS).forEach((e, i) => {
    const ep = ['endpoints', i];
    if (!isObj(e)) {
      c.add(ep, Codes.FIELD_INVALID, 'must be a map with addresses');
      return;
    }
    const addrs = c.list(e, 'addresses', ep, true) ?? [];
    if (addrs.length !== 1 && Array.isArray(e['addresses']))
      c.add([...ep, 'addresses'], Codes.FIELD_INVALID, `must hold exactly one address, got ${addrs.length}`);
    const cond = c.map(e, 'conditions', ep) ?? {};
    // Kubernetes: an absent `ready` means ready.
    const ready = c.bool(cond, 'ready', [...ep, 'conditions'], true);
    const nodeName = c.str(e, 'nodeName', ep);
    if (nodeName !== undefined && nodeName !== '') c.name(nodeName, [...ep, 'nodeName']);
    if (addrs.length !== 1 || family === undefined) return;
    const ip = address(c, addrs[0], [...ep, 'addresses', 0], family);
    if (ip === undefined) return;
    backends.push({ ip, ...(nodeName ? { nodeName } : {}), ports: ports.map((p) => ({ ...p })), ready });
  });
  return { namespace: meta.namespace === '' ? 'default' : meta.namespace, service, backends };
}

/**
 * The backends of every set given (a Service's Endpoints and its slices), one per address: ports merged,
 * ready when any set says ready, the first node name given. Sorted by address text.
 */
export function mergeBackends(sets: Iterable<BackendSet>): Backend[] {
  const byIp = new Map<string, Backend>();
  for (const s of sets) {
    for (const b of s.backends) {
      const have = byIp.get(b.ip);
      if (have === undefined) {
        byIp.set(b.ip, { ...b, ports: [...b.ports] });
        continue;
      }
      have.ready ||= b.ready;
      if (have.nodeName === undefined && b.nodeName !== undefined) have.nodeName = b.nodeName;
      for (const p of b.ports) {
        if (!have.ports.some((q) => q.port === p.port && q.protocol === p.protocol && q.name === p.name))
          have.ports.push(p);
      }
    }
  }
  return [...byIp.values()].sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0));
}

/**
 * The port a backend serves a Service port on: a numeric targetPort as it is, a named one through the
 * backend's port of that name and protocol; undefined when the backend has no port of that name.
 */
export function targetPortOf(port: LbPortSpec, backend: Backend): number | undefined {
  if (typeof port.targetPort === 'number') return port.targetPort;
  return backend.ports.find((p) => p.name === port.targetPort && p.protocol === port.protocol)?.port;
}
