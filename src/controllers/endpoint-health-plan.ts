/**
 * The pure half of endpoint health: an agent's report checked and bounded, and a Service's reported health
 * turned into its status (the `EndpointsHealthy` condition and `status.endpointHealth`) and the events of
 * the endpoints that changed. No I/O, no clock.
 */
import type { EndpointHealth, HealthReport } from '../api/agent-protocol.js';
import { canonicalJson } from '../api/meta.js';
import type { Condition, Service } from '../api/types.js';
import { VipmeshError } from '../errors.js';
import { canonicalIp } from '../util/ip.js';
import { withCondition } from './conditions.js';
import type { PlannedEvent } from './events.js';

/** The condition type vipmesh writes on a Service whose VIP holder reports endpoint health. */
export const ENDPOINTS_HEALTHY = 'EndpointsHealthy';

/** Bounds of one report: a larger one is refused, not truncated (the agent is not speaking the protocol). */
const MAX_SERVICES = 50_000;
const MAX_ENDPOINTS = 5_000;
const MAX_NAME = 253;
/** A reason longer than this is cut (it is shown, not parsed). */
const MAX_REASON = 200;
/** Endpoints listed in `status.endpointHealth` (the unhealthy first); the counts cover the rest. */
export const MAX_LISTED = 256;
/** Unhealthy endpoints named in the condition message. */
const MAX_NAMED = 5;
/** Events per Service per write; further changes are summed up in one more. */
const MAX_EVENTS = 10;

/** One Service's part of a report. */
export type ServiceHealth = HealthReport['services'][number];

/** What vipmesh keeps in a Service's `status.endpointHealth`. */
export interface EndpointHealthStatus {
  /** The node that checked (the holder of the Service's VIP). */
  node: string;
  healthy: number;
  total: number;
  /** Nodes whose last report said they do not serve the Service (the assignment passes them over). */
  notServing: string[];
  /** Up to {@link MAX_LISTED} endpoints, the unhealthy first. */
  endpoints: EndpointHealth[];
}

function bad(message: string): VipmeshError {
  return new VipmeshError('VIPMESH_HEALTH_REPORT_INVALID', `health report: ${message}`);
}

function str(v: unknown, what: string): string {
  if (typeof v !== 'string' || v === '' || v.length > MAX_NAME) throw bad(`${what} must be a name`);
  return v;
}

/** An agent's report, checked (types, sizes, addresses, ports); throws VIPMESH_HEALTH_REPORT_INVALID. */
export function parseHealthReport(params: unknown): HealthReport {
  const services = (params as { services?: unknown } | null)?.services;
  if (!Array.isArray(services)) throw bad('services must be a list');
  if (services.length > MAX_SERVICES) throw bad(`more than ${MAX_SERVICES} services`);
  return {
    services: services.map((s: unknown, i): ServiceHealth => {
      const o = (s ?? {}) as Record<string, unknown>;
      const where = `services[${i}]`;
      const eps = o['endpoints'];
      if (!Array.isArray(eps)) throw bad(`${where}.endpoints must be a list`);
      if (eps.length > MAX_ENDPOINTS) throw bad(`${where}: more than ${MAX_ENDPOINTS} endpoints`);
      if (typeof o['serving'] !== 'boolean') throw bad(`${where}.serving must be true or false`);
      return {
        namespace: str(o['namespace'], `${where}.namespace`),
        name: str(o['name'], `${where}.name`),
        serving: o['serving'],
        endpoints: eps.map((e: unknown, j) => endpoint(e, `${where}.endpoints[${j}]`)),
      };
    }),
  };
}

function endpoint(e: unknown, where: string): EndpointHealth {
  const o = (e ?? {}) as Record<string, unknown>;
  const ip = typeof o['ip'] === 'string' ? canonicalIp(o['ip']) : undefined;
  if (ip === undefined) throw bad(`${where}.ip must be an IP address`);
  const port = o['port'];
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535)
    throw bad(`${where}.port must be a port number`);
  if (typeof o['healthy'] !== 'boolean') throw bad(`${where}.healthy must be true or false`);
  const out: EndpointHealth = { ip, port, healthy: o['healthy'] };
  if (typeof o['reason'] === 'string' && o['reason'] !== '' && !o['healthy'])
    out.reason = o['reason'].slice(0, MAX_REASON);
  return out;
}

function hostPort(e: { ip: string; port: number }): string {
  return e.ip.includes(':') ? `[${e.ip}]:${e.port}` : `${e.ip}:${e.port}`;
}

/** The status a report gives, given what the Service's status says now. */
function healthOf(svc: Service, node: string, report: ServiceHealth): EndpointHealthStatus {
  const prev = svc.status?.['endpointHealth'] as EndpointHealthStatus | undefined;
  const sorted = [...report.endpoints].sort(
    (a, b) => Number(a.healthy) - Number(b.healthy) || (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : a.port - b.port),
  );
  const notServing = new Set(Array.isArray(prev?.notServing) ? prev.notServing : []);
  if (report.serving) notServing.delete(node);
  else notServing.add(node);
  return {
    node,
    healthy: report.endpoints.filter((e) => e.healthy).length,
    total: report.endpoints.length,
    notServing: [...notServing].sort(),
    endpoints: sorted.slice(0, MAX_LISTED),
  };
}

function conditionOf(h: EndpointHealthStatus): {
  type: string;
  status: 'True' | 'False';
  reason: string;
  message: string;
} {
  const bad = h.endpoints.filter((e) => !e.healthy);
  const named = bad
    .slice(0, MAX_NAMED)
    .map((e) => `${hostPort(e)}${e.reason === undefined ? '' : ` (${e.reason})`}`)
    .join(', ');
  const more = h.total - h.healthy - Math.min(bad.length, MAX_NAMED);
  const unhealthy = bad.length === 0 ? '' : `; unhealthy: ${named}${more > 0 ? ` and ${more} more` : ''}`;
  const message = `${h.healthy} of ${h.total} endpoints healthy, checked from ${h.node}${unhealthy}`;
  if (h.total === 0)
    return {
      type: ENDPOINTS_HEALTHY,
      status: 'True',
      reason: 'NoEndpoints',
      message: `no endpoints: the holder ${h.node} serves the ports itself`,
    };
  if (h.healthy === h.total)
    return { type: ENDPOINTS_HEALTHY, status: 'True', reason: 'AllEndpointsHealthy', message };
  return {
    type: ENDPOINTS_HEALTHY,
    status: 'False',
    reason: h.healthy === 0 ? 'NoHealthyEndpoints' : 'SomeEndpointsUnhealthy',
    message,
  };
}

/** What one report does to a Service: its new status and events, or undefined when nothing changes. */
export interface HealthStep {
  status: NonNullable<Service['status']>;
  events: PlannedEvent[];
  health: EndpointHealthStatus;
}

/**
 * The Service's status after `node` reported `report` for it (condition transition time `now`, kept while
 * status and reason stay), with an event per endpoint that changed; undefined when the status would not
 * change.
 */
export function planHealth(
  svc: Service,
  node: string,
  report: ServiceHealth,
  now: string,
): HealthStep | undefined {
  const prev = svc.status?.['endpointHealth'] as EndpointHealthStatus | undefined;
  const health = healthOf(svc, node, report);
  const cond = conditionOf(health);
  const conds = svc.status?.conditions ?? [];
  const old = conds.find((c) => c.type === ENDPOINTS_HEALTHY);
  const same = old !== undefined && old.status === cond.status && old.reason === cond.reason;
  const condition: Condition = { ...cond, lastTransitionTime: same ? old.lastTransitionTime : now };
  // Compared without key order: the stored status comes back with its keys sorted (canonicalJson).
  if (same && old.message === cond.message && canonicalJson(prev) === canonicalJson(health)) return undefined;
  const status: NonNullable<Service['status']> = {
    ...(svc.status ?? {}),
    conditions: withCondition(conds, condition),
    endpointHealth: health,
  };
  return { status, events: eventsOf(svc, prev, health), health };
}

function eventsOf(
  svc: Service,
  prev: EndpointHealthStatus | undefined,
  now: EndpointHealthStatus,
): PlannedEvent[] {
  const before = new Map((prev?.endpoints ?? []).map((e) => [hostPort(e), e] as const));
  const out: PlannedEvent[] = [];
  let more = 0;
  for (const e of now.endpoints) {
    const was = before.get(hostPort(e));
    // A first report says only what is wrong: healthy endpoints are news only when they recover.
    if (was === undefined ? e.healthy : was.healthy === e.healthy) continue;
    if (out.length >= MAX_EVENTS) {
      more++;
      continue;
    }
    out.push(
      e.healthy
        ? {
            involved: svc,
            reason: 'EndpointHealthy',
            message: `endpoint ${hostPort(e)} is healthy again (checked from ${now.node})`,
            type: 'Normal',
          }
        : {
            involved: svc,
            reason: 'EndpointUnhealthy',
            message: `endpoint ${hostPort(e)} is unhealthy${e.reason === undefined ? '' : `: ${e.reason}`} (checked from ${now.node})`,
            type: 'Warning',
          },
    );
  }
  if (more > 0)
    out.push({
      involved: svc,
      reason: 'EndpointsChanged',
      message: `${more} more endpoints changed health (checked from ${now.node})`,
      type: 'Normal',
    });
  return out;
}
