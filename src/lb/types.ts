/**
 * The data the load balancer takes: structurally the agent protocol's `LbService` (src/api), declared here
 * again so this lower module imports nothing above the base. The agent passes the pushed objects as they are.
 */

/** A transport protocol the data plane serves. */
export type Protocol = 'TCP' | 'UDP';

/** One Service port: `port` on each VIP goes to `targetPort` (a number, or a name resolved per endpoint). */
export interface ServicePort {
  name?: string;
  protocol: Protocol;
  port: number;
  targetPort: number | string;
}

/** One backend. */
export interface Endpoint {
  ip: string;
  nodeName?: string;
  ports: Array<{ name?: string; port: number; protocol: Protocol }>;
  /** False: never sent traffic, never checked. */
  ready: boolean;
}

/** How endpoints are checked (keepalived real_server / HAProxy `check`). */
export interface HealthCheck {
  /** `tcp` connect, `http` GET of `path`, `none` (every ready endpoint is healthy). */
  type: 'tcp' | 'http' | 'none';
  path: string;
  /** Accepted HTTP status codes, inclusive. */
  expectStatus: [number, number];
  intervalMs: number;
  timeoutMs: number;
  /** Consecutive successes that make an endpoint healthy. */
  rise: number;
  /** Consecutive failures that make it unhealthy. */
  fall: number;
}

/** A Service as the holder serves it. */
export interface Service {
  namespace: string;
  name: string;
  /** The Service's VIPs (its rules are live only for those that are local addresses here). */
  vips: string[];
  ports: ServicePort[];
  /** Empty: VIP:port goes to targetPort on the holder itself. */
  endpoints: Endpoint[];
  externalTrafficPolicy: 'Cluster' | 'Local';
  sessionAffinity: 'None' | 'ClientIP';
  affinityTimeoutSeconds: number;
  algorithm: 'random' | 'hash';
  healthCheck: HealthCheck;
}

/** `namespace/name`: how logs, errors and the health state name a Service. */
export function serviceKey(s: Pick<Service, 'namespace' | 'name'>): string {
  return `${s.namespace}/${s.name}`;
}

/** `namespace/name/ip`: one endpoint of one Service (the unit of health). */
export function endpointKey(s: Pick<Service, 'namespace' | 'name'>, ip: string): string {
  return `${s.namespace}/${s.name}/${ip}`;
}
