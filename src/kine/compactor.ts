import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import type { Clock, TimerHandle } from '../clock.js';
import type { Committer } from './committer.js';
import type { SqliteDialect } from './dialect.js';
import { etcdErrors } from './errors.js';
import type { Mvcc } from './mvcc.js';

/** Automatic compaction, as etcd's --auto-compaction-mode / --auto-compaction-retention. */
export interface CompactionOptions {
  /**
   * `revision`: keep the last `retentionRevisions` revisions; `periodic`: keep `retentionMs` of history.
   * Default `revision`.
   */
  mode?: 'revision' | 'periodic';
  /** Revision mode: revisions to keep; 0 turns auto-compaction off. Default 1000. */
  retentionRevisions?: number;
  /** Periodic mode: milliseconds of history to keep; 0 turns auto-compaction off. Default 1000. */
  retentionMs?: number;
  /** How often to check, ms. Default 5 min in revision mode (as etcd), retentionMs/10 in periodic mode. */
  intervalMs?: number;
  /** Rows examined per delete batch, so writers keep flowing between batches. Default 1000. */
  batchRows?: number;
}

/**
 * Compaction: the compact revision is recorded at once (reads below it answer "compacted"), then the rows
 * no read can reach are deleted in small batches that are queued with ordinary writes, the freed pages are
 * returned (incremental vacuum) and, once writes pause, the WAL is checkpointed and truncated, so the
 * files shrink back to what the kept history needs.
 */
export class Compactor {
  readonly #db: SqliteDialect;
  readonly #mvcc: Mvcc;
  readonly #committer: Committer;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #mode: 'revision' | 'periodic';
  /** Revisions (revision mode) or milliseconds (periodic mode) to keep; 0: no auto-compaction. */
  readonly #retention: number;
  readonly #intervalMs: number;
  readonly #batchRows: number;
  readonly #deleted: Counter | undefined;
  readonly #samples: Array<{ at: number; rev: number }> = [];
  #chain: Promise<void> = Promise.resolve();
  #timer: TimerHandle | undefined;
  #closed = false;
  readonly #checkpoint: () => Promise<unknown>;

  constructor(
    db: SqliteDialect,
    mvcc: Mvcc,
    committer: Committer,
    clock: Clock,
    log: Logger,
    opts: CompactionOptions = {},
    deleted?: Counter,
    checkpoint?: () => Promise<unknown>,
  ) {
    this.#checkpoint =
      checkpoint ??
      (async () => {
        db.checkpoint();
      });
    this.#db = db;
    this.#mvcc = mvcc;
    this.#committer = committer;
    this.#clock = clock;
    this.#log = log;
    this.#mode = opts.mode ?? 'revision';
    this.#retention = (this.#mode === 'periodic' ? opts.retentionMs : opts.retentionRevisions) ?? 1000;
    this.#intervalMs =
      opts.intervalMs ?? (this.#mode === 'periodic' ? Math.max(1000, this.#retention / 10) : 5 * 60_000);
    this.#batchRows = opts.batchRows ?? 1000;
    this.#deleted = deleted;
  }

  /** Start automatic compaction (no-op when retention is 0), and finish a compaction a crash interrupted. */
  start(): void {
    const cursor = Number(this.#db.metaGet('compact_cursor') ?? 0);
    if (this.#mvcc.compactRev > 0 && cursor < this.#db.maxIdAt(this.#mvcc.compactRev)) {
      this.#enqueuePhysical(this.#mvcc.compactRev);
    }
    if (this.#retention <= 0) return;
    let lastRev = this.#mvcc.rev;
    const tick = () => {
      this.#timer = this.#clock.setTimeout(tick, this.#intervalMs);
      this.#auto();
      // Quiet since the last check: empty the WAL now, when holding writes back costs nobody anything.
      if (this.#mvcc.rev === lastRev && this.#db.walBytes() > 0) this.#enqueueTruncate();
      lastRev = this.#mvcc.rev;
    };
    this.#samples.push({ at: this.#clock.now(), rev: this.#mvcc.rev });
    this.#timer = this.#clock.setTimeout(tick, this.#intervalMs);
  }

  /** Stop the timer and wait for a running compaction to reach a batch boundary. */
  async stop(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    await this.#chain.catch(() => undefined);
  }

  #auto(): void {
    let target: number;
    if (this.#mode === 'revision') {
      target = this.#mvcc.rev - this.#retention;
    } else {
      const now = this.#clock.now();
      this.#samples.push({ at: now, rev: this.#mvcc.rev });
      let pick: number | undefined;
      while (this.#samples.length > 0 && this.#samples[0]!.at <= now - this.#retention) {
        pick = this.#samples.shift()!.rev;
      }
      if (pick === undefined) return;
      target = pick;
    }
    if (target <= this.#mvcc.compactRev) return;
    this.compact(target, false).catch((err: unknown) =>
      this.#log.warn({ err, rev: target }, 'auto-compaction failed'),
    );
  }

  /**
   * KV.Compact: record `rev` as the compact revision; with `physical` resolve only when the old rows are gone.
   * Resolves with the header revision.
   */
  async compact(rev: number, physical: boolean): Promise<number> {
    if (rev > this.#mvcc.rev) throw etcdErrors.futureRev();
    if (rev <= this.#mvcc.compactRev) throw etcdErrors.compacted();
    const header = await this.#committer.submit(() => {
      if (rev <= this.#mvcc.compactRev) throw etcdErrors.compacted();
      this.#mvcc.compactTo(rev);
      return this.#mvcc.rev;
    });
    this.#log.info({ op: 'compact', rev }, 'compacted');
    const done = this.#enqueuePhysical(rev);
    if (physical) await done;
    return header;
  }

  #enqueuePhysical(rev: number): Promise<void> {
    this.#chain = this.#chain
      .then(() => this.#physical(rev))
      .catch((err: unknown) => {
        this.#log.warn({ err, rev }, 'physical compaction failed');
      });
    return this.#chain;
  }

  /** Queue a checkpoint that empties the WAL, after the compaction passes already queued. */
  #enqueueTruncate(): void {
    this.#chain = this.#chain
      .then(async () => {
        if (!this.#closed) await this.#checkpoint();
      })
      .catch((err: unknown) => {
        this.#log.warn({ err }, 'checkpoint after compaction failed');
      });
  }

  /**
   * Delete what compaction at `rev` made unreachable, reading only the rows written since the last pass:
   * `compact_cursor` is the last row id a pass has handled, written in the same transaction as the deletes,
   * so a pass killed part-way resumes from there. Then the freed pages go back to the file system and the
   * WAL is emptied.
   */
  async #physical(rev: number): Promise<void> {
    const writtenBefore = this.#mvcc.rev;
    const target = this.#db.maxIdAt(rev);
    let cursor = Number(this.#db.metaGet('compact_cursor') ?? 0);
    let total = 0;
    // A newer compaction continues from the cursor, so this pass stops early when one is recorded.
    while (cursor < target && !this.#closed && this.#mvcc.compactRev === rev) {
      const lo = cursor;
      const hi = Math.min(target, lo + this.#batchRows);
      total += await this.#committer.submit(() => {
        const n = this.#db.compactBatch(lo, hi);
        this.#db.metaSet('compact_cursor', hi);
        return n;
      });
      cursor = hi;
    }
    this.#deleted?.inc(total);
    if (this.#closed || this.#mvcc.compactRev !== rev) return;
    const pages = await this.#committer.submit(() => this.#db.incrementalVacuum());
    // The TRUNCATE checkpoint holds writes back while it runs, and a WAL emptied under steady writes only
    // grows again (each sync then also commits a new file size). So only when nothing was written during
    // the pass; otherwise the first quiet tick of the timer does it. (bench/kine.ts, compaction every 1 s,
    // with a TRUNCATE after every pass: put-to-watch p99 74 ms against etcd's 5.7 ms.)
    if (!this.#closed && this.#mvcc.rev === writtenBefore) await this.#checkpoint();
    this.#log.debug({ op: 'compact', rev, rows: total, freedPages: pages }, 'physical compaction done');
  }
}
