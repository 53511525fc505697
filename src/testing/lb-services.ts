/** Services for the load balancer's tests and benchmarks (src/lb's shape, which is the agent protocol's). */
import type { HealthCheck, Service } from '../lb/index.js';

/** A TCP check every second, 2 up, 3 down (keepalived's and HAProxy's usual figures). */
export const TCP_CHECK: HealthCheck = {
  type: 'tcp',
  path: '/',
  expectStatus: [200, 399],
  intervalMs: 1000,
  timeoutMs: 1000,
  rise: 2,
  fall: 3,
};

/** A Service `default/<name>` on `vips` port 80 → 8080 over `endpoints` (ready, no node), random, Cluster. */
export function lbService(
  name: string,
  vips: string[],
  endpoints: string[],
  extra: Partial<Service> = {},
): Service {
  return {
    namespace: 'default',
    name,
    vips,
    ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }],
    endpoints: endpoints.map((ip) => ({
      ip,
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
      ready: true,
    })),
    externalTrafficPolicy: 'Cluster',
    sessionAffinity: 'None',
    affinityTimeoutSeconds: 10_800,
    algorithm: 'random',
    healthCheck: TCP_CHECK,
    ...extra,
  };
}

/** `n` Services of `perService` endpoints each, on distinct VIPs in 198.51.100.0/24 and ports (benchmarks). */
export function manyServices(n: number, perService: number): Service[] {
  return Array.from({ length: n }, (_, i) =>
    lbService(
      `svc-${i}`,
      [`198.51.100.${10 + (i % 200)}`],
      Array.from({ length: perService }, (_, j) => `198.18.${Math.floor(i / 25)}.${(i % 25) * 10 + j + 1}`),
      { ports: [{ protocol: 'TCP', port: 1000 + Math.floor(i / 200), targetPort: 8080 }] },
    ),
  );
}
