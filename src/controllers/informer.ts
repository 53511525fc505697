import { EventEmitter } from 'node:events';
import type { ResourceStore, StoreWatch } from '../api/store.js';
import type { ObjectList, ResourceName, ResourceTypes } from '../api/types.js';
import { type Clock, systemClock, type TimerHandle } from '../clock.js';
import type { Logger } from '../log.js';

/** Events of an {@link Informer}. */
interface InformerEvents<T> {
  /** One object was added, changed or deleted (`object` as it is now, or as it was for a delete). */
  change: [{ type: 'ADDED' | 'MODIFIED' | 'DELETED'; object: T; key: string }];
}

/** `namespace/name`, or `name` for cluster-scoped objects. */
function objectKey(o: { metadata: { name: string; namespace?: string | undefined } }): string {
  return o.metadata.namespace === undefined ? o.metadata.name : `${o.metadata.namespace}/${o.metadata.name}`;
}

/**
 * Objects per list request: a resource of 10,000 Services (or endpoint slices) is not read in one datastore
 * answer, which etcd caps (its default request limit is 1.5 MiB).
 */
const LIST_PAGE = 500;

/**
 * A local copy of one resource, kept current by a watch (list, then watch from the list's revision; on a
 * watch error, list again after `retryMs`). Controllers read `items` and react to `change`.
 */
export class Informer<R extends ResourceName> extends EventEmitter<InformerEvents<ResourceTypes[R]>> {
  readonly items = new Map<string, ResourceTypes[R]>();
  readonly #store: ResourceStore;
  readonly #resource: R;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #retryMs: number;
  #watch: StoreWatch<ResourceTypes[R]> | undefined;
  #timer: TimerHandle | undefined;
  #closed = false;
  #synced = false;

  constructor(store: ResourceStore, resource: R, opts: { logger: Logger; clock?: Clock; retryMs?: number }) {
    super();
    this.#store = store;
    this.#resource = resource;
    this.#log = opts.logger;
    this.#clock = opts.clock ?? systemClock;
    this.#retryMs = opts.retryMs ?? 500;
  }

  /** True once the first list has been loaded. */
  get synced(): boolean {
    return this.#synced;
  }

  /** List and start watching. Rejects when the first list fails (the caller decides whether to retry). */
  async start(): Promise<void> {
    await this.#sync();
  }

  /** Every object, read in pages of {@link LIST_PAGE} at the first page's revision. */
  async #listAll(): Promise<ObjectList<ResourceTypes[R]>> {
    const first = await this.#store.list(this.#resource, { limit: LIST_PAGE });
    const items = first.items;
    let next = first.metadata.continue;
    while (next !== undefined && next !== '' && !this.#closed) {
      const page = await this.#store.list(this.#resource, { limit: LIST_PAGE, continue: next });
      items.push(...page.items);
      next = page.metadata.continue;
    }
    return { ...first, items };
  }

  async #sync(): Promise<void> {
    const list = await this.#listAll();
    if (this.#closed) return;
    const seen = new Set<string>();
    for (const o of list.items) {
      const key = objectKey(o);
      seen.add(key);
      const old = this.items.get(key);
      this.items.set(key, o);
      if (old?.metadata.resourceVersion !== o.metadata.resourceVersion) {
        this.emit('change', { type: old === undefined ? 'ADDED' : 'MODIFIED', object: o, key });
      }
    }
    for (const [key, o] of [...this.items]) {
      if (seen.has(key)) continue;
      this.items.delete(key);
      this.emit('change', { type: 'DELETED', object: o, key });
    }
    this.#synced = true;
    const w = await this.#store.watch(this.#resource, { resourceVersion: list.metadata.resourceVersion });
    if (this.#closed) {
      await w.close();
      return;
    }
    this.#watch = w;
    w.on('event', (e) => {
      if (e.type === 'ERROR') return;
      const key = objectKey(e.object);
      if (e.type === 'DELETED') this.items.delete(key);
      else this.items.set(key, e.object);
      this.emit('change', { type: e.type, object: e.object, key });
    });
    w.on('error', (err) => {
      this.#log.warn(
        { resource: this.#resource, code: err.code },
        `watch ended: ${err.message}; listing again`,
      );
      this.#retry();
    });
  }

  #retry(): void {
    if (this.#closed) return;
    void this.#watch?.close();
    this.#watch = undefined;
    this.#timer = this.#clock.setTimeout(() => {
      this.#sync().catch((err: unknown) => {
        this.#log.warn({ resource: this.#resource, err }, 'list failed; retrying');
        this.#retry();
      });
    }, this.#retryMs);
  }

  /** Stop watching. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    await this.#watch?.close();
  }
}

/**
 * Runs `fn` whenever kicked, one run at a time: kicks during a run coalesce into one more run. A failing
 * run is retried after `retryMs` (the error is logged, never thrown: a controller must not crash). It also
 * holds the controller's subscriptions ({@link Reconciler.follow}, {@link Reconciler.onClose}), so `idle`
 * and `close` are all a controller needs to expose.
 */
export class Reconciler {
  readonly #fn: () => Promise<void>;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #retryMs: number;
  readonly #cleanups: Array<() => void> = [];
  #running: Promise<void> | undefined;
  #again = false;
  #closed = false;
  #retryTimer: TimerHandle | undefined;

  constructor(fn: () => Promise<void>, opts: { logger: Logger; clock?: Clock; retryMs?: number }) {
    this.#fn = fn;
    this.#log = opts.logger;
    this.#clock = opts.clock ?? systemClock;
    this.#retryMs = opts.retryMs ?? 1000;
  }

  /**
   * Run a pass on every change of `informer` until close; `first`, when given, sees each change before
   * the kick (to note what changed).
   */
  follow<R extends ResourceName>(
    informer: Informer<R>,
    first?: (e: InformerEvents<ResourceTypes[R]>['change'][0]) => void,
  ): void {
    const fn = (e: InformerEvents<ResourceTypes[R]>['change'][0]) => {
      first?.(e);
      this.kick();
    };
    informer.on('change', fn);
    this.#cleanups.push(() => informer.off('change', fn));
  }

  /** Call `fn` on close, before waiting for the run in progress (to end a subscription made elsewhere). */
  onClose(fn: () => void): void {
    this.#cleanups.push(fn);
  }

  /** Ask for a run (soon, on the next turn of the event loop). */
  kick(): void {
    if (this.#closed) return;
    if (this.#running !== undefined) {
      this.#again = true;
      return;
    }
    this.#running = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.#loop());
  }

  /** Resolves when no run is in progress or queued. */
  async idle(): Promise<void> {
    while (this.#running !== undefined) await this.#running;
  }

  async #loop(): Promise<void> {
    do {
      this.#again = false;
      if (this.#closed) break;
      try {
        await this.#fn();
      } catch (err) {
        this.#log.error({ err }, 'reconcile failed; retrying');
        if (this.#retryTimer === undefined && !this.#closed) {
          this.#retryTimer = this.#clock.setTimeout(() => {
            this.#retryTimer = undefined;
            this.kick();
          }, this.#retryMs);
        }
      }
    } while (this.#again);
    this.#running = undefined;
  }

  /** Stop: end the subscriptions, wait for a run in progress. */
  async close(): Promise<void> {
    for (const fn of this.#cleanups.splice(0)) fn();
    this.#closed = true;
    if (this.#retryTimer !== undefined) this.#clock.clearTimeout(this.#retryTimer);
    await this.idle();
  }
}

/**
 * Runs `fn` every `intervalMs` (the next run is timed from the end of the previous one) until close;
 * close waits for a run in progress. A failing run goes to `onError`, never thrown.
 */
export class Periodic {
  readonly #fn: () => Promise<unknown>;
  readonly #onError: (err: unknown) => void;
  readonly #clock: Clock;
  readonly #intervalMs: number;
  #timer: TimerHandle | undefined;
  #running: Promise<void> | undefined;
  #closed = false;

  constructor(
    fn: () => Promise<unknown>,
    opts: { intervalMs: number; onError: (err: unknown) => void; clock?: Clock },
  ) {
    this.#fn = fn;
    this.#onError = opts.onError;
    this.#clock = opts.clock ?? systemClock;
    this.#intervalMs = opts.intervalMs;
  }

  /** Schedule the first run, `intervalMs` from now. */
  start(): void {
    if (this.#closed) return;
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.#running = this.#fn().then(
        () => undefined,
        (err: unknown) => this.#onError(err),
      );
      void this.#running.finally(() => {
        this.#running = undefined;
        this.start();
      });
    }, this.#intervalMs);
  }

  /** Resolves when no run is in progress (the next one, if any, is then scheduled). */
  async idle(): Promise<void> {
    await this.#running;
  }

  /** Stop; waits for a run in progress. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    await this.idle();
  }
}
