/**
 * The load balancer as the agent runs it: the Services the server pushes (`TOPIC_SERVICES`; every Service,
 * whichever node holds its VIP) are rendered into the nftables table, where the rules of a VIP this node
 * does not hold stay inert (src/lb/script.ts); the Services on the VIPs this node holds are
 * health-checked, and their health goes back to the server (`METHOD_HEALTH`) whenever it changes; a VIP is
 * announced only while a Service on it is serving (see `HealthReport.serving`). Taking a VIP over needs no
 * rule written: its Services' rules are in already.
 */
import type { HealthReport, LbService } from '../api/agent-protocol.js';
import type { Clock, TimerHandle } from '../clock.js';
import type { Lease } from '../flannel-hostgw/index.js';
import {
  type ApplyResult,
  backendsOf,
  ConntrackCleaner,
  type Endpoint,
  endpointKey,
  HealthChecker,
  NftSession,
  NftTable,
  type Probe,
  type ProbeTarget,
  probeFor,
  type Ruleset,
  render,
  runCommand,
  type Service,
  type StaleFlow,
  serviceKey,
  spawnProcess,
  targetPortOf,
  validateService,
} from '../lb/index.js';
import type { Logger } from '../log.js';
import { Counter, Gauge, Histogram, type Registry } from '../metrics.js';
import { contains, splitCidr } from '../util/cidr.js';
import { canonicalIp, parseIp } from '../util/ip.js';

/** What the agent asks of its load balancer. */
export interface AgentLoadBalancer {
  /** The Services to program (each push replaces the last). */
  setServices(services: LbService[]): void;
  /** The VIPs this node holds or is assigned: their Services are health-checked and reported. */
  setHeld(vips: Iterable<string>): void;
  /** The cluster's subnet leases: this node's pod subnets make an endpoint local. */
  setLeases(leases: readonly Lease[]): void;
  /** Whether `vip` may be announced: no pushed Service is on it, or one on it is serving. */
  allows(vip: string): boolean;
  /** Send the current report again (a new session: the server may have missed the last). */
  resend(): void;
  /** Stop the checks and remove the table. */
  close(): Promise<void>;
}

/** The kernel side, as {@link AgentLb} uses it (src/lb's NftTable; tests pass a fake). */
export interface LbTable {
  apply(rs: Ruleset): Promise<ApplyResult>;
  start(): void;
  remove(): Promise<void>;
}

/** Options of {@link AgentLb}. Defaults in brackets. */
export interface AgentLbOptions {
  nodeName: string;
  /** This node's addresses (an endpoint at one of them is local). */
  nodeIps: readonly string[];
  table: LbTable;
  /** Resets UDP flows to endpoints that left the rotation [none]. */
  conntrack?: { forget(flows: readonly StaleFlow[]): Promise<unknown> };
  /** [TCP connect / HTTP GET] */
  probe?: Probe;
  /** Sends the report to the server (`METHOD_HEALTH`). */
  report: (r: HealthReport) => Promise<unknown>;
  /** Some VIP's `allows()` answer changed. */
  servingChanged: () => void;
  clock: Clock;
  logger: Logger;
  registry?: Registry;
}

/** At most this much JSON of Service entries in one health request (the tunnel's frames are 1 MiB at most). */
export const MAX_REPORT_BYTES = 256 * 1024;
/** A health request that failed is tried again after this long (or at once on a new session). */
export const REPORT_RETRY_MS = 2000;

function metric<T>(registry: Registry | undefined, name: string, make: (r: Registry) => T): T | undefined {
  if (registry === undefined) return undefined;
  return (registry.getSingleMetric(name) as T | undefined) ?? make(registry);
}

/** The agent's load balancer: checks, table, report, announcement gate. */
export class AgentLb implements AgentLoadBalancer {
  readonly #o: AgentLbOptions;
  readonly #log: Logger;
  readonly #checker: HealthChecker;
  #services: Service[] = [];
  /** Each VIP (canonical text) -> the Services on it (a failover's hundreds of VIPs each ask {@link allows}). */
  #onVip = new Map<string, Service[]>();
  #podCidrs: string[] = [];
  /** The VIPs (canonical text) this node holds or is assigned. */
  #held = new Set<string>();
  /** The Services and unhealthy endpoints of the last table applied (what the report speaks of). */
  #applied: { services: readonly Service[]; unhealthy: ReadonlySet<string> } | undefined;
  readonly #nodeIps: Set<string>;
  /** UDP flows (`vip|port|endpoint`) the last applied table sends somewhere. */
  #udpFlows = new Map<string, StaleFlow>();
  #serving = new Map<string, boolean>();
  /** Service key -> the JSON of its report entry as last sent (a failed send forgets it). */
  readonly #sent = new Map<string, string>();
  #current: HealthReport = { services: [] };
  #reportFailing = false;
  #retryTimer: TimerHandle | undefined;
  #syncing: Promise<void> | undefined;
  #dirty = false;
  #closed = false;
  /** Endpoint gauge label sets currently exported (removed when the endpoint goes). */
  #exported = new Set<string>();
  readonly #m:
    | {
        healthy: Gauge<'service' | 'endpoint'>;
        updates: Counter<'mode'>;
        duration: Histogram;
        failures: Counter<'service'>;
        errors: Counter;
      }
    | undefined;

  constructor(o: AgentLbOptions) {
    this.#o = o;
    this.#log = o.logger;
    this.#nodeIps = new Set(o.nodeIps.map((ip) => canonicalIp(ip) ?? ip));
    this.#checker = new HealthChecker({
      clock: o.clock,
      probe: o.probe ?? probeFor,
      onChange: (key, st) => {
        this.#log.info(
          { endpoint: key, healthy: st.healthy, reason: st.reason },
          st.healthy ? 'endpoint healthy' : 'endpoint unhealthy',
        );
        this.#sync();
      },
      onFailure: (key) => this.#m?.failures.inc({ service: key.slice(0, key.lastIndexOf('/')) }),
    });
    const r = o.registry;
    this.#m =
      r === undefined
        ? undefined
        : {
            healthy: metric(
              r,
              'vipmesh_lb_endpoint_healthy',
              (reg) =>
                new Gauge({
                  name: 'vipmesh_lb_endpoint_healthy',
                  help: '1 while a Service endpoint passes its health checks (ready, checked healthy), 0 otherwise',
                  labelNames: ['service', 'endpoint'],
                  registers: [reg],
                }),
            )!,
            updates: metric(
              r,
              'vipmesh_lb_rule_updates_total',
              (reg) =>
                new Counter({
                  name: 'vipmesh_lb_rule_updates_total',
                  help: 'nftables updates applied, by kind (diff: the changed Services only; full: the whole table)',
                  labelNames: ['mode'],
                  registers: [reg],
                }),
            )!,
            duration: metric(
              r,
              'vipmesh_lb_rule_update_duration_seconds',
              (reg) =>
                new Histogram({
                  name: 'vipmesh_lb_rule_update_duration_seconds',
                  help: 'Time nft took to apply one update',
                  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
                  registers: [reg],
                }),
            )!,
            failures: metric(
              r,
              'vipmesh_lb_health_check_failures_total',
              (reg) =>
                new Counter({
                  name: 'vipmesh_lb_health_check_failures_total',
                  help: 'Failed endpoint health checks',
                  labelNames: ['service'],
                  registers: [reg],
                }),
            )!,
            errors: metric(
              r,
              'vipmesh_lb_rule_update_errors_total',
              (reg) =>
                new Counter({
                  name: 'vipmesh_lb_rule_update_errors_total',
                  help: 'nftables updates that failed or left a Service out',
                  registers: [reg],
                }),
            )!,
          };
  }

  /** Start the periodic compare of the kernel's table. */
  start(): void {
    this.#o.table.start();
  }

  setServices(services: LbService[]): void {
    if (this.#closed) return;
    const good: Service[] = [];
    for (const s of services) {
      try {
        validateService(s);
        good.push(s);
      } catch (err) {
        this.#log.error({ err }, 'a pushed Service is left out of the load balancer');
        this.#m?.errors.inc();
      }
    }
    this.#services = good;
    this.#onVip = new Map();
    for (const s of good) {
      for (const v of new Set(s.vips.map((v) => canonicalIp(v) ?? v))) {
        const list = this.#onVip.get(v);
        if (list === undefined) this.#onVip.set(v, [s]);
        else list.push(s);
      }
    }
    this.#setTargets();
    this.#sync();
  }

  setHeld(vips: Iterable<string>): void {
    if (this.#closed) return;
    const held = new Set([...vips].map((v) => canonicalIp(v) ?? v));
    if (held.size === this.#held.size && [...held].every((v) => this.#held.has(v))) return;
    this.#held = held;
    this.#setTargets();
    const applied = this.#applied;
    if (applied === undefined) return;
    // A Service no longer held has no checks: endpoints they found unhealthy go back into its rules.
    const unhealthy = this.#unhealthy(applied.services);
    if (unhealthy.size !== applied.unhealthy.size || [...unhealthy].some((k) => !applied.unhealthy.has(k)))
      this.#sync();
    else this.#updateReport(applied.services, applied.unhealthy);
  }

  /** The endpoints of `services` their checks found unhealthy. */
  #unhealthy(services: readonly Service[]): Set<string> {
    const unhealthy = new Set<string>();
    for (const s of services) {
      for (const e of s.endpoints) {
        const key = endpointKey(s, e.ip);
        if (this.#checker.state(key)?.healthy === false) unhealthy.add(key);
      }
    }
    return unhealthy;
  }

  /** Whether this node holds (or is assigned) a VIP of `s`. */
  #isHeld(s: Service): boolean {
    return s.vips.some((v) => this.#held.has(canonicalIp(v) ?? v));
  }

  /** Check the endpoints of the Services on held VIPs. */
  #setTargets(): void {
    const targets = new Map<string, ProbeTarget>();
    for (const s of this.#services) {
      if (s.healthCheck.type === 'none' || !this.#isHeld(s)) continue;
      for (const e of s.endpoints) {
        const port = this.#checkedPort(s, e);
        if (e.ready && port !== undefined)
          targets.set(endpointKey(s, e.ip), { ip: e.ip, port, check: s.healthCheck });
      }
    }
    this.#checker.set(targets);
  }

  setLeases(leases: readonly Lease[]): void {
    const mine = leases.find((l) => l.node === this.#o.nodeName);
    const cidrs = mine?.podCIDRs ?? [];
    if (cidrs.join() === this.#podCidrs.join()) return;
    this.#podCidrs = [...cidrs];
    this.#sync();
  }

  allows(vip: string): boolean {
    const on = this.#onVip.get(canonicalIp(vip) ?? vip);
    if (on === undefined) return true;
    return on.some((s) => this.#serving.get(serviceKey(s)) === true);
  }

  /** The last report computed (tests, status). */
  get report(): HealthReport {
    return this.#current;
  }

  resend(): void {
    this.#sent.clear();
    this.#send();
  }

  /** An endpoint runs on this node: its nodeName, one of this node's addresses, or in its pod subnet. */
  #isLocal = (e: Endpoint): boolean => {
    if (e.nodeName !== undefined && e.nodeName === this.#o.nodeName) return true;
    const ip = parseIp(e.ip);
    if (ip === undefined) return false;
    if (this.#nodeIps.has(canonicalIp(e.ip)!)) return true;
    return this.#podCidrs.some((c) => {
      const { ip: net, len } = splitCidr(c);
      return net !== undefined && len !== undefined && contains({ ...net, len, value: net.value }, ip);
    });
  };

  /** The port checked on `e`: the first TCP port's target (a UDP port cannot be connect-checked). */
  #checkedPort(s: Service, e: Endpoint): number | undefined {
    const p = s.ports.find((p) => p.protocol === 'TCP');
    return p === undefined ? undefined : targetPortOf(p, e);
  }

  /** Render and apply; runs again at once if something changed meanwhile (changes are coalesced). */
  #sync(): void {
    this.#dirty = true;
    if (this.#syncing !== undefined || this.#closed) return;
    this.#syncing = (async () => {
      while (this.#dirty && !this.#closed) {
        this.#dirty = false;
        await this.#syncOnce().catch((err: unknown) => {
          this.#m?.errors.inc();
          this.#log.error({ err }, 'cannot program the load balancer table');
        });
      }
      this.#syncing = undefined;
    })();
  }

  /** Resolves when no update is running or queued (tests). */
  async idle(): Promise<void> {
    while (this.#syncing !== undefined) await this.#syncing;
  }

  async #syncOnce(): Promise<void> {
    // The Services this pass programs: a list set while nft runs is the next pass's, and is reported
    // serving (which lets its VIPs be announced) only once its own rules are in.
    const services = this.#services;
    const unhealthy = this.#unhealthy(services);
    const { ruleset, errors } = render({ services, unhealthy, isLocal: this.#isLocal });
    for (const err of errors) this.#log.error({ err }, 'a Service is left out of the load balancer');
    const r = await this.#o.table.apply(ruleset);
    if (r.mode !== 'none') {
      this.#m?.updates.inc({ mode: r.mode });
      this.#m?.duration.observe(r.nftMs / 1000);
    }
    for (const err of r.errors) {
      this.#m?.errors.inc();
      this.#log.error({ err, service: err.details['service'] }, 'nft refused a Service; it is not served');
    }
    await this.#forgetStaleUdp(services, unhealthy);
    this.#applied = { services, unhealthy };
    this.#updateReport(services, unhealthy);
  }

  async #forgetStaleUdp(services: readonly Service[], unhealthy: ReadonlySet<string>): Promise<void> {
    const now = new Map<string, StaleFlow>();
    for (const s of services) {
      for (const p of s.ports) {
        if (p.protocol !== 'UDP') continue;
        for (const vip of s.vips) {
          const family = parseIp(vip)!.family;
          for (const b of backendsOf(s, p, family, unhealthy, this.#isLocal)) {
            now.set(`${vip}|${p.port}|${b.ip}`, { vip, port: p.port, endpoint: b.ip });
          }
        }
      }
    }
    const stale = [...this.#udpFlows].filter(([k]) => !now.has(k)).map(([, f]) => f);
    this.#udpFlows = now;
    if (stale.length > 0 && this.#o.conntrack !== undefined) await this.#o.conntrack.forget(stale);
  }

  /**
   * Whether each Service is serving (for {@link allows}, every Service), and the report of the Services on
   * held VIPs (what the server takes from this node).
   */
  #updateReport(services: readonly Service[], unhealthy: ReadonlySet<string>): void {
    const report: HealthReport = { services: [] };
    const serving = new Map<string, boolean>();
    const exported = new Set<string>();
    for (const s of services) {
      const key = serviceKey(s);
      const healthy = (e: Endpoint) => e.ready && !unhealthy.has(endpointKey(s, e.ip));
      const isServing =
        s.endpoints.length === 0 ||
        s.endpoints.some((e) => healthy(e) && (s.externalTrafficPolicy === 'Cluster' || this.#isLocal(e)));
      serving.set(key, isServing);
      if (!this.#isHeld(s)) continue;
      const endpoints = s.endpoints.map((e) => {
        const ok = healthy(e);
        const port =
          this.#checkedPort(s, e) ?? (s.ports[0] === undefined ? 0 : (targetPortOf(s.ports[0], e) ?? 0));
        const reason = !e.ready
          ? 'not ready'
          : ok
            ? undefined
            : (this.#checker.state(endpointKey(s, e.ip))?.reason ?? 'unhealthy');
        this.#m?.healthy.set({ service: key, endpoint: e.ip }, ok ? 1 : 0);
        exported.add(JSON.stringify([key, e.ip]));
        return { ip: e.ip, port, healthy: ok, ...(reason === undefined ? {} : { reason }) };
      });
      report.services.push({ namespace: s.namespace, name: s.name, endpoints, serving: isServing });
    }
    for (const old of this.#exported) {
      if (exported.has(old)) continue;
      const [service, endpoint] = JSON.parse(old) as [string, string];
      this.#m?.healthy.remove({ service, endpoint });
    }
    this.#exported = exported;
    const changed =
      serving.size !== this.#serving.size || [...serving].some(([k, v]) => this.#serving.get(k) !== v);
    this.#serving = serving;
    this.#current = report;
    if (changed) this.#o.servingChanged();
    this.#send();
  }

  /**
   * Send what the server does not have yet: the entries of the Services whose health changed since they
   * were last sent, in requests of at most {@link MAX_REPORT_BYTES} of JSON (the server takes each Service
   * on its own, so thousands of Services never make one frame larger than the tunnel accepts). An entry
   * whose request fails is sent again after REPORT_RETRY_MS, or at once on the next change or session.
   */
  #send(): void {
    if (this.#closed) return;
    const live = new Set<string>();
    const batches: Array<Array<{ key: string; text: string; entry: HealthReport['services'][number] }>> = [];
    let batch: (typeof batches)[number] = [];
    let size = 0;
    for (const entry of this.#current.services) {
      const key = `${entry.namespace}/${entry.name}`;
      live.add(key);
      const text = JSON.stringify(entry);
      if (this.#sent.get(key) === text) continue;
      this.#sent.set(key, text);
      if (batch.length > 0 && size + text.length > MAX_REPORT_BYTES) {
        batches.push(batch);
        batch = [];
        size = 0;
      }
      batch.push({ key, text, entry });
      size += text.length + 1;
    }
    if (batch.length > 0) batches.push(batch);
    // A Service no longer pushed here is forgotten: if it comes back, its entry is sent in full.
    for (const key of this.#sent.keys()) if (!live.has(key)) this.#sent.delete(key);
    for (const b of batches) {
      this.#o.report({ services: b.map((e) => e.entry) }).then(
        () => {
          this.#reportFailing = false;
        },
        (err: unknown) => {
          for (const e of b) if (this.#sent.get(e.key) === e.text) this.#sent.delete(e.key);
          if (!this.#reportFailing)
            this.#log.warn(
              { err, services: b.length },
              `cannot send the health report to the server; trying again every ${REPORT_RETRY_MS} ms`,
            );
          this.#reportFailing = true;
          this.#retryLater();
        },
      );
    }
  }

  /** Send what is still unsent after {@link REPORT_RETRY_MS} (a session that stayed up but refused it). */
  #retryLater(): void {
    if (this.#retryTimer !== undefined || this.#closed) return;
    this.#retryTimer = this.#o.clock.setTimeout(() => {
      this.#retryTimer = undefined;
      this.#send();
    }, REPORT_RETRY_MS);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#retryTimer !== undefined) this.#o.clock.clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#checker.close();
    await this.idle();
    await this.#o.table.remove();
  }
}

/** Options of {@link createAgentLb}: the production wiring (the real `nft` and `conntrack`). */
export type CreateAgentLbOptions = Omit<AgentLbOptions, 'table' | 'conntrack'> & {
  /** How often the table is compared with what was applied [10 s]. */
  verifyIntervalMs?: number;
};

/** The production load balancer: src/lb's NftTable over `nft`, conntrack over `conntrack`. */
export function createAgentLb(o: CreateAgentLbOptions): AgentLb {
  const table = new NftTable({
    run: runCommand,
    session: new NftSession({ spawn: spawnProcess, clock: o.clock }),
    clock: o.clock,
    logger: o.logger,
    ...(o.verifyIntervalMs === undefined ? {} : { verifyIntervalMs: o.verifyIntervalMs }),
  });
  const lb = new AgentLb({
    ...o,
    table,
    conntrack: new ConntrackCleaner({ run: runCommand, logger: o.logger }),
  });
  lb.start();
  return lb;
}
