import type { Clock } from '../clock.js';
import type { KeyRange } from './keys.js';
import type { LeaseTtl } from './lessor.js';
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
import type { HubWatcher } from './watch-hub.js';

/** A durable write's response and the revision its header carries. */
export interface Written<T> {
  value: T;
  rev: number;
}

/**
 * Everything the gRPC services (KV, Watch, Lease, Maintenance, Cluster) ask of the store, and nothing more.
 * Request checks etcd does before proposing a write throw synchronously from the write methods; failures of
 * the write itself reject the promise.
 */
export interface EtcdBackend {
  /** The clock watch progress notifications run on. */
  readonly clock: Clock;
  /** This member's ID (decimal). */
  readonly memberId: string;
  /** The current revision: the newest one on disk. */
  readonly revision: number;
  /** Reads and watches below this revision answer "compacted". */
  readonly compactRevision: number;

  /** This member's peer URLs, as MemberList reports them. */
  peerUrls(): string[];
  /** Record this member's peer URLs (MemberUpdate); they survive a restart. */
  setPeerUrls(urls: string[]): void;

  /** A response header at `rev` (default: the current revision). */
  header(rev?: number): ResponseHeader;

  /** KV.Range at the requested (or current) revision. */
  range(req: RangeRequest): RangeResponse;
  /** KV.Put as one durable write. */
  put(req: PutRequest): Promise<Written<PutResponse>>;
  /** KV.DeleteRange as one durable write. */
  deleteRange(req: DeleteRangeRequest): Promise<Written<DeleteRangeResponse>>;
  /** KV.Txn as one durable write (one revision for all its changes). */
  txn(req: TxnRequest): Promise<Written<TxnResponse>>;
  /**
   * KV.Compact: record `rev` as the compact revision; with `physical` resolve only once the old rows are
   * gone. Resolves with the header revision.
   */
  compact(rev: number, physical: boolean): Promise<number>;

  /** Lease.LeaseGrant: `id` 0 lets the store choose. */
  leaseGrant(id: number, ttlSeconds: number): Promise<{ id: number; ttlSeconds: number }>;
  /** Lease.LeaseRevoke: delete the lease and its keys; resolves with the header revision. */
  leaseRevoke(id: number): Promise<number>;
  /** One LeaseKeepAlive request: the granted TTL in seconds, or 0 for an unknown or expired lease. */
  leaseRenew(id: number): number;
  /** Lease.LeaseTimeToLive; undefined for an unknown lease. */
  leaseTimeToLive(id: number, withKeys: boolean): LeaseTtl | undefined;
  /** Lease.LeaseLeases: the IDs of every lease. */
  leaseList(): number[];

  /** Deliver the events of every durable write to `w` while it is synced, until {@link unwatch}. */
  watch(w: HubWatcher): void;
  /** Stop delivering to `w`. */
  unwatch(w: HubWatcher): void;
  /** The events of revisions [from, to) on keys in `range`, read from history (a watcher catching up). */
  history(range: KeyRange, from: number, to: number, withPrevKv: boolean): Event[];

  /**
   * Maintenance.HashKV at `rev` (0: the current revision): etcd's CRC-32C over the history it keeps. Throws
   * etcd's compacted or future-revision error.
   */
  hashKv(rev: number): { hash: number; rev: number; compactRev: number };

  /**
   * Maintenance.Snapshot: a consistent copy of the database (SQLite's online backup, taken in one step) in a
   * new 0600 file next to it. The caller streams and deletes the file.
   */
  snapshot(): Promise<{ file: string; rev: number }>;

  /** Bytes on disk (database file plus WAL) and bytes of live pages. */
  size(): { total: number; inUse: number };
  /** Maintenance.Defragment: commit what is queued and rewrite the file without free pages. */
  defragment(): void;
}
