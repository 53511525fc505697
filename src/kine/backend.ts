import { randomInt, randomUUID } from 'node:crypto';
import { closeSync, openSync, rmSync, statSync } from 'node:fs';
import type { Logger } from 'pino';
import { type Clock, systemClock } from '../clock.js';
import type { Registry } from '../metrics.js';
import { Checkpointer } from './checkpointer.js';
import { Committer } from './committer.js';
import { type CompactionOptions, Compactor } from './compactor.js';
import { SqliteDialect } from './dialect.js';
import { etcdErrors } from './errors.js';
import type { EtcdBackend, Written } from './etcd-backend.js';
import { PRIVATE_FILE_MODE } from './file-modes.js';
import { hashKv } from './hash.js';
import type { KeyRange } from './keys.js';
import { type LeaseTtl, Lessor } from './lessor.js';
import { KineMetrics } from './metrics.js';
import { type AppliedBatch, Mvcc, type WriteTxn } from './mvcc.js';
import type {
  DeleteRangeRequest,
  DeleteRangeResponse,
  Event,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  ResponseHeader,
  TxnRequest,
  TxnResponse,
} from './types.js';
import { type HubWatcher, WatchHub } from './watch-hub.js';

/**
 * The peer URL a member reports until MemberUpdate sets others: etcd's default advertised peer URL. No peer
 * traffic is served (there is no raft); it is what a one-member etcd started without peer flags shows.
 */
const DEFAULT_PEER_URL = 'http://localhost:2380';

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

/** Ask the checkpoint worker for a checkpoint at most this often (each one fsyncs the database file). */
const CHECKPOINT_EVERY_MS = 100;
/** The WAL's size cap (the dialect's journal_size_limit); a bigger WAL gets a checkpoint with writes held. */
const WAL_RESTART_BYTES = 8 * 1024 * 1024;
/** A WAL larger than this is checkpointed on the event loop (checked every {@link WAL_CHECK_BATCHES} batches). */
const WAL_LIMIT_BYTES = 64 * 1024 * 1024;
const WAL_CHECK_BATCHES = 256;

/**
 * The etcd operations over the log (Backend -> Log -> Dialect): owns the SQLite dialect, the MVCC log, the
 * group committer, the lessor, the watch hub and the compactor. The gRPC services see it only as an
 * {@link EtcdBackend}.
 */
export class Backend implements EtcdBackend {
  readonly #dialect: SqliteDialect;
  readonly #mvcc: Mvcc;
  readonly #committer: Committer;
  readonly #lessor: Lessor;
  readonly #hub = new WatchHub();
  readonly #compactor: Compactor;
  readonly #checkpointer: Checkpointer;
  readonly #metrics: KineMetrics | undefined;
  readonly clock: Clock;
  readonly #log: Logger;
  readonly clusterId: string;
  readonly memberId: string;
  /** When the last checkpoint was asked for (performance.now()). */
  #lastCheckpointAt = 0;
  #batches = 0;

  constructor(opts: BackendOptions) {
    this.#log = opts.logger;
    this.clock = opts.clock ?? systemClock;
    this.#dialect = new SqliteDialect(opts.file);
    try {
      this.clusterId = this.#id('cluster_id');
      this.memberId = this.#id('member_id');
      const hub = this.#hub;
      this.#metrics = opts.registry ? new KineMetrics(opts.registry, () => hub.size) : undefined;
      this.#checkpointer = new Checkpointer(opts.file, this.#log, { clock: this.clock });
      const mvcc = new Mvcc(this.#dialect, { has: () => false, attach() {}, detach() {} });
      this.#mvcc = mvcc;
      this.#committer = new Committer(
        this.#dialect,
        {
          begin: () => mvcc.beginBatch(),
          applied: () => mvcc.takeBatch(),
          durable: (applied) => {
            const batch = applied as AppliedBatch;
            mvcc.durable(batch);
            this.#metrics?.revision.set(mvcc.rev);
            this.#hub.publish(batch.events, batch.rev);
            this.#maybeCheckpoint();
          },
          failed: () => {
            mvcc.reload();
            this.#lessor.reload();
          },
        },
        this.#log,
        this.#metrics?.commitBatchWrites,
      );
      this.#lessor = new Lessor(this.#dialect, mvcc, this.#committer, this.clock, this.#log);
      mvcc.setLeaseIndex(this.#lessor);
      this.#compactor = new Compactor(
        this.#dialect,
        mvcc,
        this.#committer,
        this.clock,
        this.#log,
        opts.compaction,
        this.#metrics?.compactedRows,
        // Writes wait meanwhile: a TRUNCATE checkpoint needs the writer still.
        () => this.#committer.exclusive(() => this.#checkpointer.request('TRUNCATE')),
      );
      this.#metrics?.revision.set(mvcc.rev);
    } catch (err) {
      this.#dialect.close();
      throw err;
    }
  }

  /** Start lease expiry and automatic compaction. */
  start(): void {
    this.#lessor.start();
    this.#compactor.start();
  }

  get revision(): number {
    return this.#mvcc.rev;
  }

  get compactRevision(): number {
    return this.#mvcc.compactRev;
  }

  /** Watchers currently hooked to the write path. */
  get watchers(): number {
    return this.#hub.size;
  }

  peerUrls(): string[] {
    const v = this.#dialect.metaGet('peer_urls');
    return v === undefined ? [DEFAULT_PEER_URL] : (JSON.parse(v) as string[]);
  }

  setPeerUrls(urls: string[]): void {
    this.#dialect.metaSet('peer_urls', JSON.stringify(urls));
  }

  header(rev = this.#mvcc.rev): ResponseHeader {
    return { cluster_id: this.clusterId, member_id: this.memberId, revision: rev, raft_term: 2 };
  }

  range(req: RangeRequest): RangeResponse {
    return this.#mvcc.range(req);
  }

  put(req: PutRequest): Promise<Written<PutResponse>> {
    Mvcc.checkPut(req);
    return this.#write((tx) => this.#mvcc.put(tx, req));
  }

  deleteRange(req: DeleteRangeRequest): Promise<Written<DeleteRangeResponse>> {
    if (req.key.length === 0) throw etcdErrors.emptyKey();
    return this.#write((tx) => this.#mvcc.deleteRange(tx, req));
  }

  txn(req: TxnRequest): Promise<Written<TxnResponse>> {
    Mvcc.checkTxn(req);
    return this.#write((tx) => this.#mvcc.txn(tx, req));
  }

  compact(rev: number, physical: boolean): Promise<number> {
    return this.#compactor.compact(rev, physical);
  }

  leaseGrant(id: number, ttlSeconds: number): Promise<{ id: number; ttlSeconds: number }> {
    return this.#lessor.grant(id, ttlSeconds);
  }

  leaseRevoke(id: number): Promise<number> {
    return this.#lessor.revoke(id);
  }

  leaseRenew(id: number): number {
    return this.#lessor.renew(id);
  }

  leaseTimeToLive(id: number, withKeys: boolean): LeaseTtl | undefined {
    return this.#lessor.timeToLive(id, withKeys);
  }

  leaseList(): number[] {
    return this.#lessor.list();
  }

  watch(w: HubWatcher): void {
    this.#hub.add(w);
  }

  unwatch(w: HubWatcher): void {
    this.#hub.remove(w);
  }

  history(range: KeyRange, from: number, to: number, withPrevKv: boolean): Event[] {
    return this.#mvcc.history(range, from, to, withPrevKv);
  }

  hashKv(rev: number): { hash: number; rev: number; compactRev: number } {
    const current = this.#mvcc.rev;
    const compactRev = this.#mvcc.compactRev;
    if (rev > 0 && rev <= compactRev) throw etcdErrors.compacted();
    if (rev > current) throw etcdErrors.futureRev();
    const at = rev > 0 ? rev : current;
    const hash = hashKv(() => this.#dialect.upTo(at), at, compactRev);
    // etcd reports -1 for a store never compacted.
    return { hash, rev: current, compactRev: compactRev > 0 ? compactRev : -1 };
  }

  async snapshot(): Promise<{ file: string; rev: number }> {
    const file = `${this.#dialect.file}.snapshot-${randomUUID()}`;
    closeSync(openSync(file, 'wx', PRIVATE_FILE_MODE));
    const rev = this.#mvcc.rev;
    try {
      // Rate 0 on the first step: every page is copied in that one step, so nothing written after
      // `rev` gets in.
      await this.#dialect.db.backup(file);
    } catch (err) {
      rmSync(file, { force: true });
      throw err;
    }
    return { file, rev };
  }

  size(): { total: number; inUse: number } {
    const { total, inUse } = this.#dialect.size();
    let wal = 0;
    try {
      wal = statSync(`${this.#dialect.file}-wal`).size;
    } catch {
      wal = 0;
    }
    return { total: Math.max(total, statSync(this.#dialect.file).size) + wal, inUse };
  }

  defragment(): void {
    this.#committer.flush();
    this.#dialect.vacuum();
  }

  /** Stop timers, commit what is queued, close the file. */
  async close(): Promise<void> {
    this.#lessor.stop();
    await this.#compactor.stop();
    await this.#committer.close();
    await this.#checkpointer.close();
    this.#dialect.close();
  }

  /** Run `fn` as one durable write at the next revision; resolves with its result and header revision. */
  #write<T>(fn: (tx: WriteTxn) => T): Promise<Written<T>> {
    return this.#committer.submit(() => this.#mvcc.write(fn));
  }

  /**
   * After a durable batch: ask the worker for a checkpoint at most every {@link CHECKPOINT_EVERY_MS}. Should
   * the WAL still pass {@link WAL_LIMIT_BYTES} (a checkpoint that never catches up with the writers),
   * checkpoint here, on the event loop, which nothing can overtake.
   */
  #maybeCheckpoint(): void {
    const now = performance.now();
    if (!this.#checkpointer.running && now - this.#lastCheckpointAt >= CHECKPOINT_EVERY_MS) {
      this.#lastCheckpointAt = now;
      if (this.#dialect.walBytes() > WAL_RESTART_BYTES) {
        // Past the cap, the WAL has not restarted since it outgrew it: under steady writes a checkpoint
        // beside the writer never copies the last frames, so the WAL would only grow (measured: 80 MB after
        // 150,000 in-process puts by 16 writers with compaction off; 9.5 MB with this). Hold writes for one
        // checkpoint; the next commit restarts the WAL and SQLite cuts it back to the cap.
        void this.#committer.exclusive(() => this.#checkpointer.request());
      } else {
        void this.#checkpointer.request();
      }
    }
    if (++this.#batches % WAL_CHECK_BATCHES === 0 && this.#dialect.walBytes() > WAL_LIMIT_BYTES) {
      this.#log.warn({ wal: this.#dialect.walBytes() }, 'WAL above 64 MB; checkpointing on the event loop');
      this.#dialect.checkpoint('PASSIVE');
    }
  }

  #id(key: string): string {
    let v = this.#dialect.metaGet(key);
    if (v === undefined) {
      // 52 random bits: unique enough for one member, and exact as a JS number.
      v = String(randomInt(1, 2 ** 26) * 2 ** 26 + randomInt(0, 2 ** 26));
      this.#dialect.metaSet(key, v);
    }
    return v;
  }
}
