import { randomBytes } from 'node:crypto';
import type { ResourceStore } from '../api/store.js';
import type { Event, KubeObject } from '../api/types.js';
import { type Clock, systemClock } from '../clock.js';
import { isVipmeshError } from '../errors.js';
import type { Logger } from '../log.js';
import { Periodic } from './informer.js';

/** What {@link recordEvent} writes. */
interface EventInput {
  involved: KubeObject;
  reason: string;
  message: string;
  type: 'Normal' | 'Warning';
  component: string;
  host?: string;
  now: number;
}

/** An event a planner asks for: the controller adds the component, the host and the time. */
export type PlannedEvent = Pick<EventInput, 'involved' | 'reason' | 'message' | 'type'>;

/**
 * Write a core/v1 Event about `involved` (shown by `vipmesh describe`). Failing to record an event is
 * logged, never thrown: events are history, not state.
 */
export async function recordEvent(store: ResourceStore, e: EventInput, log: Logger): Promise<void> {
  const ts = new Date(e.now).toISOString().replace(/\.\d+Z$/, 'Z');
  const ns = e.involved.metadata.namespace ?? 'default';
  const event: Event = {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: {
      name: `${e.involved.metadata.name}.${randomBytes(6).toString('hex')}`,
      namespace: ns,
    },
    involvedObject: {
      kind: e.involved.kind,
      name: e.involved.metadata.name,
      ...(e.involved.metadata.namespace === undefined ? {} : { namespace: e.involved.metadata.namespace }),
      ...(e.involved.metadata.uid === undefined ? {} : { uid: e.involved.metadata.uid }),
    },
    reason: e.reason,
    message: e.message,
    type: e.type,
    count: 1,
    firstTimestamp: ts,
    lastTimestamp: ts,
    source: { component: e.component, ...(e.host === undefined ? {} : { host: e.host }) },
  };
  try {
    await store.create('events', event);
  } catch (err) {
    log.warn({ err, reason: e.reason }, 'could not record an event');
  }
}

/** Options of {@link EventReaper}. Defaults in brackets. */
interface EventReaperOptions {
  store: ResourceStore;
  logger: Logger;
  clock?: Clock;
  /** Events older than this are deleted [1 h, as Kubernetes' --event-ttl]. */
  ttlMs?: number;
  /** How often to look [5 min]. */
  intervalMs?: number;
}

/**
 * Deletes Events older than the TTL (by `lastTimestamp`), so the datastore of a long-running cluster does
 * not grow with its history. Runs on the master.
 */
export class EventReaper {
  readonly #o: EventReaperOptions;
  readonly #clock: Clock;
  readonly #loop: Periodic;

  constructor(o: EventReaperOptions) {
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
    this.#loop = new Periodic(() => this.reap(), {
      intervalMs: o.intervalMs ?? 300_000,
      onError: (err) => this.#o.logger.warn({ err }, 'deleting expired events failed'),
      clock: this.#clock,
    });
  }

  start(): void {
    this.#loop.start();
  }

  /** One pass; resolves to the number of events deleted. */
  async reap(): Promise<number> {
    const cutoff = this.#clock.now() - (this.#o.ttlMs ?? 3_600_000);
    let n = 0;
    for (const e of (await this.#o.store.list('events')).items) {
      const at = Date.parse(e.lastTimestamp ?? e.metadata.creationTimestamp ?? '');
      if (!Number.isFinite(at) || at >= cutoff) continue;
      try {
        await this.#o.store.delete('events', e.metadata.name, e.metadata.namespace, {
          resourceVersion: e.metadata.resourceVersion!,
        });
        n++;
      } catch (err) {
        if (!isVipmeshError(err, 'VIPMESH_API_NOT_FOUND') && !isVipmeshError(err, 'VIPMESH_API_CONFLICT'))
          throw err;
      }
    }
    if (n > 0) this.#o.logger.info({ deleted: n }, 'deleted expired events');
    return n;
  }

  close(): Promise<void> {
    return this.#loop.close();
  }
}
