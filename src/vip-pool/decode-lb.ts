/**
 * A LoadBalancer Service's load-balancing settings: its ports with their target ports, the traffic policy,
 * session affinity, and the `vipmesh.io/` annotations for the health check and the spreading algorithm.
 * The defaults are keepalived's and HAProxy's (check every 2 s, 1 s timeout, 2 successes to rise, 3
 * failures to fall).
 */
import { parseDuration } from '../util/duration.js';
import { type Checker, isObj, type Obj } from './checker.js';
import { Codes } from './codes.js';
import type { FieldPath } from './path.js';
import type { HealthCheckSettings, LbPortSpec, LbSettings } from './types.js';

/** The annotation prefix of vipmesh's own Service settings. */
export const LB_ANNOTATION_PREFIX = 'vipmesh.io/';

/** The Service annotations vipmesh reads, with their defaults (docs/endpoints.md lists them). */
export const LB_ANNOTATIONS = {
  /** `tcp` (connect), `http` (GET the path) or `none` [tcp]. */
  healthCheck: 'vipmesh.io/health-check',
  /** The HTTP check's path [/]. */
  path: 'vipmesh.io/health-check-path',
  /** The accepted HTTP status: `200` or a range `200-399` [200-399]. */
  status: 'vipmesh.io/health-check-status',
  /** Time between checks of one endpoint [2s]. */
  interval: 'vipmesh.io/health-check-interval',
  /** Time a check may take [1s], at most the interval. */
  timeout: 'vipmesh.io/health-check-timeout',
  /** Consecutive successes that make an endpoint healthy [2]. */
  rise: 'vipmesh.io/health-check-rise',
  /** Consecutive failures that make it unhealthy [3]. */
  fall: 'vipmesh.io/health-check-fall',
  /** How new connections spread: `random` or `hash` (of the client address and port) [random]. */
  algorithm: 'vipmesh.io/lb-algorithm',
} as const;

/** The health check when no annotation says otherwise. */
export const DEFAULT_HEALTH_CHECK: HealthCheckSettings = {
  type: 'tcp',
  path: '/',
  expectStatus: [200, 399],
  intervalMs: 2000,
  timeoutMs: 1000,
  rise: 2,
  fall: 3,
};

/** `sessionAffinityConfig.clientIP.timeoutSeconds` when absent, and its largest value (Kubernetes'). */
const AFFINITY_DEFAULT_S = 10800;
const AFFINITY_MAX_S = 86400;
/** Bounds of the check interval: a check more often than every 100 ms is a load, not a check. */
const INTERVAL_MIN_MS = 100;
const INTERVAL_MAX_MS = 3_600_000;
/** Bounds of rise and fall (HAProxy takes any positive number; a hundred checks is already minutes). */
const COUNT_MAX = 100;
/** An IANA service name, as a Service's named targetPort must be. */
const PORT_NAME = /^(?=.*[a-z])[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$/;

const KNOWN = new Set<string>(Object.values(LB_ANNOTATIONS));

/** The Service's load-balancing settings; issues for values that are wrong, defaults in their place. */
export function decodeLbSettings(
  c: Checker,
  spec: Obj,
  annotations: Readonly<Record<string, string>>,
): LbSettings {
  const sp = ['spec'];
  const etp = c.str(spec, 'externalTrafficPolicy', sp);
  const affinity = c.str(spec, 'sessionAffinity', sp) ?? 'None';
  if (affinity !== 'None' && affinity !== 'ClientIP') {
    c.add([...sp, 'sessionAffinity'], Codes.FIELD_INVALID, `must be None or ClientIP, got "${affinity}"`);
  }
  return {
    ports: decodeLbPorts(c, spec),
    externalTrafficPolicy: etp === 'Local' ? 'Local' : 'Cluster',
    sessionAffinity: affinity === 'ClientIP' ? 'ClientIP' : 'None',
    affinityTimeoutSeconds: decodeAffinityTimeout(c, spec),
    algorithm: decodeAlgorithm(c, annotations),
    healthCheck: decodeHealthCheck(c, annotations),
  };
}

function decodeLbPorts(c: Checker, spec: Obj): LbPortSpec[] {
  const out: LbPortSpec[] = [];
  const list = Array.isArray(spec['ports']) ? spec['ports'] : [];
  list.forEach((v, i) => {
    // The port itself and its protocol are checked with the address-sharing rules (decode-service.ts).
    if (!isObj(v) || typeof v['port'] !== 'number') return;
    const proto = v['protocol'] ?? 'TCP';
    if (proto !== 'TCP' && proto !== 'UDP') return;
    const p: LbPortSpec = { protocol: proto, port: v['port'], targetPort: v['port'] };
    const name = v['name'];
    if (typeof name === 'string' && name !== '') p.name = name;
    const target = decodeTargetPort(c, v['targetPort'], ['spec', 'ports', i, 'targetPort']);
    if (target !== undefined) p.targetPort = target;
    out.push(p);
  });
  return out;
}

function decodeTargetPort(c: Checker, v: unknown, path: FieldPath): number | string | undefined {
  if (v === undefined || v === null || v === 0 || v === '') return undefined;
  if (typeof v === 'number') {
    if (Number.isInteger(v) && v >= 1 && v <= 65535) return v;
    c.add(path, Codes.FIELD_INVALID, `must be a port number 1-65535 or a port name, got ${v}`);
    return undefined;
  }
  if (typeof v === 'string') {
    if (/^\d+$/.test(v)) return decodeTargetPort(c, Number(v), path);
    if (PORT_NAME.test(v)) return v;
    c.add(
      path,
      Codes.FIELD_INVALID,
      `"${v}" is not a port name (up to 15 lower-case letters, digits and '-', with a letter)`,
    );
    return undefined;
  }
  c.add(path, Codes.FIELD_INVALID, 'must be a port number or a port name');
  return undefined;
}

function decodeAffinityTimeout(c: Checker, spec: Obj): number {
  const cfg = isObj(spec['sessionAffinityConfig']) ? spec['sessionAffinityConfig'] : {};
  const client = isObj(cfg['clientIP']) ? cfg['clientIP'] : {};
  const v = client['timeoutSeconds'];
  if (v === undefined || v === null) return AFFINITY_DEFAULT_S;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= AFFINITY_MAX_S) return v;
  c.add(
    ['spec', 'sessionAffinityConfig', 'clientIP', 'timeoutSeconds'],
    Codes.FIELD_INVALID,
    `must be a whole number of seconds 1-${AFFINITY_MAX_S}`,
  );
  return AFFINITY_DEFAULT_S;
}

function at(key: string): FieldPath {
  return ['metadata', 'annotations', key];
}

function decodeAlgorithm(c: Checker, ann: Readonly<Record<string, string>>): LbSettings['algorithm'] {
  const v = ann[LB_ANNOTATIONS.algorithm]?.trim();
  if (v === undefined || v === 'random') return 'random';
  if (v === 'hash') return 'hash';
  c.add(at(LB_ANNOTATIONS.algorithm), Codes.FIELD_INVALID, `must be random or hash, got "${v}"`);
  return 'random';
}

function decodeHealthCheck(c: Checker, ann: Readonly<Record<string, string>>): HealthCheckSettings {
  for (const k of Object.keys(ann)) {
    if (k.startsWith(`${LB_ANNOTATION_PREFIX}health-check`) || k.startsWith(`${LB_ANNOTATION_PREFIX}lb-`)) {
      if (!KNOWN.has(k)) {
        const list = [...KNOWN].join(', ');
        c.add(at(k), Codes.FIELD_UNKNOWN, `unknown vipmesh annotation (expected one of: ${list})`);
      }
    }
  }
  const hc: HealthCheckSettings = { ...DEFAULT_HEALTH_CHECK, expectStatus: [200, 399] };
  const type = ann[LB_ANNOTATIONS.healthCheck]?.trim();
  if (type === 'tcp' || type === 'http' || type === 'none') hc.type = type;
  else if (type !== undefined)
    c.add(at(LB_ANNOTATIONS.healthCheck), Codes.FIELD_INVALID, `must be tcp, http or none, got "${type}"`);
  const path = ann[LB_ANNOTATIONS.path]?.trim();
  if (path !== undefined) {
    if (/^\/[\x21-\x7e]*$/.test(path)) hc.path = path;
    else
      c.add(
        at(LB_ANNOTATIONS.path),
        Codes.FIELD_INVALID,
        `must be an absolute path without spaces, got "${path}"`,
      );
  }
  const status = ann[LB_ANNOTATIONS.status]?.trim();
  if (status !== undefined) {
    const m = /^([1-5]\d\d)(?:-([1-5]\d\d))?$/.exec(status);
    const lo = m === null ? 0 : Number(m[1]);
    const hi = m?.[2] === undefined ? lo : Number(m[2]);
    if (m !== null && lo <= hi) hc.expectStatus = [lo, hi];
    else
      c.add(
        at(LB_ANNOTATIONS.status),
        Codes.FIELD_INVALID,
        `must be an HTTP status (200) or a range (200-399), got "${status}"`,
      );
  }
  hc.intervalMs = duration(c, ann, LB_ANNOTATIONS.interval, hc.intervalMs, INTERVAL_MIN_MS, INTERVAL_MAX_MS);
  hc.timeoutMs = duration(c, ann, LB_ANNOTATIONS.timeout, hc.timeoutMs, 1, INTERVAL_MAX_MS);
  if (hc.timeoutMs > hc.intervalMs) {
    const key = ann[LB_ANNOTATIONS.timeout] !== undefined ? LB_ANNOTATIONS.timeout : LB_ANNOTATIONS.interval;
    c.add(
      at(key),
      Codes.FIELD_INVALID,
      `the timeout (${hc.timeoutMs} ms) must not exceed the interval (${hc.intervalMs} ms)`,
    );
    hc.timeoutMs = hc.intervalMs;
  }
  hc.rise = count(c, ann, LB_ANNOTATIONS.rise, hc.rise);
  hc.fall = count(c, ann, LB_ANNOTATIONS.fall, hc.fall);
  return hc;
}

function duration(
  c: Checker,
  ann: Readonly<Record<string, string>>,
  key: string,
  dflt: number,
  min: number,
  max: number,
): number {
  const v = ann[key];
  if (v === undefined) return dflt;
  let ms: number;
  try {
    ms = parseDuration(v, key);
  } catch {
    c.add(at(key), Codes.FIELD_INVALID, `"${v}" is not a duration (examples: 500ms, 2s, 1m)`);
    return dflt;
  }
  if (ms >= min && ms <= max) return Math.round(ms);
  c.add(at(key), Codes.FIELD_INVALID, `must be between ${min} ms and ${max / 60_000} min, got "${v}"`);
  return dflt;
}

function count(c: Checker, ann: Readonly<Record<string, string>>, key: string, dflt: number): number {
  const v = ann[key]?.trim();
  if (v === undefined) return dflt;
  if (/^\d+$/.test(v) && Number(v) >= 1 && Number(v) <= COUNT_MAX) return Number(v);
  c.add(at(key), Codes.FIELD_INVALID, `must be a whole number 1-${COUNT_MAX}, got "${v}"`);
  return dflt;
}
