import { networkInterfaces, hostname as osHostname } from 'node:os';
import type {
  HealthReport,
  LbService,
  LeaveResult,
  NodeRegistration,
  ServicesDelta,
  VipAssignment,
  VipsDelta,
} from '../api/agent-protocol.js';
import {
  FEATURE_SERVICES_DELTA,
  FEATURE_VIPS_DELTA,
  METHOD_HEALTH,
  METHOD_LEAVE,
  TOPIC_LEASES,
  TOPIC_PEERS,
  TOPIC_SERVICES,
  TOPIC_SERVICES_DELTA,
  TOPIC_VIPS,
  TOPIC_VIPS_DELTA,
} from '../api/agent-protocol.js';
import { type Clock, systemClock, type TimerHandle } from '../clock.js';
import { VipmeshError } from '../errors.js';
import type { Lease } from '../flannel-hostgw/index.js';
import type { Logger } from '../log.js';
import { Gauge, type Registry } from '../metrics.js';
import { parseToken } from '../pki/index.js';
import { TunnelClient, type TunnelClientOptions } from '../tunnel/index.js';
import { ForeignClaims } from './claims.js';
import type { AgentLoadBalancer } from './lb.js';

/** The announcer calls the agent makes (src/arp's `Announcer`). */
export interface AgentAnnouncer {
  hold(vip: string, iface?: string, opts?: { probe?: boolean }): Promise<{ held: boolean }>;
  release(vip: string): Promise<boolean>;
  /** One extra gratuitous round for a held VIP; false when not held (absent: claims are only counted). */
  announce?(vip: string): boolean;
  probe(vip: string, iface?: string, timeoutMs?: number): Promise<{ answered: boolean; mac?: string }>;
  readonly vips: string[];
  on(event: 'conflict', fn: (e: { vip: string; mac: string; phase: 'probe' | 'holding' }) => void): unknown;
  close(): Promise<void>;
}

/** The host-gw calls the agent makes (src/flannel-hostgw's `HostGw`). */
export interface AgentHostGw {
  start(): Promise<unknown>;
  setLeases(leases: readonly Lease[]): Promise<unknown>;
  close(): Promise<void>;
}

/** Options of {@link Agent}. Defaults in brackets. */
interface AgentOptions {
  /** Server URLs, tried in order. */
  servers: string[];
  /** The join token (`K10<CA hash>::server:<secret>`; anything else is `VIPMESH_TUNNEL_BAD_TOKEN`). */
  token: string;
  nodeName: string;
  /** Where the tunnel keeps the node password and pinned CA. */
  dataDir: string;
  registration: NodeRegistration;
  announcer: AgentAnnouncer;
  /** Makes the host-gw data plane once the server has said the cluster CIDR; absent: no pod routes. */
  hostGw?: (clusterCidr: string[]) => AgentHostGw;
  logger: Logger;
  registry?: Registry;
  clock?: Clock;
  /** Tunnel heartbeat interval [100 ms]. */
  heartbeatMs?: number;
  /** Missed heartbeats before the server is declared lost [3]. */
  misses?: number;
  /** While the server is lost, probe every held VIP this often [500 ms]. */
  probeIntervalMs?: number;
  /**
   * On close, the longest hand-over of the VIPs to their new holders [5000 ms]: the agent asks the server
   * to move them and keeps answering for each until the new holder's gratuitous ARP / NA is seen; 0 lets
   * them go as the agent stops (the server moves them once it sees the tunnel close).
   */
  handoverTimeoutMs?: number;
  /** Extra tunnel client options (tests). */
  tunnel?: Partial<TunnelClientOptions>;
  /**
   * Makes the load balancer (src/agent/lb.ts), given how to report health and what to call when a VIP's
   * gate changes; absent: Service pushes are ignored and every assigned VIP is announced.
   */
  loadBalancer?: (deps: {
    report: (r: HealthReport) => Promise<unknown>;
    servingChanged: () => void;
  }) => AgentLoadBalancer;
}

/**
 * The agent: joins the server over the tunnel (registering the node), announces the VIPs the master
 * assigns and programs the host-gw routes of the lease set it is sent. When the server is lost it keeps
 * serving what it holds (the data plane outlives the control plane) but probes its VIPs and releases any
 * that another node answers for, so a partition that heals never leaves two holders. "Another node" is a
 * MAC the server listed as a node's interface: a claim from any other MAC (a spoofed gratuitous ARP or NA)
 * never makes it let go; it announces the VIP again instead.
 */
export class Agent {
  readonly client: TunnelClient;
  readonly #o: AgentOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #claims: ForeignClaims;
  #connected = false;
  #chain: Promise<void> = Promise.resolve();
  #probeTimer: TimerHandle | undefined;
  #retryTimer: TimerHandle | undefined;
  #hostGw: AgentHostGw | undefined;
  readonly #lb: AgentLoadBalancer | undefined;
  #hostGwStarting: Promise<AgentHostGw | undefined> | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;
  /** The assignment as received so far, by VIP (undefined before the first). */
  #wanted: Map<string, VipAssignment> | undefined;
  /** VIPs whose assignment changed since the last apply ('all': compare every one). */
  #dirty: Set<string> | 'all' = 'all';
  #applyQueued = false;
  /** VIPs this process holds besides the server's assignment (the API VIP on the master's own agent). */
  #local: string[] = [];
  /** While handing over on close: the VIPs still waiting for their new holder's claim. */
  #handingOver: Set<string> | undefined;
  #handedOver: (() => void) | undefined;
  /** VIPs the last deltas took away from this node because another node holds them now. */
  readonly #movedAway = new Set<string>();
  /**
   * VIPs moved to another node while this agent runs (a drain, a placement change): still answered for
   * until the new holder is heard announcing them, at most `handoverTimeoutMs` (the timer).
   */
  readonly #handingOff = new Map<string, TimerHandle>();
  /** Releases started by the new holders' claims: done before the announcer closes. */
  #handoverReleases: Promise<void>[] = [];
  /** The Services to serve as received so far, by namespace/name. */
  readonly #services = new Map<string, LbService>();
  /** What the load balancer was last given (with the Services kept for VIPs still being handed off). */
  #lastServed = new Map<string, LbService>();
  #servicesQueued = false;

  constructor(o: AgentOptions) {
    this.#o = o;
    this.#log = o.logger;
    this.#clock = o.clock ?? systemClock;
    this.#claims = new ForeignClaims({
      announce: (vip) => o.announcer.announce?.(vip) ?? false,
      clock: this.#clock,
      logger: o.logger,
      ...(o.registry === undefined ? {} : { registry: o.registry }),
    });
    this.client = new TunnelClient({
      servers: o.servers,
      token: o.token,
      caHash: parseToken(o.token).caHash,
      node: o.nodeName,
      dataDir: o.dataDir,
      // This agent takes its VIPs and Services as deltas (the server sends older agents whole sets).
      info: {
        ...o.registration,
        features: [...(o.registration.features ?? []), FEATURE_VIPS_DELTA, FEATURE_SERVICES_DELTA],
      },
      logger: o.logger.child({ component: 'tunnel' }),
      heartbeatMs: o.heartbeatMs ?? 100,
      misses: o.misses ?? 3,
      minDeadMs: 300,
      // Reconnect within a second of a restarted server coming back (the server keeps a node Ready for
      // its startup grace, 5 s, waiting for it).
      backoffCapMs: 1000,
      ...(o.registry === undefined ? {} : { registry: o.registry }),
      ...(o.clock === undefined ? {} : { clock: o.clock }),
      ...o.tunnel,
    });
    const up =
      o.registry === undefined
        ? undefined
        : ((o.registry.getSingleMetric('vipmesh_agent_server_connected') as Gauge | undefined) ??
          new Gauge({
            name: 'vipmesh_agent_server_connected',
            help: '1 while the agent has a tunnel session to a server, 0 while it has lost the server',
            registers: [o.registry],
          }));
    up?.set(0);
    this.client.on('connected', () => {
      up?.set(1);
      this.#connected = true;
      this.#stopProbing();
    });
    this.client.on('disconnected', ({ reason }) => {
      up?.set(0);
      this.#connected = false;
      // Our own close (SIGTERM): close() says what happens to the VIPs; nothing was lost.
      if (this.#closed) return;
      this.#log.warn(
        { reason, held: this.#o.announcer.vips },
        'lost the server; keeping the VIPs and routes, probing the VIPs',
      );
      this.#startProbing();
    });
    this.#lb = o.loadBalancer?.({
      report: (r) => this.client.request(METHOD_HEALTH, r),
      servingChanged: () => {
        if (this.#wanted === undefined || this.#closed) return;
        this.#dirty = 'all';
        this.#queueApply();
      },
    });
    this.client.on('connected', () => this.#lb?.resend());
    this.client.on('push', (topic, payload) => this.#onPush(topic, payload));
    o.announcer.on('conflict', (e) => {
      if (e.phase === 'holding' && this.#handingOver !== undefined && this.#claims.trusted(e.mac)) {
        this.#claimedWhileLeaving(e.vip, e.mac);
        return;
      }
      if (e.phase === 'holding' && this.#handingOff.has(e.vip) && this.#claims.trusted(e.mac)) {
        this.#endHandOff(e.vip, 'the new holder announces the VIP; releasing it', { mac: e.mac });
        return;
      }
      if (e.phase !== 'holding' || this.#closed) return;
      if (!this.#claims.trusted(e.mac)) {
        this.#claims.foreign(e.vip, e.mac);
        return;
      }
      if (this.#connected) return;
      // Without a master, another node claiming a VIP means the master moved it: let it go.
      this.#log.warn(
        { vip: e.vip, mac: e.mac },
        'another node claims a VIP while the server is lost; releasing it',
      );
      this.#serial(async () => {
        this.#claims.forget(e.vip);
        await this.#o.announcer.release(e.vip);
      });
    });
  }

  /** True while the tunnel is up. */
  get connected(): boolean {
    return this.#connected;
  }

  /** Connect; resolves when the first session is up, rejects on errors no retry fixes (bad token, CA). */
  async start(): Promise<void> {
    await this.client.connect();
  }

  /** Resolves when queued announcer and route work is done (tests). */
  async idle(): Promise<void> {
    let c: Promise<void>;
    do {
      c = this.#chain;
      await c;
    } while (c !== this.#chain);
  }

  #serial(fn: () => Promise<void>): void {
    this.#chain = this.#chain.then(fn).catch((err: unknown) => this.#log.error({ err }, 'agent work failed'));
  }

  #onPush(topic: string, payload: unknown): void {
    if (topic === TOPIC_VIPS) {
      const vips = (payload as { vips?: VipAssignment[] })?.vips;
      if (!Array.isArray(vips)) return;
      this.#wanted = new Map(vips.filter(isAssignment).map((v) => [v.ip, v]));
      this.#dirty = 'all';
      this.#queueApply();
    } else if (topic === TOPIC_VIPS_DELTA) {
      this.#onDelta(payload as VipsDelta);
    } else if (topic === TOPIC_LEASES) {
      const p = payload as { clusterCidr?: string[]; leases?: Lease[] };
      if (!Array.isArray(p?.leases) || !Array.isArray(p.clusterCidr)) return;
      this.#lb?.setLeases(p.leases);
      this.#serial(() => this.#applyLeases(p.clusterCidr!, p.leases!));
    } else if (topic === TOPIC_PEERS) {
      const macs = (payload as { macs?: unknown })?.macs;
      if (Array.isArray(macs)) this.#claims.setPeers(macs.filter((m): m is string => typeof m === 'string'));
    } else if (topic === TOPIC_SERVICES) {
      const services = (payload as { services?: LbService[] })?.services;
      if (!Array.isArray(services)) return;
      this.#services.clear();
      this.#onServicesDelta({ set: services });
    } else if (topic === TOPIC_SERVICES_DELTA) {
      this.#onServicesDelta(payload as ServicesDelta);
    }
  }

  /**
   * A change to the Services: `reset` starts the list again, then `remove`, then `set`. The load balancer
   * gets the list once the messages that arrived together are in.
   */
  #onServicesDelta(d: ServicesDelta): void {
    if (typeof d !== 'object' || d === null || this.#lb === undefined) return;
    if (d.reset === true) this.#services.clear();
    for (const key of Array.isArray(d.remove) ? d.remove : []) {
      if (typeof key === 'string') this.#services.delete(key);
    }
    for (const s of Array.isArray(d.set) ? d.set : []) {
      const { namespace, name } = (s ?? {}) as { namespace?: unknown; name?: unknown };
      if (typeof namespace === 'string' && typeof name === 'string')
        this.#services.set(`${namespace}/${name}`, s);
    }
    this.#queueServices();
  }

  /**
   * Give the load balancer the Services as received, once the messages that arrived together are in. A
   * Service on a VIP this node still answers for while handing it to its new holder stays served on that
   * VIP (as last served) until the VIP is let go: a server that sends each node only the Services of its
   * own VIPs (before every node was sent every Service) stopped listing it here when the VIP moved.
   */
  #queueServices(): void {
    if (this.#servicesQueued || this.#lb === undefined) return;
    this.#servicesQueued = true;
    queueMicrotask(() => {
      this.#servicesQueued = false;
      if (this.#closed) return;
      const leaving = (v: string) => this.#movedAway.has(v) || this.#handingOff.has(v);
      const served = new Map(this.#services);
      for (const [key, last] of this.#lastServed) {
        const kept = last.vips.filter(leaving);
        if (kept.length === 0) continue;
        const now = served.get(key);
        served.set(key, { ...(now ?? last), vips: [...new Set([...(now?.vips ?? []), ...kept])] });
      }
      this.#lastServed = served;
      this.#lb?.setServices([...served.keys()].sort().map((k) => served.get(k)!));
    });
  }

  /** A change to the assignment: `reset` starts the set again, then `remove`, then `add`. */
  #onDelta(d: VipsDelta): void {
    if (typeof d !== 'object' || d === null) return;
    if (d.reset === true || this.#wanted === undefined) {
      this.#wanted = new Map();
      this.#dirty = 'all';
    }
    const wanted = this.#wanted;
    const note = (ip: string) => {
      if (this.#dirty !== 'all') this.#dirty.add(ip);
    };
    const moved = new Set(Array.isArray(d.moved) ? d.moved : []);
    for (const ip of Array.isArray(d.remove) ? d.remove : []) {
      if (typeof ip !== 'string') continue;
      wanted.delete(ip);
      if (moved.has(ip)) this.#movedAway.add(ip);
      else this.#movedAway.delete(ip);
      note(ip);
    }
    for (const v of Array.isArray(d.add) ? d.add : []) {
      if (!isAssignment(v)) continue;
      wanted.set(v.ip, v);
      this.#movedAway.delete(v.ip);
      note(v.ip);
    }
    this.#queueApply();
  }

  /** Apply what changed once the work queued before it is done; changes arriving meanwhile join it. */
  #queueApply(): void {
    if (this.#applyQueued) return;
    this.#applyQueued = true;
    this.#serial(async () => {
      this.#applyQueued = false;
      await this.#applyVips();
    });
  }

  async #applyVips(): Promise<void> {
    const wanted = this.#wanted;
    if (this.#closed || wanted === undefined) return;
    const dirty = this.#dirty;
    this.#dirty = new Set();
    const a = this.#o.announcer;
    const have = new Set(a.vips);
    const check = dirty === 'all' ? new Set([...have, ...wanted.keys(), ...this.#local]) : dirty;
    // A VIP whose Services have nothing to serve is not announced (the load balancer's gate); a local VIP
    // is held whatever the assignment says.
    const want = (ip: string): VipAssignment | undefined => {
      if (this.#local.includes(ip)) return wanted.get(ip) ?? { ip };
      const v = wanted.get(ip);
      return v !== undefined && (this.#lb?.allows(ip) ?? true) ? v : undefined;
    };
    for (const ip of check) {
      if (want(ip) !== undefined) {
        this.#cancelHandOff(ip);
        continue;
      }
      if (!have.has(ip) || this.#handingOff.has(ip)) continue;
      if (this.#movedAway.has(ip) && this.#connected && (this.#o.handoverTimeoutMs ?? 5000) > 0) {
        this.#startHandOff(ip);
        continue;
      }
      // Its Services, kept while it was to be handed off, go with it.
      if (this.#movedAway.delete(ip)) this.#queueServices();
      this.#claims.forget(ip);
      await a.release(ip);
    }
    let failed = false;
    await Promise.all(
      [...check]
        .filter((ip) => want(ip) !== undefined && !have.has(ip))
        .map(async (ip) => {
          const v = want(ip)!;
          const iface = v.interfaces?.length === 1 ? v.interfaces[0] : undefined;
          try {
            // The master placed it here knowing the old holder is gone: take it without a probe.
            await a.hold(v.ip, iface, { probe: false });
          } catch (err) {
            failed = true;
            this.#log.error({ vip: v.ip, iface, err }, 'cannot announce an assigned VIP; retrying in 1 s');
          }
        }),
    );
    // The Services of what this node holds or is to hold are checked and reported (their health gates
    // `want`); told after the holds, whose first gratuitous rounds do not wait for it.
    this.#lb?.setHeld([...a.vips, ...wanted.keys(), ...this.#local]);
    if (failed) this.#retryVips();
  }

  /**
   * Hold `ips` besides what the server assigns, announced at once without a probe (the server's process
   * decided it: the API VIP while its server is master); `[]` releases them.
   */
  setLocalVips(ips: string[]): void {
    this.#local = [...ips];
    this.#wanted ??= new Map();
    this.#dirty = 'all';
    this.#queueApply();
  }

  /** Apply the current assignment again in a second (a VIP could not be taken: interface down, ...). */
  #retryVips(): void {
    if (this.#retryTimer !== undefined || this.#closed) return;
    this.#retryTimer = this.#clock.setTimeout(() => {
      this.#retryTimer = undefined;
      if (this.#closed) return;
      this.#dirty = 'all';
      this.#queueApply();
    }, 1000);
  }

  async #applyLeases(clusterCidr: string[], leases: Lease[]): Promise<void> {
    if (this.#closed || this.#o.hostGw === undefined) return;
    this.#hostGwStarting ??= (async () => {
      const h = this.#o.hostGw!(clusterCidr);
      try {
        await h.start();
        this.#hostGw = h;
        return h;
      } catch (err) {
        this.#log.error({ err }, 'host-gw did not start; pod routes are not programmed');
        await h.close().catch(() => undefined);
        this.#hostGwStarting = undefined;
        return undefined;
      }
    })();
    const h = await this.#hostGwStarting;
    await h?.setLeases(leases);
  }

  #startProbing(): void {
    if (this.#probeTimer !== undefined || this.#closed) return;
    const tick = () => {
      this.#probeTimer = this.#clock.setTimeout(() => {
        this.#serial(async () => {
          if (this.#connected || this.#closed) return;
          const a = this.#o.announcer;
          const results = await Promise.all(a.vips.map(async (vip) => ({ vip, r: await a.probe(vip) })));
          for (const { vip, r } of results) {
            // A foreign answer was already seen as a claim (counted, announced again); it takes nothing.
            if (!r.answered || this.#connected || (r.mac !== undefined && !this.#claims.trusted(r.mac)))
              continue;
            this.#log.warn(
              { vip, mac: r.mac },
              'another node answers for a VIP while the server is lost; releasing it',
            );
            this.#claims.forget(vip);
            await a.release(vip);
          }
        });
        if (!this.#connected) tick();
        else this.#probeTimer = undefined;
      }, this.#o.probeIntervalMs ?? 500);
    };
    tick();
  }

  #stopProbing(): void {
    if (this.#probeTimer !== undefined) this.#clock.clearTimeout(this.#probeTimer);
    this.#probeTimer = undefined;
  }

  /**
   * A node of the cluster claims a VIP while this agent hands over: the new holder announces it, and the
   * LAN's caches now point there, so this one lets it go (before that, both answered: make-before-break).
   */
  #claimedWhileLeaving(vip: string, mac: string): void {
    const waiting = this.#handingOver;
    if (waiting === undefined || !this.#o.announcer.vips.includes(vip)) return;
    this.#log.info({ vip, mac }, 'the new holder announces the VIP; releasing it');
    waiting.delete(vip);
    this.#claims.forget(vip);
    this.#handoverReleases.push(
      this.#o.announcer
        .release(vip)
        .then(() => undefined)
        .catch((err: unknown) => this.#log.error({ err, vip }, 'cannot release a handed-over VIP'))
        .finally(() => {
          if (waiting.size === 0) this.#handedOver?.();
        }),
    );
  }

  /** Keep answering for `ip`, moved to another node, until that node announces it (or the timeout). */
  #startHandOff(ip: string): void {
    const timeoutMs = this.#o.handoverTimeoutMs ?? 5000;
    this.#log.info({ vip: ip, timeoutMs }, 'the VIP moved to another node; answering until it announces it');
    this.#handingOff.set(
      ip,
      this.#clock.setTimeout(
        () =>
          this.#endHandOff(
            ip,
            'no announcement from the new holder within the hand-over timeout; releasing anyway',
            { waitedMs: timeoutMs },
            'warn',
          ),
        timeoutMs,
      ),
    );
  }

  /** The VIP is this node's again (it moved back): stop handing it off, keep it. */
  #cancelHandOff(ip: string): void {
    const timer = this.#handingOff.get(ip);
    if (timer === undefined) return;
    this.#clock.clearTimeout(timer);
    this.#handingOff.delete(ip);
  }

  /** Release a VIP handed off to its new holder (its claim was heard, or the time is up). */
  #endHandOff(ip: string, message: string, fields: object, level: 'info' | 'warn' = 'info'): void {
    if (!this.#handingOff.has(ip)) return;
    this.#cancelHandOff(ip);
    this.#log[level]({ vip: ip, ...fields }, message);
    this.#serial(async () => {
      // Assigned here again meanwhile: keep it.
      if (this.#closed || this.#wanted?.has(ip) || this.#local.includes(ip)) return;
      this.#movedAway.delete(ip);
      this.#claims.forget(ip);
      await this.#o.announcer.release(ip);
      // Its Services are no longer served here.
      this.#queueServices();
    });
  }

  /**
   * Planned hand-over: ask the server to move the assigned VIPs away (it marks the node NotReady) and
   * keep answering for each one until its new holder is heard announcing it, for at most
   * `handoverTimeoutMs` in all. A VIP that no other node may hold, or that did not move in time, is let
   * go with the rest when the announcer closes.
   */
  async #handOver(): Promise<void> {
    const timeoutMs = this.#o.handoverTimeoutMs ?? 5000;
    const a = this.#o.announcer;
    const assigned = a.vips.filter((ip) => this.#wanted?.has(ip) && !this.#local.includes(ip));
    if (timeoutMs <= 0 || !this.#connected || assigned.length === 0) return;
    const started = this.#clock.now();
    const waiting = new Set(assigned);
    this.#handingOver = waiting;
    let timer: TimerHandle | undefined;
    const over = new Promise<void>((resolve) => {
      this.#handedOver = resolve;
      timer = this.#clock.setTimeout(resolve, timeoutMs);
    });
    try {
      this.#log.info({ vips: assigned.length, timeoutMs }, 'stopping: handing the VIPs over');
      // Whatever the server answers, the wait below is bounded by the same deadline.
      const answer = await Promise.race([
        this.client.request<LeaveResult>(METHOD_LEAVE, { timeoutMs }, { timeoutMs }).catch((err: unknown) => {
          this.#log.warn({ err }, 'the server did not take the leave request; releasing the VIPs');
          return undefined;
        }),
        over.then(() => undefined),
      ]);
      // Only a VIP that has a new holder is worth waiting for.
      const moved = new Set(
        (Array.isArray(answer?.moved) ? answer.moved : [])
          .filter((m) => typeof m?.node === 'string')
          .map((m) => m.vip),
      );
      for (const ip of [...waiting]) if (!moved.has(ip)) waiting.delete(ip);
      if (waiting.size > 0) await over;
      const late = [...waiting];
      if (late.length > 0) {
        this.#log.warn(
          { vips: late, waitedMs: this.#clock.now() - started },
          'no announcement from the new holder within the hand-over timeout; releasing anyway',
        );
      } else {
        this.#log.info({ vips: assigned.length, tookMs: this.#clock.now() - started }, 'VIPs handed over');
      }
    } finally {
      if (timer !== undefined) this.#clock.clearTimeout(timer);
      this.#handingOver = undefined;
      this.#handedOver = undefined;
      // A release still under way must finish before the announcer (and its netlink socket) closes.
      await Promise.all(this.#handoverReleases);
    }
  }

  /** Hand the VIPs over (see `handoverTimeoutMs`), disconnect, release every VIP (announcer close) and stop the route reconciler. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    this.#log.info(
      { held: this.#o.announcer.vips },
      'stopping: leaving the server, releasing the VIPs and removing the routes',
    );
    this.#stopProbing();
    this.#claims.close();
    if (this.#retryTimer !== undefined) this.#clock.clearTimeout(this.#retryTimer);
    // VIPs still handed off go with the rest when the announcer closes.
    for (const timer of this.#handingOff.values()) this.#clock.clearTimeout(timer);
    this.#handingOff.clear();
    await this.idle();
    await this.#handOver();
    await this.client.close();
    await this.idle();
    await this.#o.announcer.close();
    await this.#lb
      ?.close()
      .catch((err: unknown) => this.#log.error({ err }, 'cannot remove the load balancer table'));
    const h = this.#hostGw ?? (await this.#hostGwStarting);
    await h?.close();
  }
}

/** What this host registers: addresses (the node IPs, or the first non-internal ones), interfaces, labels. */
export function localRegistration(opts: {
  nodeName: string;
  nodeIps?: string[];
  labels?: Record<string, string>;
}): NodeRegistration {
  const ifs = networkInterfaces();
  const interfaces: NonNullable<NodeRegistration['interfaces']> = [];
  const candidates: string[] = [];
  for (const [name, addrs] of Object.entries(ifs)) {
    if (addrs === undefined || addrs.length === 0 || addrs[0]!.internal) continue;
    interfaces.push({ name, mac: addrs[0]!.mac, addresses: addrs.map((a) => a.cidr ?? a.address) });
    for (const a of addrs) if (!a.address.startsWith('fe80:')) candidates.push(a.address);
  }
  const nodeIps =
    opts.nodeIps !== undefined && opts.nodeIps.length > 0
      ? opts.nodeIps
      : [candidates.find((ip) => ip.includes('.')) ?? candidates[0]].filter(
          (x): x is string => x !== undefined,
        );
  if (nodeIps.length === 0) {
    throw new VipmeshError(
      'VIPMESH_CLUSTER_NO_NODE_IP',
      'no --node-ip given and no non-loopback address found',
    );
  }
  return {
    addresses: [
      ...nodeIps.map((address) => ({ type: 'InternalIP', address })),
      { type: 'Hostname', address: osHostname() },
    ],
    labels: {
      'kubernetes.io/hostname': opts.nodeName,
      'kubernetes.io/os': process.platform,
      'kubernetes.io/arch': process.arch === 'x64' ? 'amd64' : process.arch,
      ...(opts.labels ?? {}),
    },
    interfaces,
    nodeInfo: { vipmeshVersion: process.env['npm_package_version'] ?? '', nodeVersion: process.version },
  };
}

function isAssignment(v: unknown): v is VipAssignment {
  const a = v as { ip?: unknown; interfaces?: unknown } | null;
  return (
    typeof a === 'object' &&
    a !== null &&
    typeof a.ip === 'string' &&
    (a.interfaces === undefined ||
      (Array.isArray(a.interfaces) && a.interfaces.every((i) => typeof i === 'string')))
  );
}
