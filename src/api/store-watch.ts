import { EventEmitter } from 'node:events';
import { VipmeshError } from '../errors.js';
import type { KvWatch } from './kv.js';
import type { KubeObject, WatchEvent } from './types.js';

/** Events of a {@link StoreWatch}. */
interface StoreWatchEvents<T extends KubeObject> {
  event: [WatchEvent<T>];
  /** The watch ended: `VIPMESH_API_GONE` (revision compacted) or `VIPMESH_STORE_UNAVAILABLE`. */
  error: [VipmeshError];
}

/**
 * A running watch on one resource. Events are held until the first `event` listener is attached (so none
 * is lost between `await store.watch()` and `.on('event')`), then delivered in order. `close()` stops it.
 */
export class StoreWatch<T extends KubeObject = KubeObject> extends EventEmitter<StoreWatchEvents<T>> {
  /** @internal */ kvWatch: KvWatch | undefined;
  /** The store revision the watch starts after (events follow with higher ones). */
  revision = 0;
  #closed = false;
  #flowing = false;
  #pending: Array<WatchEvent<T> | VipmeshError> = [];

  constructor() {
    super();
    (this as unknown as EventEmitter).on('newListener', (name: string | symbol) => {
      if (name !== 'event' || this.#flowing) return;
      queueMicrotask(() => {
        this.#flowing = true;
        for (const item of this.#pending.splice(0)) this.#deliver(item);
      });
    });
  }

  /** @internal Queue or deliver one event or the final error. */
  push(item: WatchEvent<T> | VipmeshError): void {
    if (this.#closed) return;
    if (this.#flowing) this.#deliver(item);
    else this.#pending.push(item);
  }

  #deliver(item: WatchEvent<T> | VipmeshError): void {
    if (this.#closed) return;
    if (item instanceof VipmeshError) {
      // An unheard error would throw from emit(); a watch nobody checks just ends.
      if (this.listenerCount('error') > 0) this.emit('error', item);
      return;
    }
    this.emit('event', item);
  }

  /** Stop the watch; no event is emitted after this resolves. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#pending = [];
    await this.kvWatch?.close();
  }

  /** True after close(). */
  get closed(): boolean {
    return this.#closed;
  }
}
