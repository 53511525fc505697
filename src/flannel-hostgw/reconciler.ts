/**
 * The route reconciler: keeps the kernel's main table holding exactly one route per other node's pod
 * subnet, via that node's IP on the flannel interface, marked with vipmesh's rtm_protocol.
 *
 * It keeps a model of the routes it installed, so a lease change costs only the routes that change; a
 * full pass (dump + diff) runs at start, on link/address changes, after lost notifications and every
 * `resyncIntervalMs` as a safety net. Route notifications repair what others do at once: a vipmesh route
 * somebody deletes is put back within milliseconds (flannel waits for its 10 s re-check).
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { type Clock, systemClock, type TimerHandle } from '../clock.js';
import { errnoOf, VipmeshError } from '../errors.js';
import { silentLogger } from '../log.js';
import type { Cidr } from '../util/cidr.js';
import { parseCidr } from './cidr.js';
import type { Lease } from './lease.js';
import { type HostGwMetrics, hostGwMetrics } from './metrics.js';
import type { KernelRoute, NetlinkEvent, RouteNetlink, RouteSpec } from './netlink.js';
import { atOurMetric, diffRoutes, metricOf, planRoutes, type Refusal, sameRoute } from './plan.js';

/**
 * vipmesh's rtm_protocol: 86 (0x56, ASCII "V"). Not in iproute2's rt_protos (kernel=2, boot=3, static=4,
 * gated=8, ra=9, mrt=10, zebra=11, bird=12 ... dhcp=16, keepalived=18, babel=42, openr=99, bgp=186-eigrp=192),
 * nor among the kernel's RTPROT_* constants; flannel itself uses RTPROT_BOOT (3) for its host-gw routes.
 * Add `86 vipmesh` to /etc/iproute2/rt_protos.d/vipmesh.conf to see the name in `ip route`.
 */
export const VIPMESH_RT_PROTOCOL = 86;

/** Options of {@link RouteReconciler}. */
interface RouteReconcilerOptions {
  /** This node's name (its own lease is not routed). */
  nodeName: string;
  /** The flannel interface by name (`--flannel-iface`). */
  iface: string;
  /** rtm_protocol of vipmesh's routes; default {@link VIPMESH_RT_PROTOCOL}. */
  protocol?: number;
  /** Full resync period (ms); default 10,000. Notifications do the fast work; this is the safety net. */
  resyncIntervalMs?: number;
  /** Retry delay after a failed route change (ms); default 1,000. */
  retryMs?: number;
  /** Route requests in flight at once (sent together, one datagram per turn); default 128. */
  concurrency?: number;
  logger?: Logger;
  clock?: Clock;
  registry?: Registry;
}

/** What one pass did. */
export interface ReconcileResult {
  /** True when the pass read the kernel's table (start, resync, link/address change). */
  full: boolean;
  replaced: number;
  deleted: number;
  unchanged: number;
  refused: Refusal[];
  /** Route changes that failed (errno in `cause`); they are retried after `retryMs`. */
  errors: VipmeshError[];
  durationMs: number;
}

/** The reconciler's typed events. */
interface RouteReconcilerEvents {
  /** A pass finished. */
  synced: [result: ReconcileResult];
  /** A lease was refused (first time for that node and reason). */
  refused: [refusal: Refusal];
  /** A vipmesh route was removed by someone else and is being put back. */
  restoring: [dst: string];
  /** A route change failed; it is retried. */
  routeError: [error: VipmeshError];
}

/** Leases -> kernel routes, with the netlink layer injected (tests pass a fake). */
export class RouteReconciler extends EventEmitter<RouteReconcilerEvents> {
  readonly #nl: RouteNetlink;
  readonly #opts: Required<Omit<RouteReconcilerOptions, 'logger' | 'clock' | 'registry'>>;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #metrics: HostGwMetrics | undefined;
  #leases: readonly Lease[] | undefined;
  #wanted = new Map<string, RouteSpec>();
  #refusedKeys = new Set<string>();
  #lastRefused: Refusal[] = [];
  /** vipmesh-protocol routes believed to be in the kernel, by destination. */
  #installed = new Map<string, KernelRoute[]>();
  #ifindex = 0;
  #connected: Cidr[] = [];
  #started = false;
  #starting = false;
  #closed = false;
  #needFull = true;
  #requested = 0;
  #running: Promise<void> | undefined;
  #active = false;
  #waiters: Array<{ gen: number; resolve: (r: ReconcileResult) => void }> = [];
  #resyncTimer: TimerHandle | undefined;
  #retryTimer: TimerHandle | undefined;

  constructor(netlink: RouteNetlink, opts: RouteReconcilerOptions) {
    super();
    this.#nl = netlink;
    this.#opts = {
      nodeName: opts.nodeName,
      iface: opts.iface,
      protocol: opts.protocol ?? VIPMESH_RT_PROTOCOL,
      resyncIntervalMs: opts.resyncIntervalMs ?? 10_000,
      retryMs: opts.retryMs ?? 1_000,
      concurrency: opts.concurrency ?? 128,
    };
    this.#log = opts.logger ?? silentLogger();
    this.#clock = opts.clock ?? systemClock;
    this.#metrics = opts.registry === undefined ? undefined : hostGwMetrics(opts.registry);
  }

  /** The routes the current leases call for (after refusals). */
  get wanted(): RouteSpec[] {
    return [...this.#wanted.values()];
  }

  /** Refusals of the last pass. */
  get refused(): Refusal[] {
    return [...this.#lastRefused];
  }

  /**
   * Subscribe to route/link/address notifications, then run the first full pass (only once leases were
   * given: before that, vipmesh routes already in the kernel are left as they are). Throws
   * `VIPMESH_HOSTGW_NO_IFACE` when the flannel interface does not exist.
   */
  async start(): Promise<void> {
    if (this.#started || this.#starting) return;
    this.#starting = true;
    this.#nl.subscribe((ev) => this.#onEvent(ev));
    await this.#refreshIface();
    // Only now may passes run (a notification arriving while the interface is looked up must not
    // start one that races with this lookup).
    this.#started = true;
    this.#armResync();
    if (this.#leases !== undefined || this.#waiters.length > 0) await this.#request();
  }

  /**
   * Replace the desired leases (all nodes', this node's included). Resolves when a pass that saw them is
   * done (the first pass after start() when called before it).
   */
  setLeases(leases: readonly Lease[]): Promise<ReconcileResult> {
    this.#leases = [...leases];
    return this.#request();
  }

  /** Read the kernel's table and converge now. */
  resync(): Promise<ReconcileResult> {
    this.#needFull = true;
    return this.#request();
  }

  /**
   * Stop timers and close the netlink layer. Routes stay (the data plane outlives the daemon). Requests
   * not served yet resolve with a `VIPMESH_HOSTGW_CLOSED` error in `errors`.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#resyncTimer !== undefined) this.#clock.clearTimeout(this.#resyncTimer);
    if (this.#retryTimer !== undefined) this.#clock.clearTimeout(this.#retryTimer);
    await this.#running?.catch(() => undefined);
    this.#nl.close();
    // Nobody is left to serve what was still asked for: answer it rather than leave it hanging.
    const closed = new VipmeshError(
      'VIPMESH_HOSTGW_CLOSED',
      'host-gw reconciler closed before this pass ran',
    );
    for (const w of this.#waiters.splice(0)) {
      w.resolve({
        full: false,
        replaced: 0,
        deleted: 0,
        unchanged: 0,
        refused: [],
        errors: [closed],
        durationMs: 0,
      });
    }
  }

  #request(): Promise<ReconcileResult> {
    const gen = ++this.#requested;
    const p = new Promise<ReconcileResult>((resolve) => this.#waiters.push({ gen, resolve }));
    this.#kick();
    return p;
  }

  #kick(): void {
    if (!this.#started || this.#closed || this.#active) return;
    this.#active = true;
    this.#running = this.#loop();
  }

  async #loop(): Promise<void> {
    try {
      while (!this.#closed) {
        const gen = this.#requested;
        const waiting = this.#waiters.some((w) => w.gen <= gen);
        if (!waiting && !this.#needFull && !this.#dirty()) return;
        // `seen`: the newest request whose leases this pass planned with (a full pass awaits the kernel
        // before planning, so requests made meanwhile are served by it too).
        const { result, seen } = await this.#pass();
        this.emit('synced', result);
        const done = this.#waiters.filter((w) => w.gen <= seen);
        this.#waiters = this.#waiters.filter((w) => w.gen > seen);
        for (const w of done) w.resolve(result);
        if (result.errors.length > 0) {
          this.#scheduleRetry();
          if (this.#waiters.length === 0) return;
        }
      }
    } finally {
      // Cleared in the same turn as the last check, so a request made by a resolved waiter's
      // continuation always starts a new loop.
      this.#active = false;
    }
  }

  /** True when the model says the kernel differs from what is wanted. */
  #dirty(): boolean {
    if (this.#leases === undefined) return false;
    const d = diffRoutes(this.#wanted, this.#allInstalled());
    return d.replace.length > 0 || d.delete.length > 0;
  }

  #allInstalled(): KernelRoute[] {
    return [...this.#installed.values()].flat();
  }

  async #pass(): Promise<{ result: ReconcileResult; seen: number }> {
    const t0 = performance.now();
    const full = this.#needFull;
    const errors: VipmeshError[] = [];
    if (full) {
      this.#needFull = false;
      try {
        await this.#refreshIface();
        const routes = await this.#nl.listRoutes();
        this.#installed.clear();
        for (const r of routes) if (r.protocol === this.#opts.protocol) this.#remember(r);
      } catch (err) {
        this.#needFull = true;
        errors.push(err as VipmeshError);
      }
    }
    const seen = this.#requested;
    if (this.#leases === undefined || errors.length > 0) {
      const durationMs = performance.now() - t0;
      return {
        result: { full, replaced: 0, deleted: 0, unchanged: 0, refused: [], errors, durationMs },
        seen,
      };
    }
    const plan = planRoutes(this.#leases, {
      nodeName: this.#opts.nodeName,
      iface: this.#opts.iface,
      ifindex: this.#ifindex,
      connected: this.#connected,
      protocol: this.#opts.protocol,
    });
    this.#wanted = plan.routes;
    this.#reportRefusals(plan.refused);
    const diff = diffRoutes(plan.routes, this.#allInstalled());
    let replaced = 0;
    let deleted = 0;
    await this.#each(diff.replace, async (spec) => {
      try {
        await this.#nl.replaceRoute(spec);
        this.#installed.set(spec.dst, [{ ...spec, family: spec.dst.includes(':') ? 6 : 4, table: 254 }]);
        replaced++;
      } catch (err) {
        errors.push(err as VipmeshError);
      }
    });
    await this.#each(diff.delete, async (r) => {
      try {
        await this.#nl.deleteRoute(r);
        deleted++;
      } catch (err) {
        // ESRCH: already gone, which is what we wanted.
        if (errnoOf((err as VipmeshError).cause) !== 'ESRCH') errors.push(err as VipmeshError);
      }
      this.#forget(r);
    });
    for (const e of errors) {
      this.#log.error({ op: 'route', err: e, errno: errnoOf(e.cause) }, e.message);
      this.emit('routeError', e);
    }
    const result: ReconcileResult = {
      full,
      replaced,
      deleted,
      unchanged: diff.unchanged,
      refused: plan.refused,
      errors,
      durationMs: performance.now() - t0,
    };
    this.#metrics?.record(result, this.#wanted.size);
    if (replaced + deleted > 0 || errors.length > 0) {
      this.#log.info(
        { op: 'reconcile', full, replaced, deleted, unchanged: diff.unchanged },
        'routes reconciled',
      );
    }
    return { result, seen };
  }

  /**
   * Run `fn` over `items` in chunks of `concurrency`: each chunk's requests are made in one turn, so the
   * netlink layer sends them in one datagram, and the next chunk waits for all of its acks (a window
   * keeps the acks within the socket's receive buffer; refilling one slot per ack would degrade to one
   * request per sendmsg).
   */
  async #each<T>(items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
    const size = Math.max(1, this.#opts.concurrency);
    for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
  }

  #remember(r: KernelRoute): void {
    const list = (this.#installed.get(r.dst) ?? []).filter((x) => !sameKey(x, r));
    list.push(r);
    this.#installed.set(r.dst, list);
  }

  #forget(r: KernelRoute): void {
    const list = (this.#installed.get(r.dst) ?? []).filter((x) => !sameKey(x, r));
    if (list.length === 0) this.#installed.delete(r.dst);
    else this.#installed.set(r.dst, list);
  }

  #reportRefusals(refused: Refusal[]): void {
    const keys = new Set<string>();
    for (const r of refused) {
      const key = `${r.node}\0${r.error.code}\0${r.error.message}`;
      keys.add(key);
      if (this.#refusedKeys.has(key)) continue;
      this.#log.warn({ node: r.node, code: r.error.code, ...r.error.details }, r.error.message);
      this.emit('refused', r);
    }
    this.#refusedKeys = keys;
    this.#lastRefused = refused;
  }

  async #refreshIface(): Promise<void> {
    const link = (await this.#nl.listLinks()).find((l) => l.name === this.#opts.iface);
    if (link === undefined) {
      throw new VipmeshError(
        'VIPMESH_HOSTGW_NO_IFACE',
        `flannel interface ${this.#opts.iface} does not exist`,
        {
          details: { iface: this.#opts.iface },
        },
      );
    }
    this.#ifindex = link.index;
    this.#connected = (await this.#nl.listAddresses())
      .filter((a) => a.ifindex === link.index)
      .map((a) => parseCidr(`${a.address}/${a.prefixLen}`, 'interface address', false));
  }

  #onEvent(ev: NetlinkEvent): void {
    if (this.#closed) return;
    // Only the flannel interface's addresses decide what is on-link: the VIPs an announcer adds to lo
    // (a failover adds hundreds at once) must not make this node dump every link, address and route
    // while it takes them over.
    if (ev.kind === 'address' && ev.ifindex !== undefined && ev.ifindex !== this.#ifindex) return;
    if (ev.kind !== 'route') {
      // Interface or address changes can flush routes without notifications and change what is on-link.
      this.#needFull = true;
      this.#kick();
      return;
    }
    const r = ev.route;
    const want = this.#wanted.get(r.dst);
    if (r.protocol !== this.#opts.protocol) {
      // A foreign route for a wanted prefix may have replaced ours (NLM_F_REPLACE sends no delete).
      if (want !== undefined && atOurMetric(r) && ev.op === 'add') {
        this.#installed.delete(r.dst);
        this.#kick();
      }
      return;
    }
    if (ev.op === 'del') {
      const had = (this.#installed.get(r.dst) ?? []).some((x) => sameKey(x, r));
      this.#forget(r);
      // Our own deletions come back here too; only a wanted route needs putting back.
      if (want === undefined || !had) return;
      this.#log.info(
        { op: 'restore', dst: r.dst, gateway: want.gateway },
        'vipmesh route removed; restoring',
      );
      this.emit('restoring', r.dst);
      this.#kick();
      return;
    }
    this.#remember(r);
    // Our own additions are echoed as well; anything else of our protocol is fixed or removed.
    if (want === undefined || !sameRoute(r, want)) this.#kick();
  }

  #armResync(): void {
    this.#resyncTimer = this.#clock.setTimeout(() => {
      this.#needFull = true;
      this.#kick();
      this.#armResync();
    }, this.#opts.resyncIntervalMs);
  }

  #scheduleRetry(): void {
    if (this.#retryTimer !== undefined || this.#closed) return;
    this.#retryTimer = this.#clock.setTimeout(() => {
      this.#retryTimer = undefined;
      this.#needFull = true;
      this.#kick();
    }, this.#opts.retryMs);
  }
}

function sameKey(a: KernelRoute, b: KernelRoute): boolean {
  return a.dst === b.dst && metricOf(a) === metricOf(b) && a.table === b.table;
}
