import type { Logger } from 'pino';
import type { Histogram } from 'prom-client';

/** What the committer needs from the SQL layer: one write transaction around a callback. */
export interface Transactional {
  transaction<T>(fn: () => T): T;
  /** Run `fn` as a nested step (a SAVEPOINT): its writes are undone if it throws. */
  step<T>(fn: () => T): T;
}

interface Pending {
  apply: () => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/** Hooks around one committed batch. */
export interface BatchHooks {
  /** Called before the batch runs (inside no transaction). */
  begin(): void;
  /** Called after COMMIT returned (the batch is durable): publish its effects. */
  committed(): void;
  /** Called when the whole batch failed (COMMIT or BEGIN threw): reload in-memory state. */
  failed(err: unknown): void;
}

/**
 * Group commit: writes that arrive while the event loop is busy are applied in one SQLite transaction with
 * one fsync. Each write runs as its own savepoint, so one failing request (an etcd error) does not abort the
 * others. Requests are answered only after COMMIT returns, i.e. after the data is on disk.
 */
export class Committer {
  readonly #db: Transactional;
  readonly #hooks: BatchHooks;
  readonly #log: Logger;
  readonly #batchSize: Histogram | undefined;
  #queue: Pending[] = [];
  #scheduled = false;
  #closed = false;

  constructor(db: Transactional, hooks: BatchHooks, log: Logger, batchSize?: Histogram) {
    this.#db = db;
    this.#hooks = hooks;
    this.#log = log;
    this.#batchSize = batchSize;
  }

  /** Queue `apply` to run inside the next batch; resolves with its result once the batch is durable. */
  submit<T>(apply: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(new Error('datastore is closed'));
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ apply, resolve: resolve as (v: unknown) => void, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Run every queued write now, in one transaction. */
  flush(): void {
    this.#scheduled = false;
    const batch = this.#queue;
    this.#queue = [];
    if (batch.length === 0) return;
    this.#batchSize?.observe(batch.length);
    const results: Array<{ ok: boolean; value: unknown }> = [];
    this.#hooks.begin();
    try {
      this.#db.transaction(() => {
        for (const p of batch) {
          try {
            results.push({ ok: true, value: this.#db.step(p.apply) });
          } catch (err) {
            results.push({ ok: false, value: err });
          }
        }
      });
    } catch (err) {
      this.#log.error({ err, op: 'commit', writes: batch.length }, 'commit failed; writes rejected');
      this.#hooks.failed(err);
      for (const p of batch) p.reject(err);
      return;
    }
    this.#hooks.committed();
    batch.forEach((p, i) => {
      const r = results[i]!;
      if (r.ok) p.resolve(r.value);
      else p.reject(r.value);
    });
  }

  /** Commit what is queued, then refuse new writes. */
  close(): void {
    this.flush();
    this.#closed = true;
  }
}
