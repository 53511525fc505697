import { EventEmitter } from 'node:events';
import type { Registry } from 'prom-client';
import type { Kv, KvWriteResult } from '../api/kv.js';
import type { ResourceStore } from '../api/store.js';
import { type Clock, systemClock } from '../clock.js';
import { VipmeshError } from '../errors.js';
import type { Logger } from '../log.js';
import { Counter, Gauge } from '../metrics.js';
import type { Allocation } from '../vip-pool/index.js';
import { inBatches } from './batches.js';
import { recordEvent } from './events.js';
import { type Informer, Reconciler } from './informer.js';
import { type IpamReport, type IpamScope, type IpamState, type IpamStep, planIpam } from './ipam-plan.js';
import { poolConfig } from './pool-config.js';

/** Where the IPAM controller persists allocations: one key per Service, the vip-pool `Allocation` as JSON. */
const ALLOCATION_PREFIX = '/vipmesh/ipam/';

/** The informers the IPAM controller reads. */
interface IpamInformers {
  services: Informer<'services'>;
  pools: Informer<'ipaddresspools'>;
  configmaps: Informer<'configmaps'>;
  l2advertisements: Informer<'l2advertisements'>;
}

/** Options of {@link IpamController}. */
interface IpamControllerOptions {
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
interface IpamEvents {
  /** The allocations changed (the assignment controller re-places VIPs). */
  change: [];
}

/**
 * IPAM: gives every LoadBalancer Service its addresses from the pools (vip-pool's Allocator), persists the
 * allocations under {@link ALLOCATION_PREFIX}, and writes `status.loadBalancer.ingress` and the
 * `IPAllocated` condition. A Service that cannot be served gets a Warning event and `IPAllocated=False`
 * (with the VIPMESH_* code as the reason); the controller never stops for one bad Service. Pools, Services
 * and advertisements changing take effect at once (live reload). Each pass is {@link planIpam}; this class
 * persists, writes and records what it returns.
 */
export class IpamController extends EventEmitter<IpamEvents> {
  readonly #o: IpamControllerOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #reconciler: Reconciler;
  /** The persisted allocations, by Service key (`ns/name`). */
  readonly #persisted = new Map<string, Allocation>();
  /** The mod revision of each persisted allocation as this controller last read or wrote it. */
  readonly #revisions = new Map<string, number>();
  /** Last outcome per Service, so an event is written when it changes, not on every pass. */
  readonly #outcome = new Map<string, string>();
  readonly #failures: Counter<'code'> | undefined;
  readonly #allocated: Gauge | undefined;
  /** Services changed since the last pass (`ns/name`); a pool change makes the next pass a full one. */
  readonly #dirty = new Set<string>();
  #full = true;
  /** The allocator of the last full pass, advanced by the incremental ones. */
  #state: IpamState | undefined;
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
        if (typeof a.service === 'string' && Array.isArray(a.ips)) {
          this.#persisted.set(a.service, a);
          this.#revisions.set(a.service, p.modRevision);
        }
      } catch {
        this.#log.warn({ key: p.key }, 'ignoring an unreadable allocation');
      }
    }
    this.#started = true;
    const inf = this.#o.informers;
    this.#reconciler.follow(inf.services, (e) => this.#dirty.add(e.key));
    const full = () => {
      this.#full = true;
    };
    this.#reconciler.follow(inf.pools, full);
    this.#reconciler.follow(inf.configmaps, full);
    this.#reconciler.kick();
  }

  /** Resolves when no pass is running or queued (tests). */
  idle(): Promise<void> {
    return this.#reconciler.idle();
  }

  /** Stop: no more passes; waits for the one in progress. */
  close(): Promise<void> {
    return this.#reconciler.close();
  }

  /**
   * A pass: a full one (a new Allocator from the pools and the persisted allocations, every Service in age
   * order) after a start or a pool change; otherwise only the Services that changed since the last pass, on
   * the same Allocator. Applying 1,000 Services thus costs 1,000 small steps, not 1,000 full passes.
   */
  async #reconcile(): Promise<void> {
    if (!this.#started) return;
    const inf = this.#o.informers;
    let scope: IpamScope;
    if (this.#full || this.#state === undefined) {
      this.#full = false;
      this.#dirty.clear();
      scope = {
        pools: poolConfig(inf.pools.items.values(), inf.configmaps.items.values(), [], this.#log).pools,
      };
    } else {
      scope = { changed: [...this.#dirty], state: this.#state };
      this.#dirty.clear();
    }
    const now = this.#clock.now();
    const plan = planIpam(
      { services: inf.services.items, persisted: this.#persisted, outcomes: this.#outcome, now },
      scope,
    );
    this.#state = plan.state;
    let changed = false;
    // Writes go out many Services at a time (inBatches): a pass over thousands of Services costs a few
    // hundred group commits of the datastore, not three fsyncs per Service in a row. Per Service the
    // allocation is durable before the status names it; the status and the event then go out together.
    const apply = async (step: IpamStep, released: boolean) => {
      if (step.allocation !== undefined) {
        await this.#persist(step.key, step.allocation ?? undefined);
        changed = true;
      }
      if (released) this.#outcome.delete(step.key);
      const status =
        step.service !== undefined && step.status !== undefined
          ? this.#o.store.updateStatus('services', {
              ...step.service,
              metadata: { ...step.service.metadata, resourceVersion: undefined },
              status: step.status,
            })
          : undefined;
      const report = step.report === undefined ? undefined : this.#report(step, step.report, now);
      await Promise.all([status, report]);
    };
    try {
      await inBatches(plan.assigned, (step) => apply(step, false));
      // Services that are gone (or no longer LoadBalancer): their addresses are freed.
      await inBatches(plan.released, (step) => apply(step, true));
    } catch (err) {
      // The reconciler retries a failed pass; make the retry a full one. The Services this pass failed
      // are in no dirty set any more, and its Allocator may hold addresses that were never persisted: a
      // full pass starts again from the pools and the persisted allocations.
      this.#full = true;
      if (changed) this.emit('change');
      throw err;
    }
    this.#allocated?.set(this.#persisted.size);
    if (changed) this.emit('change');
  }

  /**
   * Store (or delete) one allocation, conditional on the revision this controller last saw (0: absent), so
   * the common write is one datastore call. Another writer since then (a master before this one, an
   * operator): read the key once and write over it, as the allocation is this controller's to decide.
   */
  async #persist(key: string, a: Allocation | undefined): Promise<void> {
    const k = `${ALLOCATION_PREFIX}${key}`;
    const write = async (expect: number | undefined): Promise<KvWriteResult> => {
      if (a !== undefined) return this.#o.kv.put(k, Buffer.from(JSON.stringify(a)), expect ?? 0);
      const rev = expect ?? (await this.#o.kv.get(k))?.modRevision;
      return rev === undefined ? { ok: true, revision: 0 } : this.#o.kv.delete(k, rev);
    };
    let res = await write(this.#revisions.get(key));
    if (!res.ok) res = await write(res.current?.modRevision);
    if (!res.ok)
      throw new VipmeshError('VIPMESH_API_CONFLICT', `allocation ${key} changed under the controller`);
    if (a === undefined) {
      this.#persisted.delete(key);
      this.#revisions.delete(key);
    } else {
      this.#persisted.set(key, a);
      this.#revisions.set(key, res.revision);
    }
  }

  /** A Service's outcome changed: remember it, count and log a failure, record the event. */
  async #report(step: IpamStep, r: IpamReport, now: number): Promise<void> {
    this.#outcome.set(step.key, r.outcome);
    if (r.failure !== undefined) {
      this.#failures?.inc({ code: r.failure.code });
      this.#log.warn({ service: step.key, code: r.failure.code }, r.failure.message);
    }
    await recordEvent(
      this.#o.store,
      {
        ...r.event,
        component: 'vipmesh-ipam',
        now,
        ...(this.#o.host === undefined ? {} : { host: this.#o.host }),
      },
      this.#log,
    );
  }
}
