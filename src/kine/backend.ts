import { randomInt } from 'node:crypto';
import { statSync } from 'node:fs';
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { type Clock, systemClock } from '../clock.js';
import { Checkpointer } from './checkpointer.js';
import { Committer } from './committer.js';
import { type CompactionOptions, Compactor } from './compactor.js';
import { SqliteDialect } from './dialect.js';
import { Lessor } from './lessor.js';
import { Mvcc, type WriteTxn } from './mvcc.js';
import type { Event, ResponseHeader } from './types.js';
import { WatchHub } from './watch-hub.js';

/** Options for {@link Backend}. */
export interface BackendOptions {
  /** The SQLite data file (created with its directory when missing). */
  file: string;
  logger: Logger;
  /** Metrics registry for `vipmesh_kine_*`; none when omitted. */
  registry?: Registry;
  /** Default: the system clock. */
  clock?: Clock;
  compaction?: CompactionOptions;
}

/**
 * The etcd operations over the log (STYLE.md 8: Backend -> Log -> Dialect): owns the SQLite dialect, the MVCC
 * log, the group committer, the lessor, the watch hub and the compactor. The gRPC handlers call only this.
 */
export class Backend {
  readonly dialect: SqliteDialect;
  readonly mvcc: Mvcc;
  readonly committer: Committer;
  readonly lessor: Lessor;
  readonly hub = new WatchHub();
  readonly compactor: Compactor;
  readonly checkpointer: Checkpointer;
  readonly clock: Clock;
  readonly log: Logger;
  readonly clusterId: string;
  readonly memberId: string;
  readonly #revGauge: Gauge | undefined;
  #lastCheckpoint = 0;
  #batches = 0;

  constructor(opts: BackendOptions) {
    this.log = opts.logger;
    this.clock = opts.clock ?? systemClock;
    this.dialect = new SqliteDialect(opts.file);
    try {
      this.clusterId = this.#id('cluster_id');
      this.memberId = this.#id('member_id');
      const reg = opts.registry;
      const batch = reg
        ? new Histogram({
            name: 'vipmesh_kine_commit_batch_writes',
            help: 'Writes committed per SQLite transaction (group commit)',
            buckets: [1, 2, 4, 8, 16, 32, 64, 128],
            registers: [reg],
          })
        : undefined;
      const compacted = reg
        ? new Counter({
            name: 'vipmesh_kine_compacted_rows_total',
            help: 'Rows removed by compaction',
            registers: [reg],
          })
        : undefined;
      this.#revGauge = reg
        ? new Gauge({ name: 'vipmesh_kine_revision', help: 'Current store revision', registers: [reg] })
        : undefined;
      if (reg) {
        const hub = this.hub;
        new Gauge({
          name: 'vipmesh_kine_watchers',
          help: 'Active watchers',
          registers: [reg],
          collect() {
            this.set(hub.size);
          },
        });
      }
      this.checkpointer = new Checkpointer(opts.file, this.log);
      this.mvcc = new Mvcc(this.dialect, { has: () => false, attach() {}, detach() {} });
      this.committer = new Committer(
        this.dialect,
        {
          begin: () => {
            this.mvcc.pending = [];
          },
          applied: () => {
            const events = this.mvcc.pending;
            this.mvcc.pending = [];
            return { events, rev: this.mvcc.applied };
          },
          durable: (applied) => {
            const { events, rev } = applied as { events: Event[]; rev: number };
            this.mvcc.rev = Math.max(this.mvcc.rev, rev);
            this.#revGauge?.set(this.mvcc.rev);
            this.hub.publish(events, rev);
            this.#maybeCheckpoint();
          },
          failed: () => {
            this.mvcc.reload();
            this.lessor.reload();
          },
        },
        this.log,
        batch,
      );
      this.lessor = new Lessor(this.dialect, this.mvcc, this.committer, this.clock, this.log);
      this.mvcc.setLeaseIndex(this.lessor);
      this.compactor = new Compactor(
        this.dialect,
        this.mvcc,
        this.committer,
        this.clock,
        this.log,
        opts.compaction,
        compacted,
        () => this.checkpointer.request(),
      );
      this.#revGauge?.set(this.mvcc.rev);
    } catch (err) {
      this.dialect.close();
      throw err;
    }
  }

  /** Start lease expiry and automatic compaction. */
  start(): void {
    this.lessor.start();
    this.compactor.start();
  }

  /** A response header at `rev` (default: the current revision). */
  header(rev = this.mvcc.rev): ResponseHeader {
    return { cluster_id: this.clusterId, member_id: this.memberId, revision: rev, raft_term: 2 };
  }

  /** Run `fn` as one durable write at the next revision; resolves with its result and header revision. */
  write<T>(fn: (tx: WriteTxn) => T): Promise<{ value: T; rev: number }> {
    return this.committer.submit(() => this.mvcc.write(fn));
  }

  /** Bytes on disk (database file plus WAL) and bytes of live pages. */
  size(): { total: number; inUse: number } {
    const { total, inUse } = this.dialect.size();
    let wal = 0;
    try {
      wal = statSync(`${this.dialect.file}-wal`).size;
    } catch {
      wal = 0;
    }
    return { total: Math.max(total, statSync(this.dialect.file).size) + wal, inUse };
  }

  /** Stop timers, commit what is queued, close the file. */
  async close(): Promise<void> {
    this.lessor.stop();
    await this.compactor.stop();
    await this.committer.close();
    await this.checkpointer.close();
    this.dialect.close();
  }

  /**
   * After a durable batch: ask the worker for a checkpoint at most every 100 ms (each one fsyncs the database
   * file). Should the WAL still pass 64 MB (a checkpoint that never catches up with the writers), checkpoint
   * here, on the event loop, which nothing can overtake.
   */
  #maybeCheckpoint(): void {
    const now = performance.now();
    if (!this.checkpointer.running && now - this.#lastCheckpoint >= 100) {
      this.#lastCheckpoint = now;
      void this.checkpointer.request();
    }
    if (++this.#batches % 256 === 0 && this.dialect.walBytes() > 64 * 1024 * 1024) {
      this.log.warn({ wal: this.dialect.walBytes() }, 'WAL above 64 MB; checkpointing on the event loop');
      this.dialect.checkpoint('PASSIVE');
    }
  }

  #id(key: string): string {
    let v = this.dialect.metaGet(key);
    if (v === undefined) {
      // 52 random bits: unique enough for one member, and exact as a JS number.
      v = String(randomInt(1, 2 ** 26) * 2 ** 26 + randomInt(0, 2 ** 26));
      this.dialect.metaSet(key, v);
    }
    return v;
  }
}
