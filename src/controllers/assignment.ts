import type { Registry } from 'prom-client';
import { VIP_INTERFACES } from '../api/agent-protocol.js';
import { type AssignmentIndex, writeHolders } from '../api/assignments.js';
import type { Kv } from '../api/kv.js';
import type { ResourceStore } from '../api/store.js';
import type { Node, Service } from '../api/types.js';
import { type Clock, systemClock } from '../clock.js';
import type { Logger } from '../log.js';
import { Counter } from '../metrics.js';
import type { Allocation } from '../vip-pool/index.js';
import { planAssignment } from './assignment-plan.js';
import type { BackendIndex } from './backends.js';
import { inBatches } from './batches.js';
import { recordEvent } from './events.js';
import { type Informer, Reconciler } from './informer.js';
import type { LostNodes } from './lost-nodes.js';
import { poolConfig } from './pool-config.js';

/** The informers the assignment controller reads. */
interface AssignmentInformers {
  nodes: Informer<'nodes'>;
  services: Informer<'services'>;
  pools: Informer<'ipaddresspools'>;
  configmaps: Informer<'configmaps'>;
  l2advertisements: Informer<'l2advertisements'>;
}

/** Options of {@link AssignmentController}. */
interface AssignmentControllerOptions {
  store: ResourceStore;
  /** Where the assignment keys are written. */
  kv: Kv;
  /** The stored holders (started); the controller is their only writer. */
  holders: AssignmentIndex;
  informers: AssignmentInformers;
  /** The IPAM controller's allocations (which pool each Service's addresses came from). */
  allocations: () => readonly Allocation[];
  /** Subscribe to allocation changes; returns the unsubscribe. */
  onAllocations?: (fn: () => void) => () => void;
  logger: Logger;
  clock?: Clock;
  registry?: Registry;
  host?: string;
  /** The Services' backends (for `externalTrafficPolicy: Local` placement) [none]. */
  backends?: BackendIndex;
  /** Nodes this server judged lost, placed as NotReady before their NotReady is stored [none]. */
  lost?: LostNodes;
  /**
   * How long after a pass writes new holders its per-VIP log lines and events wait [250 ms], so that
   * they do not compete for the CPU with the new holders taking the VIPs.
   */
  recordDelayMs?: number;
}

/** The default of {@link AssignmentControllerOptions.recordDelayMs}. */
export const RECORD_DELAY_MS = 250;

/**
 * Announcer assignment: every allocated VIP goes to one Ready node its L2Advertisements allow, by sticky
 * rendezvous hashing (`placeVips`): a VIP stays where it is while its holder is Ready and eligible, a
 * NotReady node's VIPs spread over the survivors, and a node joining moves nothing. The result is written
 * as one key per VIP (`/vipmesh/assignments/<vip>`, what the servers push to the agents), only the keys
 * that change, in batched transactions; moves are recorded as events on the Services. Each pass is
 * {@link planAssignment} over what the informers and the assignment index hold; this class applies it.
 */
export class AssignmentController {
  readonly #o: AssignmentControllerOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #reconciler: Reconciler;
  readonly #moves: Counter<'reason'> | undefined;
  /** Service -> its traffic policy and not-serving nodes as text (a change needs a pass). */
  readonly #placementInputs = new Map<string, string>();
  /** What the last pass placed where (for events). */
  #last: ReadonlyMap<string, string | undefined> = new Map();
  /** The records of passes waiting for their time, in pass order. */
  #records: Promise<void> = Promise.resolve();
  /** The waits of those records: ended at once on close. */
  readonly #recordWaits = new Set<() => void>();
  #closing = false;

  constructor(o: AssignmentControllerOptions) {
    this.#o = o;
    this.#log = o.logger;
    this.#clock = o.clock ?? systemClock;
    this.#reconciler = new Reconciler(() => this.#reconcile(), { logger: o.logger, clock: this.#clock });
    if (o.registry !== undefined) {
      this.#moves =
        (o.registry.getSingleMetric('vipmesh_controlplane_vip_placements_total') as Counter<'reason'>) ??
        new Counter({
          name: 'vipmesh_controlplane_vip_placements_total',
          help: 'VIP placements that changed a holder, by reason (placed, moved, unplaceable)',
          labelNames: ['reason'],
          registers: [o.registry],
        });
    }
  }

  /** Follow the informers (and the allocation feed) and run a first pass. */
  start(): void {
    const r = this.#reconciler;
    const inf = this.#o.informers;
    // Services matter through their allocations: with an allocation feed, a Service's own changes (the
    // IPAM controller's status writes among them) need no pass.
    if (this.#o.onAllocations === undefined) r.follow(inf.services);
    else {
      r.onClose(this.#o.onAllocations(() => r.kick()));
      // Besides the allocations, what places a Service's VIP: its traffic policy and which nodes said
      // they do not serve it.
      const onService = (e: { type: string; key: string; object: Service }) => {
        const text = e.type === 'DELETED' ? undefined : placementInputOf(e.object);
        if (this.#placementInputs.get(e.key) === text) return;
        if (text === undefined) this.#placementInputs.delete(e.key);
        else this.#placementInputs.set(e.key, text);
        r.kick();
      };
      for (const [key, object] of inf.services.items) onService({ type: 'ADDED', key, object });
      inf.services.on('change', onService);
      r.onClose(() => inf.services.off('change', onService));
    }
    const backends = this.#o.backends;
    if (backends !== undefined) {
      // Backends matter only to Local Services.
      const onBackends = (key: string) => {
        if (inf.services.items.get(key)?.spec?.externalTrafficPolicy === 'Local') r.kick();
      };
      backends.on('change', onBackends);
      r.onClose(() => backends.off('change', onBackends));
    }
    r.follow(inf.nodes);
    const lost = this.#o.lost;
    if (lost !== undefined) {
      const onLost = () => r.kick();
      lost.on('change', onLost);
      r.onClose(() => lost.off('change', onLost));
    }
    r.follow(inf.pools);
    r.follow(inf.configmaps);
    r.follow(inf.l2advertisements);
    r.kick();
  }

  /** Resolves when no pass is running or queued (tests). */
  idle(): Promise<void> {
    return this.#reconciler.idle();
  }

  /** Resolves when the records (lines and events) of every pass so far are written (tests). */
  async recorded(): Promise<void> {
    let last: Promise<void>;
    do {
      last = this.#records;
      await last;
    } while (last !== this.#records);
  }

  /** Stop: no more passes; waits for the one in progress, then writes the records still waiting. */
  async close(): Promise<void> {
    await this.#reconciler.close();
    this.#closing = true;
    for (const end of this.#recordWaits) end();
    await this.recorded();
  }

  /**
   * Write a pass's records once `delayMs` has passed, in pass order, without holding up the next pass.
   * Right after the write the new holders are taking their VIPs: programming the Services, adding the
   * addresses, sending the first gratuitous rounds. A failover of 100 VIPs makes 100 lines and 100
   * events here, each event a datastore write, and on a host that runs this server and an agent (the
   * usual small cluster) that work took the CPU from the new holder in the middle of its take-over.
   */
  #recordLater(record: () => Promise<void>, delayMs: number): void {
    const due = this.#clock.now() + delayMs;
    this.#records = this.#records
      .then(async () => {
        const wait = due - this.#clock.now();
        if (wait > 0 && !this.#closing) {
          await new Promise<void>((resolve) => {
            const end = () => {
              this.#clock.clearTimeout(timer);
              this.#recordWaits.delete(end);
              resolve();
            };
            const timer = this.#clock.setTimeout(end, wait);
            this.#recordWaits.add(end);
          });
        }
        await record();
      })
      .catch((err: unknown) => this.#log.warn({ err }, 'recording the VIP moves failed'));
  }

  async #reconcile(): Promise<void> {
    const inf = this.#o.informers;
    const cfg = poolConfig(
      inf.pools.items.values(),
      inf.configmaps.items.values(),
      inf.l2advertisements.items.values(),
      this.#log,
    );
    const started = this.#clock.now();
    const plan = planAssignment({
      nodes: this.#o.lost?.overlay(inf.nodes.items.values()) ?? inf.nodes.items.values(),
      services: inf.services.items.values(),
      allocations: this.#o.allocations(),
      pools: cfg.pools,
      advertisements: cfg.advertisements,
      holders: this.#o.holders.all,
      last: this.#last,
      ...(this.#o.backends === undefined
        ? {}
        : { backends: (key: string) => this.#o.backends!.backends(key) }),
    });
    if (plan.writes.length > 0) {
      const planned = this.#clock.now();
      // The agents connected here are told while the write commits; a failed write is taken back.
      this.#o.holders.ahead(plan.writes);
      let written: { revision: number; transactions: number };
      try {
        written = await writeHolders(this.#o.kv, plan.writes);
      } catch (err) {
        this.#o.holders.retract(plan.writes);
        throw err;
      }
      const { revision, transactions } = written;
      this.#log.info(
        {
          vips: plan.writes.length,
          transactions,
          planMs: planned - started,
          writeMs: this.#clock.now() - planned,
        },
        'assignment written',
      );
      // The next pass reads its own writes back from the index.
      await this.#o.holders.caughtUp(revision);
    }
    for (const n of plan.legacy) await this.#dropLegacyList(n);
    this.#last = plan.placed;
    for (const c of plan.changes) if (c.reason !== 'kept') this.#moves?.inc({ reason: c.reason });
    const now = this.#clock.now();
    const record = async () => {
      for (const c of plan.changes) this.#log.info({ vip: c.vip, node: c.node, reason: c.reason }, c.message);
      // A failover moves thousands of VIPs: their events go out together, not one fsync after another.
      await inBatches(plan.events, (e) =>
        recordEvent(
          this.#o.store,
          {
            ...e,
            component: 'vipmesh-announcer',
            now,
            ...(this.#o.host === undefined ? {} : { host: this.#o.host }),
          },
          this.#log,
        ),
      );
    };
    // Nothing written, no new holder busy taking VIPs: recorded as soon as the records before it are.
    this.#recordLater(record, plan.writes.length > 0 ? (this.#o.recordDelayMs ?? RECORD_DELAY_MS) : 0);
  }

  /** Drop the VIP list of the old layout from a Node's status (its VIPs now have keys). */
  async #dropLegacyList(n: Node): Promise<void> {
    const { vips: _vips, [VIP_INTERFACES]: _ifs, ...status } = n.status ?? {};
    try {
      await this.#o.store.updateStatus('nodes', { ...n, status });
      this.#log.info({ node: n.metadata.name }, "moved the node's VIP list to assignment keys");
    } catch (err) {
      // Changed or deleted meanwhile: the next pass sees it again.
      this.#log.warn({ node: n.metadata.name, err }, 'could not drop the VIP list from the node status');
    }
  }
}

/** What of a Service, besides its allocation, changes where its VIP goes. */
function placementInputOf(svc: Service): string {
  const h = svc.status?.['endpointHealth'] as { notServing?: unknown } | undefined;
  return JSON.stringify([svc.spec?.externalTrafficPolicy ?? 'Cluster', h?.notServing ?? []]);
}
