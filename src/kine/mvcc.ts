import type { LiveRow, SqliteDialect } from './dialect.js';
import { etcdErrors } from './errors.js';
import { isEmptyRange, type KeyRange, keyRange, toKv, tombstoneKv } from './keys.js';
import { LatestIndex } from './latest.js';
import { checkDuplicates, compareRow, sortRows } from './mvcc-rules.js';
import {
  type Compare,
  CompareTarget,
  type DeleteRangeRequest,
  type DeleteRangeResponse,
  type Event,
  type KeyValue,
  type PutRequest,
  type PutResponse,
  type RangeRequest,
  type RangeResponse,
  type ResponseOp,
  SortOrder,
  SortTarget,
  type TxnRequest,
  type TxnResponse,
} from './types.js';

/** etcd's limit on operations per txn branch (--max-txn-ops default). */
const MAX_TXN_OPS = 128;
const LATEST = Number.MAX_SAFE_INTEGER;
/** A fresh etcd store is at revision 1; its first write makes revision 2. */
const FIRST_REV = 1;
const ZERO = Buffer.from([0]);

/** What the MVCC layer asks of the lease table (passed in, so the log does not decide about leases). */
export interface LeaseIndex {
  has(id: number): boolean;
  attach(id: number, key: Buffer): void;
  detach(id: number, key: Buffer): void;
}

/** Which branch each (nested) txn takes, decided before the txn writes. */
interface ComparePath {
  succeeded: boolean;
  nested: Map<number, ComparePath>;
}

/** What one committed batch changed: its events (in revision order) and the revision after it. */
export interface AppliedBatch {
  events: Event[];
  rev: number;
}

/** The state of one write (one revision): every change it makes shares `rev`. */
export class WriteTxn {
  readonly rev: number;
  readonly events: Event[] = [];
  constructor(rev: number) {
    this.rev = rev;
  }
  get changed(): boolean {
    return this.events.length > 0;
  }
}

/**
 * The log (between the etcd operations and the SQL dialect): etcd revision semantics over the append-only table. Reads run directly; writes run
 * inside the committer's transaction through {@link Mvcc.write}, which assigns the next revision and keeps
 * in-memory state (revision, lease attachments, pending events) in step only when the write succeeds.
 */
export class Mvcc {
  readonly #db: SqliteDialect;
  #leases: LeaseIndex;
  #rev: number;
  #applied: number;
  #compactRev: number;
  #pending: Event[] = [];
  #latest: LatestIndex;

  constructor(db: SqliteDialect, leases: LeaseIndex) {
    this.#db = db;
    this.#leases = leases;
    this.#compactRev = Number(db.metaGet('compact_rev') ?? 0);
    this.#rev = Math.max(db.maxRevision(), this.#compactRev, FIRST_REV);
    this.#applied = this.#rev;
    this.#latest = this.#buildLatest();
  }

  /** The newest version of every live key as the log holds it now, at the current revision. */
  #buildLatest(): LatestIndex {
    return new LatestIndex(this.#db.liveKvs(LATEST), this.#rev);
  }

  /** Live keys at the current revision. */
  get liveKeys(): number {
    return this.#latest.size;
  }

  /** The current revision clients see: the newest one that is on disk. Reads default to it. */
  get rev(): number {
    return this.#rev;
  }

  /** The newest revision written to SQLite (ahead of `rev` while its fdatasync runs). Writes build on it. */
  get applied(): number {
    return this.#applied;
  }

  /** Reads below this revision answer "compacted". */
  get compactRev(): number {
    return this.#compactRev;
  }

  /** Swap the lease index (the lessor is built after the log). */
  setLeaseIndex(leases: LeaseIndex): void {
    this.#leases = leases;
  }

  /** Reload the revision from disk (after a failed commit). */
  reload(): void {
    this.#pending = [];
    this.#compactRev = Number(this.#db.metaGet('compact_rev') ?? 0);
    this.#rev = Math.max(this.#db.maxRevision(), this.#compactRev, FIRST_REV);
    this.#applied = this.#rev;
    this.#latest = this.#buildLatest();
  }

  /** A batch of writes starts: forget events of a batch that never committed. */
  beginBatch(): void {
    this.#pending = [];
  }

  /** The batch committed: hand over its events and the revision it reached, to publish once durable. */
  takeBatch(): AppliedBatch {
    const events = this.#pending;
    this.#pending = [];
    return { events, rev: this.#applied };
  }

  /** A batch is on disk: clients may now read up to its revision, and reads of it see its events. */
  durable(batch: AppliedBatch): void {
    this.#latest.apply(batch.events, batch.rev);
    if (batch.rev > this.#rev) this.#rev = batch.rev;
  }

  /**
   * Record `rev` as the compact revision (call only inside the committer's transaction); reads below it
   * answer "compacted" from now on.
   */
  compactTo(rev: number): void {
    if (rev <= this.#compactRev) throw etcdErrors.compacted();
    this.#db.metaSet('compact_rev', rev);
    this.#compactRev = rev;
  }

  /** Check a requested read revision; returns the revision to read at. */
  checkRev(requested: number): number {
    if (requested <= 0) return this.#rev;
    if (requested > this.#rev) throw etcdErrors.futureRev();
    if (requested < this.#compactRev) throw etcdErrors.compacted();
    return requested;
  }

  /** KV.Range (also used inside a txn, where `at` sees the txn's own writes). */
  range(req: RangeRequest, at?: number): RangeResponse {
    if (req.key.length === 0) throw etcdErrors.emptyKey();
    let order = req.sort_order;
    const target = req.sort_target;
    if (order < 0 || order > 2 || target < 0 || target > 4) throw etcdErrors.invalidSortOption();
    const rev = at ?? this.checkRev(Number(req.revision));
    const range = keyRange(req.key, req.range_end);
    const limit = Number(req.limit);
    const minMod = Number(req.min_mod_revision);
    const maxMod = Number(req.max_mod_revision);
    const minCreate = Number(req.min_create_revision);
    const maxCreate = Number(req.max_create_revision);
    if (target !== SortTarget.KEY && order === SortOrder.NONE) order = SortOrder.ASCEND;
    let rows: LiveRow[];
    let count: number;
    const filtered = minMod > 0 || maxMod > 0 || minCreate > 0 || maxCreate > 0;
    const keyOrder = order === SortOrder.NONE || (order === SortOrder.ASCEND && target === SortTarget.KEY);
    if (at === undefined && rev === this.#latest.rev && !filtered && keyOrder) {
      // A read of the current revision in key order: from the index of the newest versions.
      const { kvs, count } = this.#latest.range(range, limit, req.keys_only, req.count_only);
      return { kvs, more: !req.count_only && limit > 0 && count > limit, count };
    }
    if (!range.single && !isEmptyRange(range) && !filtered && keyOrder && !req.count_only) {
      // A prefix of an older revision in key order, no filters: KeyValues straight from the rows.
      const read = limit > 0 ? limit + 1 : 0;
      let kvs = this.#db.rangeKvs(range.key, range.end, rev, read, req.keys_only);
      count = read === 0 || kvs.length < read ? kvs.length : this.#db.count(range.key, range.end, rev);
      const more = limit > 0 && kvs.length > limit;
      if (more) kvs = kvs.slice(0, limit);
      return { kvs, more, count };
    }
    if (range.single) {
      const row = this.#db.get(range.key, rev);
      rows = row !== undefined && row.deleted === 0 ? [row] : [];
      count = rows.length;
    } else if (isEmptyRange(range)) {
      rows = [];
      count = 0;
    } else {
      const read = filtered || !keyOrder || limit <= 0 ? 0 : limit + 1;
      rows = req.count_only ? [] : this.#db.range(range.key, range.end, rev, read);
      // etcd's count is every live key of the range, before the filters and the limit: when the read above
      // returned them all, it is their number, and a second walk of the range is saved.
      count =
        !req.count_only && (read === 0 || rows.length < read)
          ? rows.length
          : this.#db.count(range.key, range.end, rev);
    }
    rows = rows.filter(
      (r) =>
        (minMod <= 0 || r.revision >= minMod) &&
        (maxMod <= 0 || r.revision <= maxMod) &&
        (minCreate <= 0 || r.create_revision >= minCreate) &&
        (maxCreate <= 0 || r.create_revision <= maxCreate),
    );
    if (order !== SortOrder.NONE) sortRows(rows, order, target);
    let more = false;
    if (limit > 0 && rows.length > limit) {
      rows = rows.slice(0, limit);
      more = true;
    }
    return {
      kvs: req.count_only ? [] : rows.map((r) => toKv(r, req.keys_only)),
      more,
      count,
    };
  }

  /**
   * Run `fn` as one write at the next revision. Call only inside the committer's transaction. Returns the
   * response with `rev` the header revision (the new one if anything changed, else the current one).
   */
  write<T>(fn: (tx: WriteTxn) => T): { value: T; rev: number } {
    const tx = new WriteTxn(this.#applied + 1);
    const value = fn(tx);
    if (tx.changed) {
      this.#applied = tx.rev;
      for (const ev of tx.events) {
        const prevLease = ev.prev_kv !== undefined ? Number(ev.prev_kv.lease) : 0;
        if (prevLease !== 0) this.#leases.detach(prevLease, ev.kv.key);
        if (ev.type === 0 && Number(ev.kv.lease) !== 0) this.#leases.attach(Number(ev.kv.lease), ev.kv.key);
      }
      this.#pending.push(...tx.events);
    }
    return { value, rev: this.#applied };
  }

  /** Check a Put before it is queued (etcd's checkPutRequest). */
  static checkPut(req: PutRequest): void {
    if (req.key.length === 0) throw etcdErrors.emptyKey();
    if (req.ignore_value && req.value.length !== 0) throw etcdErrors.valueProvided();
    if (req.ignore_lease && Number(req.lease) !== 0) throw etcdErrors.leaseProvided();
  }

  /** KV.Put within `tx`. */
  put(tx: WriteTxn, req: PutRequest): PutResponse {
    const prev = this.#db.get(req.key, LATEST);
    const live = prev !== undefined && prev.deleted === 0 ? prev : undefined;
    if ((req.ignore_value || req.ignore_lease) && live === undefined) throw etcdErrors.keyNotFound();
    const value = req.ignore_value ? live!.value : req.value;
    const lease = req.ignore_lease ? live!.lease : Number(req.lease);
    if (lease !== 0 && !this.#leases.has(lease)) throw etcdErrors.leaseNotFound();
    const row = {
      revision: tx.rev,
      name: req.key,
      created: live === undefined ? 1 : 0,
      deleted: 0,
      create_revision: live?.create_revision ?? tx.rev,
      prev_revision: prev?.revision ?? 0,
      version: (live?.version ?? 0) + 1,
      lease,
      value: value ?? Buffer.alloc(0),
    };
    this.#db.insert(row);
    const prevKv = live !== undefined ? toKv(live) : undefined;
    tx.events.push({ type: 0, kv: toKv(row), prev_kv: prevKv });
    return { prev_kv: req.prev_kv ? prevKv : undefined };
  }

  /** KV.DeleteRange within `tx`. */
  deleteRange(tx: WriteTxn, req: DeleteRangeRequest): DeleteRangeResponse {
    if (req.key.length === 0) throw etcdErrors.emptyKey();
    const rows = this.liveRows(keyRange(req.key, req.range_end));
    const prevKvs: KeyValue[] = [];
    for (const row of rows) this.#tombstone(tx, row, prevKvs);
    return { deleted: rows.length, prev_kvs: req.prev_kv ? prevKvs : [] };
  }

  /** Delete the given live rows within `tx` (lease expiry/revoke). */
  deleteRows(tx: WriteTxn, rows: LiveRow[]): void {
    for (const row of rows) this.#tombstone(tx, row, []);
  }

  #tombstone(tx: WriteTxn, row: LiveRow, prevKvs: KeyValue[]): void {
    this.#db.insert({
      revision: tx.rev,
      name: row.name,
      created: 0,
      deleted: 1,
      create_revision: row.create_revision,
      prev_revision: row.revision,
      version: 0,
      lease: 0,
      value: null,
    });
    const prevKv = toKv(row);
    prevKvs.push(prevKv);
    tx.events.push({ type: 1, kv: tombstoneKv(row.name, tx.rev), prev_kv: prevKv });
  }

  /**
   * The events of revisions [from, to) on keys in `range`, in revision order, read from the table (a watcher
   * catching up). A delete carries a tombstone KeyValue; `withPrevKv` adds the value each change replaced.
   */
  history(range: KeyRange, from: number, to: number, withPrevKv: boolean): Event[] {
    const end = range.single ? Buffer.concat([range.key, ZERO]) : range.end;
    const events: Event[] = [];
    for (const row of this.#db.after(from, to, range.key, end)) {
      if (range.single && !row.name.equals(range.key)) continue;
      const prev = withPrevKv && row.prev_revision > 0 ? this.#db.at(row.name, row.prev_revision) : undefined;
      const prevKv = prev !== undefined && prev.deleted === 0 ? toKv(prev) : undefined;
      events.push(
        row.deleted === 1
          ? { type: 1, kv: tombstoneKv(row.name, row.revision), prev_kv: prevKv }
          : { type: 0, kv: toKv(row), prev_kv: prevKv },
      );
    }
    return events;
  }

  /** Live rows in `range` as the current write sees them. */
  liveRows(range: KeyRange): LiveRow[] {
    if (range.single) {
      const row = this.#db.get(range.key, LATEST);
      return row !== undefined && row.deleted === 0 ? [row] : [];
    }
    if (isEmptyRange(range)) return [];
    return this.#db.range(range.key, range.end, LATEST, 0);
  }

  /** Check a Txn before it is queued: op counts and duplicate keys (etcd's checkTxnRequest). */
  static checkTxn(req: TxnRequest): void {
    if (
      req.compare.length > MAX_TXN_OPS ||
      req.success.length > MAX_TXN_OPS ||
      req.failure.length > MAX_TXN_OPS
    ) {
      throw etcdErrors.tooManyOps();
    }
    for (const c of req.compare) if (c.key.length === 0) throw etcdErrors.emptyKey();
    for (const ops of [req.success, req.failure]) {
      for (const op of ops) {
        if (op.request_put) Mvcc.checkPut(op.request_put);
        if (op.request_txn) Mvcc.checkTxn(op.request_txn);
        if (op.request_range && op.request_range.key.length === 0) throw etcdErrors.emptyKey();
        if (op.request_delete_range && op.request_delete_range.key.length === 0) throw etcdErrors.emptyKey();
      }
      checkDuplicates(ops);
    }
  }

  /**
   * KV.Txn within `tx`. As etcd does (compareToPath), every compare, nested txns' included, is evaluated
   * against the state before the txn writes anything; then the chosen branches run in order.
   */
  txn(tx: WriteTxn, req: TxnRequest): TxnResponse {
    return this.#runTxn(tx, req, this.#comparePath(req));
  }

  #comparePath(req: TxnRequest): ComparePath {
    const succeeded = req.compare.every((c) => this.#compare(c));
    const nested = new Map<number, ComparePath>();
    (succeeded ? req.success : req.failure).forEach((op, i) => {
      if (op.request_txn) nested.set(i, this.#comparePath(op.request_txn));
    });
    return { succeeded, nested };
  }

  #runTxn(tx: WriteTxn, req: TxnRequest, path: ComparePath): TxnResponse {
    const ops = path.succeeded ? req.success : req.failure;
    const responses: ResponseOp[] = [];
    ops.forEach((op, i) => {
      if (op.request_range) {
        const res = this.range(op.request_range, this.#readRevFor(tx, op.request_range));
        responses.push({ response_range: res });
      } else if (op.request_put) {
        responses.push({ response_put: this.put(tx, op.request_put) });
      } else if (op.request_delete_range) {
        responses.push({ response_delete_range: this.deleteRange(tx, op.request_delete_range) });
      } else if (op.request_txn) {
        responses.push({ response_txn: this.#runTxn(tx, op.request_txn, path.nested.get(i)!) });
      }
    });
    return { succeeded: path.succeeded, responses };
  }

  #readRevFor(tx: WriteTxn, req: RangeRequest): number {
    const requested = Number(req.revision);
    if (requested > 0) return this.checkRev(requested);
    return tx.changed ? tx.rev : this.#applied;
  }

  #compare(c: Compare): boolean {
    const rows = this.liveRows(keyRange(c.key, c.range_end));
    if (rows.length === 0) {
      // etcd: comparing the value of a missing key always fails (nil and "" are indistinguishable).
      if (c.target === CompareTarget.VALUE) return false;
      return compareRow(c, undefined);
    }
    return rows.every((r) => compareRow(c, r));
  }
}
