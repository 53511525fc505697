import type { Registry } from 'prom-client';
import type { ResourceStore } from '../api/store.js';
import type { Service } from '../api/types.js';
import { type Clock, systemClock, type TimerHandle } from '../clock.js';
import type { Logger } from '../log.js';
import { Gauge } from '../metrics.js';
import { parseHealthReport, planHealth, type ServiceHealth } from './endpoint-health-plan.js';
import { recordEvent } from './events.js';
import type { Informer } from './informer.js';

/** Options of {@link EndpointHealthWriter}. Defaults in brackets. */
interface EndpointHealthOptions {
  store: ResourceStore;
  services: Informer<'services'>;
  /** Whether `node` serves `namespace/name` as the holder of a VIP of it (other reports are ignored). */
  holds: (node: string, key: string) => boolean;
  logger: Logger;
  clock?: Clock;
  registry?: Registry;
  /** This server's name (the events' source host). */
  host?: string;
  /** Least time between two status writes of one Service [1 s]: a flapping agent is coalesced. */
  minWriteIntervalMs?: number;
}

/** A report waiting to be written. */
interface Pending {
  node: string;
  report: ServiceHealth;
}

/**
 * Endpoint health from the agents into the Services' status. Every server takes the reports of the
 * agents connected to it and writes them itself: a Service's VIP is held by one node, and that node is
 * connected to one server, so for a Service there is one writer at a time; the write is conditional on
 * the resourceVersion it read (a conflict is retried from the informer's newer copy), so it never undoes
 * another writer's status fields. A Service is written only when its condition or endpoint list changes,
 * at most once per `minWriteIntervalMs`, the latest report winning.
 */
export class EndpointHealthWriter {
  readonly #o: EndpointHealthOptions;
  readonly #clock: Clock;
  readonly #minMs: number;
  /** Service key -> the report to write. */
  readonly #pending = new Map<string, Pending>();
  /** Service key -> when it was last written. */
  readonly #writtenAt = new Map<string, number>();
  /** Service key -> the timer that writes it. */
  readonly #timers = new Map<string, TimerHandle>();
  /** Service key -> the last report taken and its text (repeats are skipped cheaply). */
  readonly #last = new Map<string, Pending & { text: string }>();
  /** Service key -> its write in progress. */
  readonly #running = new Map<string, Promise<void>>();
  readonly #gauge: Gauge<'namespace' | 'service' | 'state'> | undefined;
  #closed = false;

  constructor(o: EndpointHealthOptions) {
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
    this.#minMs = o.minWriteIntervalMs ?? 1000;
    if (o.registry !== undefined) {
      this.#gauge =
        (o.registry.getSingleMetric('vipmesh_service_endpoints') as Gauge<
          'namespace' | 'service' | 'state'
        >) ??
        new Gauge({
          name: 'vipmesh_service_endpoints',
          help: 'Endpoints of a Service by health (healthy, unhealthy), as its VIP holder last reported',
          labelNames: ['namespace', 'service', 'state'],
          registers: [o.registry],
        });
    }
    o.services.on('change', this.#onService);
  }

  /**
   * The tunnel request handler: `node`'s report, checked (throws VIPMESH_HEALTH_REPORT_INVALID), taken
   * for the Services whose VIP it holds. Returns how many Services it spoke of that were taken.
   */
  report(node: string, params: unknown): { accepted: number } {
    const report = parseHealthReport(params);
    let accepted = 0;
    for (const s of report.services) {
      const key = `${s.namespace}/${s.name}`;
      if (!this.#o.holds(node, key)) continue;
      accepted++;
      const text = `${node}\n${JSON.stringify(s)}`;
      if (this.#last.get(key)?.text === text) continue;
      this.#last.set(key, { node, report: s, text });
      this.#gauge?.set(
        { namespace: s.namespace, service: s.name, state: 'healthy' },
        s.endpoints.filter((e) => e.healthy).length,
      );
      this.#gauge?.set(
        { namespace: s.namespace, service: s.name, state: 'unhealthy' },
        s.endpoints.filter((e) => !e.healthy).length,
      );
      this.#pending.set(key, { node, report: s });
      this.#schedule(key);
    }
    return { accepted };
  }

  /** Resolves when no write is running (a write waiting for its timer is not waited for). */
  async idle(): Promise<void> {
    for (;;) {
      const running = [...this.#running.values()];
      if (running.length === 0) return;
      await Promise.all(running);
    }
  }

  close(): void {
    this.#closed = true;
    this.#o.services.off('change', this.#onService);
    for (const t of this.#timers.values()) this.#clock.clearTimeout(t);
    this.#timers.clear();
  }

  readonly #onService = (e: { type: string; key: string; object: Service }): void => {
    if (e.type !== 'DELETED') {
      // Another writer replaced the status (the IPAM controller writes the whole of it): put the last
      // report back if the status no longer says what it said.
      const last = this.#last.get(e.key);
      const now = new Date(this.#clock.now()).toISOString();
      if (
        last !== undefined &&
        !this.#pending.has(e.key) &&
        planHealth(e.object, last.node, last.report, now)
      ) {
        this.#pending.set(e.key, { node: last.node, report: last.report });
        this.#schedule(e.key);
      }
      return;
    }
    this.#pending.delete(e.key);
    this.#last.delete(e.key);
    this.#writtenAt.delete(e.key);
    const [namespace, service] = e.key.split('/') as [string, string];
    for (const state of ['healthy', 'unhealthy']) this.#gauge?.remove({ namespace, service, state });
  };

  #schedule(key: string): void {
    if (this.#closed || this.#timers.has(key) || this.#running.has(key)) return;
    const last = this.#writtenAt.get(key);
    const wait = last === undefined ? 0 : Math.max(0, last + this.#minMs - this.#clock.now());
    const timer = this.#clock.setTimeout(() => {
      this.#timers.delete(key);
      const run = this.#write(key).finally(() => {
        this.#running.delete(key);
        if (this.#pending.has(key)) this.#schedule(key);
      });
      this.#running.set(key, run);
    }, wait);
    this.#timers.set(key, timer);
  }

  async #write(key: string): Promise<void> {
    const p = this.#pending.get(key);
    this.#pending.delete(key);
    const svc = this.#o.services.items.get(key);
    if (p === undefined || svc === undefined) return;
    const now = this.#clock.now();
    const step = planHealth(svc, p.node, p.report, new Date(now).toISOString().replace(/\.\d+Z$/, 'Z'));
    if (step === undefined) return;
    this.#writtenAt.set(key, now);
    try {
      await this.#o.store.updateStatus('services', { ...svc, status: step.status });
    } catch (err) {
      // A conflict (another writer, or the IPAM controller): try again from the informer's newer copy.
      this.#o.logger.debug({ err, service: key }, 'endpoint health not written; retrying');
      if (!this.#pending.has(key)) this.#pending.set(key, p);
      return;
    }
    for (const e of step.events) {
      await recordEvent(
        this.#o.store,
        {
          ...e,
          component: 'vipmesh-server',
          now,
          ...(this.#o.host === undefined ? {} : { host: this.#o.host }),
        },
        this.#o.logger,
      );
    }
  }
}
