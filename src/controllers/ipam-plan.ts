/**
 * The pure half of IPAM: the Services, the pools and the persisted allocations -> the allocations to
 * persist, the Service statuses to write and the events to record. No I/O, no clock, no logger, so it is
 * tested with case tables; the IpamController applies what it returns.
 *
 * The one thing a plan advances is the Allocator (the index of what is taken): the controller keeps it
 * between passes, so a pass over the few Services that changed costs only those Services.
 */
import { canonicalJson } from '../api/meta.js';
import type { Condition, Service } from '../api/types.js';
import { VipmeshError } from '../errors.js';
import {
  type AddressPool,
  type Allocation,
  Allocator,
  type Assignment,
  type ServiceRequest,
  serviceKey,
  toServiceRequest,
} from '../vip-pool/index.js';
import { withCondition } from './conditions.js';
import type { PlannedEvent } from './events.js';

/** The Service condition the IPAM controller maintains. */
export const IP_ALLOCATED = 'IPAllocated';

/** True when vipmesh should give this Service addresses. */
function wantsAddress(svc: Service): boolean {
  return svc.spec?.type === 'LoadBalancer' && svc.spec.loadBalancerClass === undefined;
}

/** What IPAM carries from one pass to the next. */
export interface IpamState {
  allocator: Allocator;
  /** Why the pool set is unusable (pools overlap): nothing new is allocated until it changes. */
  poolError: VipmeshError | undefined;
}

/**
 * Which Services a pass handles: all of them, on a new Allocator built from `pools` and the persisted
 * allocations (after a start or a pool change); or only the `changed` keys, on an earlier pass's state.
 */
export type IpamScope = { pools: readonly AddressPool[] } | { changed: Iterable<string>; state: IpamState };

/** What one IPAM pass looks at. */
interface IpamInput {
  /** Every Service now stored, by key (`ns/name`). */
  services: ReadonlyMap<string, Service>;
  /** The allocations as persisted, by Service key. */
  persisted: ReadonlyMap<string, Allocation>;
  /** The outcome each Service's last event reported, by Service key. */
  outcomes: ReadonlyMap<string, string>;
  /** The time conditions changing now carry (ms since the epoch). */
  now: number;
}

/** A changed outcome of one Service: remember it, record its event (and count a failure). */
export interface IpamReport {
  outcome: string;
  event: PlannedEvent;
  failure: VipmeshError | undefined;
}

/** What to do for one Service. Absent fields: nothing to do. */
export interface IpamStep {
  key: string;
  /** The Service as read; absent for a Service no longer stored. */
  service?: Service;
  /** The allocation to persist, or null to delete it. */
  allocation?: Allocation | null;
  /** The Service's whole new status. */
  status?: NonNullable<Service['status']>;
  report?: IpamReport;
}

/** What a pass must do. */
export interface IpamPlan {
  /** Services given addresses (or told why not), oldest first. */
  assigned: IpamStep[];
  /** Services deleted or no longer LoadBalancer: their addresses are freed (after `assigned`). */
  released: IpamStep[];
  /** The state for the next pass. */
  state: IpamState;
}

/**
 * One pass. The oldest Service wins a contested address. A Service that cannot be served gets
 * `IPAllocated=False` with the VIPMESH_* code as the reason and gives its addresses back; while the pool
 * set is unusable, every Service keeps what it has and reports why. An event is planned only when a
 * Service's outcome differs from `outcomes`.
 */
export function planIpam(input: IpamInput, scope: IpamScope): IpamPlan {
  let todo: Service[];
  let gone: string[];
  let state: IpamState;
  if ('pools' in scope) {
    todo = [...input.services.values()].filter(wantsAddress).sort(byAge);
    const keys = new Set(todo.map((s) => serviceKey(meta(s))));
    const allocations = [...input.persisted.values()].filter((a) => keys.has(a.service));
    try {
      state = { allocator: new Allocator(scope.pools, { allocations }), poolError: undefined };
    } catch (err) {
      if (!(err instanceof VipmeshError)) throw err;
      // An unusable pool set (overlap between pools): keep what is allocated, allocate nothing new.
      state = { allocator: new Allocator([]), poolError: err };
    }
    gone = [...input.persisted.keys()].filter((key) => !keys.has(key));
  } else {
    state = scope.state;
    todo = [];
    gone = [];
    for (const key of scope.changed) {
      const svc = input.services.get(key);
      if (svc !== undefined && wantsAddress(svc)) todo.push(svc);
      else gone.push(key);
    }
    todo.sort(byAge);
  }
  const { allocator, poolError } = state;
  const assigned: IpamStep[] = [];
  for (const svc of todo) {
    const key = serviceKey(meta(svc));
    let ips: string[];
    let alloc: Allocation | undefined;
    let failure: VipmeshError | undefined;
    if (poolError !== undefined) {
      alloc = input.persisted.get(key);
      ips = alloc?.ips ?? [];
      failure = poolError;
    } else {
      try {
        const req = toServiceRequest(svc);
        const a = allocator.assign(req);
        ips = a.ips;
        alloc = toAllocation(key, a, req);
      } catch (err) {
        if (!(err instanceof VipmeshError)) throw err;
        // A Service that can no longer be served gives its addresses back (as MetalLB clears them).
        allocator.release(key);
        ips = [];
        failure = err;
      }
    }
    const step: IpamStep = { key, service: svc, ...allocationChange(input.persisted.get(key), alloc) };
    const status = serviceStatus(svc, { ips, failure, pool: alloc?.pool, now: input.now });
    if (status !== undefined) step.status = status;
    const outcome = failure === undefined ? `ok:${ips.join(',')}` : `fail:${failure.code}:${failure.message}`;
    const known = input.outcomes.get(key);
    // No outcome known (a new master) and a status that already says the same success: the event was
    // recorded when it happened, so a restart or failover does not record one per Service again.
    const recorded = known === undefined && failure === undefined && status === undefined && ips.length > 0;
    if (known !== outcome && !recorded) {
      step.report = {
        outcome,
        failure,
        event: {
          involved: svc,
          reason: failure === undefined ? 'IPAllocated' : 'AllocationFailed',
          message:
            failure === undefined ? `Assigned IP ${ips.join(', ')}` : `${failure.message} (${failure.code})`,
          type: failure === undefined ? 'Normal' : 'Warning',
        },
      };
    }
    assigned.push(step);
  }
  const released: IpamStep[] = [];
  for (const key of gone) {
    allocator.release(key);
    const step: IpamStep = { key, ...allocationChange(input.persisted.get(key), undefined) };
    const svc = input.services.get(key);
    if (svc !== undefined) {
      step.service = svc;
      const status = serviceStatus(svc, { ips: [], gone: true, now: input.now });
      if (status !== undefined) step.status = status;
    }
    released.push(step);
  }
  return { assigned, released, state };
}

/** What `serviceStatus` writes. */
interface StatusInput {
  ips: readonly string[];
  failure?: VipmeshError | undefined;
  /** The Service is no longer served: no IPAllocated condition at all. */
  gone?: boolean;
  pool?: string | undefined;
  now: number;
}

/**
 * The Service's status with `status.loadBalancer.ingress` and the IPAllocated condition set (its
 * transition time kept while status and reason stay), or undefined when that is what it already has.
 */
export function serviceStatus(svc: Service, s: StatusInput): NonNullable<Service['status']> | undefined {
  const status = structuredClone(svc.status ?? {});
  const ingress = s.ips.map((ip) => ({ ip, ipMode: 'VIP' }));
  if (ingress.length > 0) status.loadBalancer = { ingress };
  else if (status.loadBalancer !== undefined) status.loadBalancer = {};
  const others = (status.conditions ?? []).filter((c) => c.type !== IP_ALLOCATED);
  const prev = (svc.status?.conditions ?? []).find((c) => c.type === IP_ALLOCATED);
  let cond: Condition | undefined;
  if (s.gone !== true) {
    cond =
      s.failure === undefined
        ? {
            type: IP_ALLOCATED,
            status: 'True',
            reason: 'Allocated',
            // `from pool X` is what `vipmesh get services -o wide` shows in its POOL column.
            message: `allocated ${s.ips.join(', ')}${s.pool === undefined ? '' : ` from pool ${s.pool}`}`,
          }
        : { type: IP_ALLOCATED, status: 'False', reason: s.failure.code, message: s.failure.message };
    cond.lastTransitionTime =
      prev !== undefined && prev.status === cond.status && prev.reason === cond.reason
        ? prev.lastTransitionTime
        : new Date(s.now).toISOString().replace(/\.\d+Z$/, 'Z');
  }
  status.conditions = cond === undefined ? others : withCondition(status.conditions, cond);
  if (status.conditions.length === 0) delete status.conditions;
  return canonicalJson(status) === canonicalJson(svc.status ?? {}) ? undefined : status;
}

/** `{ allocation }` when `next` differs from what is persisted (null: delete), else nothing. */
function allocationChange(
  old: Allocation | undefined,
  next: Allocation | undefined,
): { allocation?: Allocation | null } {
  if (next === undefined) return old === undefined ? {} : { allocation: null };
  if (old !== undefined && canonicalJson(next) === canonicalJson(old)) return {};
  return { allocation: next };
}

/** The allocation to persist for `key` (the same fields the Allocator restores from). */
function toAllocation(key: string, a: Assignment, req: ServiceRequest): Allocation {
  return {
    service: key,
    pool: a.pool,
    ips: [...a.ips],
    ...(req.sharingKey === undefined ? {} : { sharingKey: req.sharingKey }),
    ...(req.backendKey === undefined ? {} : { backendKey: req.backendKey }),
    ports: req.ports.map((p) => ({ ...p })),
  };
}

function meta(s: Service): { namespace: string; name: string } {
  return { namespace: s.metadata.namespace ?? 'default', name: s.metadata.name };
}

/** Oldest first, so an older Service wins a contested address (as in MetalLB). */
function byAge(a: Service, b: Service): number {
  const ta = a.metadata.creationTimestamp ?? '';
  const tb = b.metadata.creationTimestamp ?? '';
  if (ta !== tb) return ta < tb ? -1 : 1;
  const ka = serviceKey(meta(a));
  const kb = serviceKey(meta(b));
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}
