import type { Logger } from 'pino';
import type { Histogram } from 'prom-client';

/** What the committer needs from the SQL layer. */
export interface Transactional {
  /** Run `fn` in one write transaction; COMMIT does not wait for the disk (synchronous=NORMAL). */
  transaction<T>(fn: () => T): T;
  /** Run `fn` as a nested step (a SAVEPOINT): its writes are undone if it throws. */
  step<T>(fn: () => T): T;
  /** Make every committed transaction durable (fdatasync of the WAL, off the event loop). */
  sync(cb: (err: Error | null) => void): void;
}

interface Pending {
  apply: () => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

interface Committed {
  batch: Pending[];
  results: Array<{ ok: boolean; value: unknown }>;
  applied: unknown;
}

/** Hooks around one batch. */
interface BatchHooks {
  /** Called before the batch runs (inside no transaction). */
  begin(): void;
  /** Called after COMMIT returned: snapshot what the batch changed (events, revision). */
  applied(): unknown;
  /** Called, in commit order, once a batch is on disk: publish what `applied` returned. */
  durable(applied: unknown): void;
  /** Called when a whole batch failed (BEGIN or COMMIT threw): reload in-memory state. */
  failed(err: unknown): void;
}

/**
 * Group commit. Writes that arrive while the event loop is busy run in one SQLite transaction, each as its own
 * savepoint (one failing request does not abort the others). COMMIT only appends to the WAL; one fdatasync of
 * the WAL, on the libuv thread pool, then covers every transaction committed since the last one, and only then
 * are the writes acknowledged and their events published, in order. So an acknowledged write is on disk, the
 * event loop never waits for the disk, and a slow disk makes batches larger instead of stalling the server.
 */
export class Committer {
  readonly #db: Transactional;
  readonly #hooks: BatchHooks;
  readonly #log: Logger;
  readonly #batchSize: Histogram | undefined;
  #queue: Pending[] = [];
  #waiting: Committed[] = [];
  #scheduled = false;
  #syncing = false;
  #closed = false;
  /** Held by {@link Committer.exclusive}: writes queue up and no batch commits. */
  #held = false;
  #fatal: Error | undefined;
  #idle: Array<() => void> = [];

  constructor(db: Transactional, hooks: BatchHooks, log: Logger, batchSize?: Histogram) {
    this.#db = db;
    this.#hooks = hooks;
    this.#log = log;
    this.#batchSize = batchSize;
  }

  /** Queue `apply` to run inside the next batch; resolves with its result once the batch is durable. */
  submit<T>(apply: () => T): Promise<T> {
    if (this.#fatal !== undefined) return Promise.reject(this.#fatal);
    if (this.#closed) return Promise.reject(new Error('datastore is closed'));
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ apply, resolve: resolve as (v: unknown) => void, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /**
   * Run `fn` while no batch commits: writes submitted meanwhile wait and are committed together once it
   * settles. For work beside the connection that needs the writer still (a checkpoint that empties the WAL).
   */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    this.#held = true;
    try {
      return await fn();
    } finally {
      this.#held = false;
      if (this.#queue.length > 0 && !this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.flush());
      }
    }
  }

  /** Run every queued write now, in one transaction (acknowledged after the next sync). */
  flush(): void {
    this.#scheduled = false;
    if (this.#held && !this.#closed) return;
    const batch = this.#queue;
    this.#queue = [];
    if (batch.length === 0) return;
    this.#batchSize?.observe(batch.length);
    const results: Committed['results'] = [];
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
    this.#waiting.push({ batch, results, applied: this.#hooks.applied() });
    this.#sync();
  }

  #sync(): void {
    if (this.#syncing || this.#waiting.length === 0) return;
    this.#syncing = true;
    const covered = this.#waiting;
    this.#waiting = [];
    this.#db.sync((err) => {
      this.#syncing = false;
      if (err !== null) {
        // As etcd panics when its WAL cannot be synced: nothing written from now on could be trusted.
        this.#fatal = Object.assign(new Error(`datastore stopped: syncing the WAL failed: ${err.message}`), {
          cause: err,
        });
        this.#log.fatal({ err }, 'fdatasync of the WAL failed; refusing further writes');
        for (const c of [...covered, ...this.#waiting]) for (const p of c.batch) p.reject(this.#fatal);
        this.#waiting = [];
      } else {
        for (const c of covered) {
          this.#hooks.durable(c.applied);
          c.batch.forEach((p, i) => {
            const r = c.results[i]!;
            if (r.ok) p.resolve(r.value);
            else p.reject(r.value);
          });
        }
        this.#sync();
      }
      if (!this.#syncing && this.#waiting.length === 0) for (const f of this.#idle.splice(0)) f();
    });
  }

  /** Commit what is queued, wait until it is durable, then refuse new writes. */
  async close(): Promise<void> {
    this.#closed = true;
    this.flush();
    if (this.#syncing || this.#waiting.length > 0) await new Promise<void>((r) => this.#idle.push(r));
  }
}
