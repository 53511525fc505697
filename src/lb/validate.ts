import { VipmeshError } from '../errors.js';
import { parseIp } from '../util/ip.js';
import type { Service } from './types.js';
import { serviceKey } from './types.js';

/** The longest ClientIP affinity Kubernetes accepts (`sessionAffinityConfig.clientIP.timeoutSeconds`). */
const MAX_AFFINITY_SECONDS = 86_400;

const isPort = (n: unknown): n is number =>
  Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 65_535;

/**
 * Check one pushed Service before it is rendered: every address parses, ports are ports, the enums hold
 * a known value. Throws `VIPMESH_LB_INVALID_SERVICE` naming the Service and the field; the renderer skips
 * such a Service (and reports it) instead of letting one bad object stop the others.
 */
export function validateService(s: Service): void {
  const key = typeof s?.namespace === 'string' && typeof s.name === 'string' ? serviceKey(s) : '(unnamed)';
  const bad = (field: string, why: string): never => {
    throw new VipmeshError('VIPMESH_LB_INVALID_SERVICE', `Service ${key}: ${field} ${why}`, {
      details: { service: key, field },
    });
  };
  if (key === '(unnamed)') bad('metadata', 'needs a namespace and a name');
  if (!Array.isArray(s.vips)) bad('vips', 'is not a list');
  s.vips.forEach((v, i) => {
    if (typeof v !== 'string' || parseIp(v) === undefined)
      bad(`vips[${i}]`, `is not an IP address: ${String(v)}`);
  });
  if (!Array.isArray(s.ports)) bad('ports', 'is not a list');
  s.ports.forEach((p, i) => {
    if (p?.protocol !== 'TCP' && p?.protocol !== 'UDP') bad(`ports[${i}].protocol`, 'must be TCP or UDP');
    if (!isPort(p.port)) bad(`ports[${i}].port`, `must be 1-65535, not ${String(p.port)}`);
    const tp = p.targetPort;
    if (!(isPort(tp) || (typeof tp === 'string' && tp.length > 0))) {
      bad(`ports[${i}].targetPort`, `must be a port number or a port name, not ${String(tp)}`);
    }
  });
  if (!Array.isArray(s.endpoints)) bad('endpoints', 'is not a list');
  s.endpoints.forEach((e, i) => {
    if (typeof e?.ip !== 'string' || parseIp(e.ip) === undefined) {
      bad(`endpoints[${i}].ip`, `is not an IP address: ${String(e?.ip)}`);
    }
    if (!Array.isArray(e.ports)) bad(`endpoints[${i}].ports`, 'is not a list');
    e.ports.forEach((p, j) => {
      if (!isPort(p?.port))
        bad(`endpoints[${i}].ports[${j}].port`, `must be 1-65535, not ${String(p?.port)}`);
    });
  });
  if (s.externalTrafficPolicy !== 'Cluster' && s.externalTrafficPolicy !== 'Local') {
    bad('externalTrafficPolicy', 'must be Cluster or Local');
  }
  if (s.sessionAffinity !== 'None' && s.sessionAffinity !== 'ClientIP')
    bad('sessionAffinity', 'must be None or ClientIP');
  if (
    s.sessionAffinity === 'ClientIP' &&
    !(
      Number.isInteger(s.affinityTimeoutSeconds) &&
      s.affinityTimeoutSeconds >= 1 &&
      s.affinityTimeoutSeconds <= MAX_AFFINITY_SECONDS
    )
  ) {
    bad('affinityTimeoutSeconds', `must be 1-${MAX_AFFINITY_SECONDS}`);
  }
  if (s.algorithm !== 'random' && s.algorithm !== 'hash') bad('algorithm', 'must be random or hash');
  const h = s.healthCheck;
  if (h?.type !== 'tcp' && h?.type !== 'http' && h?.type !== 'none')
    bad('healthCheck.type', 'must be tcp, http or none');
  for (const f of ['intervalMs', 'timeoutMs', 'rise', 'fall'] as const) {
    if (!(Number.isInteger(h[f]) && h[f] >= 1)) bad(`healthCheck.${f}`, 'must be a positive integer');
  }
  if (h.type === 'http') {
    if (typeof h.path !== 'string' || !h.path.startsWith('/')) bad('healthCheck.path', 'must start with /');
    const [lo, hi] = Array.isArray(h.expectStatus) ? h.expectStatus : [];
    if (!(Number.isInteger(lo) && Number.isInteger(hi) && lo! >= 100 && lo! <= hi! && hi! <= 599)) {
      bad('healthCheck.expectStatus', 'must be [low, high] within 100-599');
    }
  }
}
