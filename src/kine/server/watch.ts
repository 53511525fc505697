import type { ServerDuplexStream, UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../../clock.js';
import type { EtcdBackend } from '../etcd-backend.js';
import { keyRange } from '../keys.js';
import type { Event, Int64, ResponseHeader } from '../types.js';
import { type HubWatcher, matching } from '../watch-hub.js';

/** Watch stream options. */
export interface WatchOptions {
  /**
   * Responses allowed to wait in one stream's send buffer before its watchers are cancelled as too slow.
   * Default 1024 (etcd buffers 128 responses per stream, then parks watchers as unsynced).
   */
  maxPending?: number;
  /** Interval of progress notifications for watchers that asked for them, ms. Default 10 min (etcd's). */
  progressIntervalMs?: number;
  /** Revisions replayed per response while a watcher catches up from history. Default 1000 (etcd's watchBatchMaxRevs). */
  replayRevs?: number;
}

interface WatchCreate {
  key: Buffer;
  range_end: Buffer;
  start_revision: Int64;
  progress_notify: boolean;
  filters: number[];
  prev_kv: boolean;
  watch_id: Int64;
}

interface WatchRequest {
  request_union?: 'create_request' | 'cancel_request' | 'progress_request';
  create_request?: WatchCreate | null;
  cancel_request?: { watch_id: Int64 } | null;
  progress_request?: object | null;
}

interface WatchResponse {
  header: ResponseHeader;
  watch_id: Int64;
  created?: boolean;
  canceled?: boolean;
  compact_revision?: Int64;
  cancel_reason?: string;
  events?: Event[];
}

interface StreamWatcher extends HubWatcher {
  id: number;
  progress: boolean;
  canceled: boolean;
}

/** The Watch service: one {@link WatchStream} per bidirectional call. */
export function watchService(
  b: EtcdBackend,
  log: Logger,
  opts: WatchOptions = {},
): UntypedServiceImplementation {
  return {
    Watch: (call: ServerDuplexStream<WatchRequest, WatchResponse>) => {
      new WatchStream(b, call, log, b.clock, opts);
    },
  };
}

/**
 * One watch stream: several watchers, created and cancelled by the client. New watchers with a start
 * revision in the past replay history from the database (in bounded chunks, waiting for the client when
 * its buffer fills) and then join the hub, which fans live events out from the write path. A stream whose
 * send buffer holds more than `maxPending` responses has its watchers cancelled with a reason.
 */
export class WatchStream {
  readonly #b: EtcdBackend;
  readonly #call: ServerDuplexStream<WatchRequest, WatchResponse>;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #maxPending: number;
  readonly #progressIntervalMs: number;
  readonly #replayRevs: number;
  readonly #watchers = new Map<number, StreamWatcher>();
  #nextId = 0;
  #timer: TimerHandle | undefined;
  #closed = false;

  constructor(
    b: EtcdBackend,
    call: ServerDuplexStream<WatchRequest, WatchResponse>,
    log: Logger,
    clock: Clock,
    opts: WatchOptions,
  ) {
    this.#b = b;
    this.#call = call;
    this.#log = log;
    this.#clock = clock;
    this.#maxPending = opts.maxPending ?? 1024;
    this.#progressIntervalMs = opts.progressIntervalMs ?? 10 * 60_000;
    this.#replayRevs = opts.replayRevs ?? 1000;
    call.on('data', (req: WatchRequest) => this.#onRequest(req));
    call.on('end', () => this.#close(true));
    call.on('error', () => this.#close(false));
    call.on('cancelled', () => this.#close(false));
  }

  #onRequest(req: WatchRequest): void {
    if (this.#closed) return;
    if (req.create_request) this.#create(req.create_request);
    else if (req.cancel_request) this.#cancel(Number(req.cancel_request.watch_id), undefined);
    else if (req.progress_request) this.#send({ header: this.#b.header(), watch_id: -1 });
  }

  #create(c: WatchCreate): void {
    const b = this.#b;
    let id = Number(c.watch_id);
    if (id !== 0 && this.#watchers.has(id)) {
      this.#send({
        header: b.header(),
        watch_id: -1,
        created: true,
        canceled: true,
        cancel_reason: 'mvcc: duplicate watch ID provided on the WatchStream',
      });
      return;
    }
    if (id === 0) {
      while (this.#watchers.has(this.#nextId)) this.#nextId++;
      id = this.#nextId++;
    }
    const start = Number(c.start_revision);
    const w: StreamWatcher = {
      id,
      range: keyRange(c.key, c.range_end),
      filters: c.filters ?? [],
      prevKv: c.prev_kv,
      progress: c.progress_notify,
      nextRev: start > 0 ? start : b.revision + 1,
      synced: false,
      canceled: false,
      deliver: (events, rev) => this.#send({ header: b.header(rev), watch_id: id, events }),
    };
    this.#watchers.set(id, w);
    this.#send({ header: b.header(), watch_id: id, created: true });
    if (w.progress) this.#armProgress();
    b.watch(w);
    this.#catchUp(w).catch((err: unknown) => {
      this.#log.warn({ err, watch: id }, 'watch replay failed');
      this.#cancel(id, `etcdserver: watch replay failed: ${(err as Error).message}`);
    });
  }

  /** Replay [nextRev, current] from the database, then mark the watcher synced (same tick). */
  async #catchUp(w: StreamWatcher): Promise<void> {
    const b = this.#b;
    for (;;) {
      if (w.canceled || this.#closed) return;
      if (w.nextRev < b.compactRevision) {
        // etcd's response to a compacted start revision carries revision 0 in its header.
        this.#send({
          header: b.header(0),
          watch_id: w.id,
          canceled: true,
          compact_revision: b.compactRevision,
        });
        this.#drop(w);
        return;
      }
      if (w.nextRev > b.revision) {
        w.synced = true;
        return;
      }
      const hi = Math.min(w.nextRev + this.#replayRevs, b.revision + 1);
      const events = b.history(w.range, w.nextRev, hi, w.prevKv);
      const out = matching(w, events);
      w.nextRev = hi;
      if (out.length > 0) this.#send({ header: b.header(), watch_id: w.id, events: out });
      if (this.#call.writableLength > this.#maxPending / 2) {
        await new Promise<void>((resolve) => {
          const done = () => {
            this.#call.off('drain', done);
            this.#call.off('close', done);
            resolve();
          };
          this.#call.on('drain', done);
          this.#call.on('close', done);
        });
      } else {
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
  }

  #send(res: WatchResponse): void {
    if (this.#closed) return;
    this.#call.write(res);
    if (this.#call.writableLength > this.#maxPending) this.#tooSlow();
  }

  #tooSlow(): void {
    const reason = `etcdserver: watcher too slow: more than ${this.#maxPending} responses unread; re-create the watch from its last revision`;
    for (const w of [...this.#watchers.values()]) {
      if (!w.synced) continue;
      this.#log.warn({ watch: w.id, nextRev: w.nextRev }, 'cancelling a slow watcher');
      this.#drop(w);
      this.#call.write({ header: this.#b.header(), watch_id: w.id, canceled: true, cancel_reason: reason });
    }
  }

  #cancel(id: number, reason: string | undefined): void {
    const w = this.#watchers.get(id);
    if (w === undefined) return;
    this.#drop(w);
    this.#send({
      header: this.#b.header(),
      watch_id: id,
      canceled: true,
      ...(reason !== undefined ? { cancel_reason: reason } : {}),
    });
  }

  #drop(w: StreamWatcher): void {
    w.canceled = true;
    this.#b.unwatch(w);
    this.#watchers.delete(w.id);
  }

  #armProgress(): void {
    if (this.#timer !== undefined) return;
    const tick = () => {
      this.#timer = undefined;
      let any = false;
      for (const w of this.#watchers.values()) {
        if (!w.progress) continue;
        any = true;
        if (w.synced) this.#send({ header: this.#b.header(), watch_id: w.id });
      }
      if (any && !this.#closed) this.#armProgress();
    };
    this.#timer = this.#clock.setTimeout(tick, this.#progressIntervalMs);
  }

  #close(graceful: boolean): void {
    if (this.#closed) return;
    for (const w of [...this.#watchers.values()]) this.#drop(w);
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#closed = true;
    if (graceful) this.#call.end();
  }
}
