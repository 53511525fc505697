import { EventEmitter } from 'node:events';
import type { Registry } from 'prom-client';
import type { Kv } from '../api/kv.js';
import { canonicalJson, type ResourceStore } from '../api/store.js';
import type { Condition, Service } from '../api/types.js';
import { type Clock, systemClock } from '../clock.js';
import { VipmeshError } from '../errors.js';
import type { Logger } from '../log.js';
import { Counter, Gauge } from '../metrics.js';
import {
  type Allocation,
  Allocator,
  type Assignment,
  type ServiceRequest,
  serviceKey,
  toServiceRequest,
} from '../vip-pool/index.js';
import { recordEvent } from './events.js';
import { type Informer, Reconciler } from './informer.js';
import { poolConfig } from './pool-config.js';

/** Where the IPAM controller persists allocations: one key per Service, the vip-pool `Allocation` as JSON. */
export const ALLOCATION_PREFIX = '/vipmesh/ipam/';

/** The Service condition the IPAM controller maintains. */
export const IP_ALLOCATED = 'IPAllocated';

/** The informers the IPAM controller reads. */
export interface IpamInformers {
  services: Informer<'services'>;
  pools: Informer<'ipaddresspools'>;
  configmaps: Informer<'configmaps'>;
  l2advertisements: Informer<'l2advertisements'>;
}

/** Options of {@link IpamController}. */
export interface IpamControllerOptions {
  store: ResourceStore;
  /** Raw datastore access for the allocation keys. */
  kv: Kv;
  informers: IpamInformers;
  logger: Logger;
  clock?: Clock;
  registry?: Registry;
  /** Name written as the events' source host. */
  host?: string;
}

/** Events of an {@link IpamController}. */
export interface IpamEvents {
  /** The allocations changed (the assignment controller re-places VIPs). */
  change: [];
}

/** True when vipmesh should give this Service addresses. */
export function wantsAddress(svc: Service): boolean {
  return svc.spec?.type === 'LoadBalancer' && svc.spec.loadBalancerClass === undefined;
}

/**
 * IPAM: gives every LoadBalancer Service its addresses from the pools (vip-pool's Allocator), persists the
 * allocations under {@link ALLOCATION_PREFIX}, and writes `status.loadBalancer.ingress` and the
 * `IPAllocated` condition. A Service that cannot be served gets a Warning event and `IPAllocated=False`
 * (with the VIPMESH_* code as the reason); the controller never stops for one bad Service. Pools, Services
 * and advertisements changing take effect at once (live reload).
 */
export class IpamController extends EventEmitter<IpamEvents> {
  readonly #o: IpamControllerOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #reconciler: Reconciler;
  /** The persisted allocations, by Service key (`ns/name`). */
  readonly #persisted = new Map<string, Allocation>();
  /** Last outcome per Service, so an event is written when it changes, not on every pass. */
  readonly #outcome = new Map<string, string>();
  readonly #failures: Counter<'code'> | undefined;
  readonly #allocated: Gauge | undefined;
  readonly #unsub: Array<() => void> = [];
  /** Services changed since the last pass (`ns/name`); a pool change makes the next pass a full one. */
  readonly #dirty = new Set<string>();
  #full = true;
  #allocator: Allocator | undefined;
  #poolError: VipmeshError | undefined;
  #started = false;

  constructor(o: IpamControllerOptions) {
    super();
    this.#o = o;
    this.#log = o.logger;
    this.#clock = o.clock ?? systemClock;
    this.#reconciler = new Reconciler(() => this.#reconcile(), { logger: o.logger, clock: this.#clock });
    if (o.registry !== undefined) {
      this.#failures =
        (o.registry.getSingleMetric('vipmesh_controlplane_ipam_failures_total') as Counter<'code'>) ??
        new Counter({
          name: 'vipmesh_controlplane_ipam_failures_total',
          help: 'Services the IPAM controller could not give addresses, by error code',
          labelNames: ['code'],
          registers: [o.registry],
        });
      this.#allocated =
        (o.registry.getSingleMetric('vipmesh_controlplane_ipam_services_allocated') as Gauge) ??
        new Gauge({
          name: 'vipmesh_controlplane_ipam_services_allocated',
          help: 'LoadBalancer Services holding addresses',
          registers: [o.registry],
        });
    }
  }

  /** The allocations as persisted now (the assignment controller reads the pools from them). */
  allocations(): Allocation[] {
    return [...this.#persisted.values()];
  }

  /** Load the persisted allocations and start reconciling on every change. */
  async start(): Promise<void> {
    const { pairs } = await this.#o.kv.list(ALLOCATION_PREFIX);
    for (const p of pairs) {
      try {
        const a = JSON.parse(p.value.toString()) as Allocation;
        if (typeof a.service === 'string' && Array.isArray(a.ips)) this.#persisted.set(a.service, a);
      } catch {
        this.#log.warn({ key: p.key }, 'ignoring an unreadable allocation');
      }
    }
    this.#started = true;
    const inf = this.#o.informers;
    const onService = (e: { key: string }) => {
      this.#dirty.add(e.key);
      this.#reconciler.kick();
    };
    const onPools = () => {
      this.#full = true;
      this.#reconciler.kick();
    };
    inf.services.on('change', onService);
    inf.pools.on('change', onPools);
    inf.configmaps.on('change', onPools);
    this.#unsub.push(
      () => inf.services.off('change', onService),
      () => inf.pools.off('change', onPools),
      () => inf.configmaps.off('change', onPools),
    );
    this.#reconciler.kick();
  }

  /** Resolves when no pass is running or queued (tests). */
  idle(): Promise<void> {
    return this.#reconciler.idle();
  }

  async close(): Promise<void> {
    for (const u of this.#unsub.splice(0)) u();
    await this.#reconciler.close();
  }

  /**
   * A pass: a full one (a new Allocator from the pools and the persisted allocations, every Service in age
   * order) after a start or a pool change; otherwise only the Services that changed since the last pass, on
   * the same Allocator. Applying 1,000 Services thus costs 1,000 small steps, not 1,000 full passes.
   */
  async #reconcile(): Promise<void> {
    if (!this.#started) return;
    const inf = this.#o.informers;
    let todo: Service[];
    let gone: string[];
    if (this.#full || this.#allocator === undefined) {
      this.#full = false;
      this.#dirty.clear();
      const cfg = poolConfig(inf.pools.items.values(), inf.configmaps.items.values(), [], this.#log);
      todo = [...inf.services.items.values()].filter(wantsAddress).sort(byAge);
      const keys = new Set(todo.map((s) => serviceKey(meta(s))));
      try {
        this.#allocator = new Allocator(cfg.pools, {
          allocations: [...this.#persisted.values()].filter((a) => keys.has(a.service)),
        });
        this.#poolError = undefined;
      } catch (err) {
        if (!(err instanceof VipmeshError)) throw err;
        // An unusable pool set (overlap between pools): keep what is allocated, allocate nothing new.
        this.#poolError = err;
        this.#allocator = new Allocator([]);
      }
      gone = [...this.#persisted.keys()].filter((key) => !keys.has(key));
    } else {
      const keys = [...this.#dirty];
      this.#dirty.clear();
      todo = [];
      gone = [];
      for (const key of keys) {
        const svc = inf.services.items.get(key);
        if (svc !== undefined && wantsAddress(svc)) todo.push(svc);
        else gone.push(key);
      }
      todo.sort(byAge);
    }
    const allocator = this.#allocator;
    const poolError = this.#poolError;
    const results: Array<{
      svc: Service;
      key: string;
      ips: string[];
      alloc: Allocation | undefined;
      failure: VipmeshError | undefined;
    }> = [];
    for (const svc of todo) {
      const key = serviceKey(meta(svc));
      if (poolError !== undefined) {
        const ips = this.#persisted.get(key)?.ips ?? [];
        results.push({ svc, key, ips, alloc: this.#persisted.get(key), failure: poolError });
        continue;
      }
      try {
        const req = toServiceRequest(svc);
        const a = allocator.assign(req);
        results.push({ svc, key, ips: a.ips, alloc: toAllocation(key, a, req), failure: undefined });
      } catch (err) {
        if (!(err instanceof VipmeshError)) throw err;
        // A Service that can no longer be served gives its addresses back (as MetalLB clears them).
        allocator.release(key);
        results.push({ svc, key, ips: [], alloc: undefined, failure: err });
      }
    }
    let changed = false;
    // Writes go out WRITE_CONCURRENCY at a time: the datastore commits concurrent writes together (one
    // fsync per group), so 1,000 Services take one pass of a few hundred ms instead of 3,000 fsyncs in a row.
    await inBatches(results, async (r) => {
      if (await this.#persist(r.key, r.alloc)) changed = true;
      await this.#writeStatus(r.svc, r.ips, r.failure, false, r.alloc?.pool);
    });
    // Services that are gone (or no longer LoadBalancer): free their addresses.
    await inBatches(gone, async (key) => {
      allocator.release(key);
      if (await this.#persist(key, undefined)) changed = true;
      this.#outcome.delete(key);
      const svc = inf.services.items.get(key);
      if (svc !== undefined) await this.#writeStatus(svc, [], undefined, true);
    });
    this.#allocated?.set(this.#persisted.size);
    if (changed) this.emit('change');
  }

  /** Store (or delete) one allocation; true when it changed. */
  async #persist(key: string, a: Allocation | undefined): Promise<boolean> {
    const old = this.#persisted.get(key);
    if (a === undefined && old === undefined) return false;
    if (a !== undefined && old !== undefined && canonicalJson(a) === canonicalJson(old)) return false;
    const k = `${ALLOCATION_PREFIX}${key}`;
    const cur = await this.#o.kv.get(k);
    const res =
      a === undefined
        ? cur === undefined
          ? { ok: true as const }
          : await this.#o.kv.delete(k, cur.modRevision)
        : await this.#o.kv.put(k, Buffer.from(JSON.stringify(a)), cur?.modRevision ?? 0);
    if (!res.ok)
      throw new VipmeshError('VIPMESH_API_CONFLICT', `allocation ${key} changed under the controller`);
    if (a === undefined) this.#persisted.delete(key);
    else this.#persisted.set(key, a);
    return true;
  }

  async #writeStatus(
    svc: Service,
    ips: string[],
    failure: VipmeshError | undefined,
    gone = false,
    pool?: string,
  ): Promise<void> {
    const key = serviceKey(meta(svc));
    const status = structuredClone(svc.status ?? {});
    const ingress = ips.map((ip) => ({ ip, ipMode: 'VIP' }));
    if (ingress.length > 0) status.loadBalancer = { ingress };
    else if (status.loadBalancer !== undefined) status.loadBalancer = {};
    const others = (status.conditions ?? []).filter((c) => c.type !== IP_ALLOCATED);
    const prev = (svc.status?.conditions ?? []).find((c) => c.type === IP_ALLOCATED);
    let cond: Condition | undefined;
    if (!gone) {
      cond =
        failure === undefined
          ? {
              type: IP_ALLOCATED,
              status: 'True',
              reason: 'Allocated',
              // `from pool X` is what `vipmesh get services -o wide` shows in its POOL column.
              message: `allocated ${ips.join(', ')}${pool === undefined ? '' : ` from pool ${pool}`}`,
            }
          : { type: IP_ALLOCATED, status: 'False', reason: failure.code, message: failure.message };
      cond.lastTransitionTime =
        prev !== undefined && prev.status === cond.status && prev.reason === cond.reason
          ? prev.lastTransitionTime
          : new Date(this.#clock.now()).toISOString().replace(/\.\d+Z$/, 'Z');
    }
    status.conditions = cond === undefined ? others : [...others, cond];
    if (status.conditions.length === 0) delete status.conditions;
    if (canonicalJson(status) !== canonicalJson(svc.status ?? {})) {
      await this.#o.store.updateStatus('services', {
        ...svc,
        metadata: { ...svc.metadata, resourceVersion: undefined },
        status,
      });
    }
    if (gone) return;
    const outcome = failure === undefined ? `ok:${ips.join(',')}` : `fail:${failure.code}:${failure.message}`;
    if (this.#outcome.get(key) === outcome) return;
    this.#outcome.set(key, outcome);
    if (failure !== undefined) {
      this.#failures?.inc({ code: failure.code });
      this.#log.warn({ service: key, code: failure.code }, failure.message);
    }
    await recordEvent(
      this.#o.store,
      {
        involved: svc,
        reason: failure === undefined ? 'IPAllocated' : 'AllocationFailed',
        message:
          failure === undefined ? `Assigned IP ${ips.join(', ')}` : `${failure.message} (${failure.code})`,
        type: failure === undefined ? 'Normal' : 'Warning',
        component: 'vipmesh-ipam',
        now: this.#clock.now(),
        ...(this.#o.host === undefined ? {} : { host: this.#o.host }),
      },
      this.#log,
    );
  }
}

/** Concurrent datastore writes per controller pass. */
const WRITE_CONCURRENCY = 32;

/** Run `fn` over `items`, at most {@link WRITE_CONCURRENCY} at a time; the first error is thrown at the end. */
export async function inBatches<T>(items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(WRITE_CONCURRENCY, items.length) }, worker));
  if (failure !== undefined) throw failure;
}

/** The allocation to persist for `key` (the same fields the Allocator restores from). */
function toAllocation(key: string, a: Assignment, req: ServiceRequest): Allocation {
  return {
    service: key,
    pool: a.pool,
    ips: [...a.ips],
    ...(req.sharingKey === undefined ? {} : { sharingKey: req.sharingKey }),
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
