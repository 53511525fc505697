/**
 * The datastore layer under the resource store, injected into it: the few etcd v3 operations the control plane
 * needs. {@link EtcdKv} speaks them to etcd (or the embedded datastore, which has the same API) through the
 * `etcd3` client; {@link MemoryKv} keeps them in memory for unit tests.
 */

/** One key as stored. Revisions are the datastore's (etcd `mod_revision`, `create_revision`). */
export interface KvPair {
  key: string;
  value: Buffer;
  modRevision: number;
  createRevision: number;
}

/** A change seen by a watch. For a delete, `value` is the value before the delete. */
export interface KvEvent {
  type: 'put' | 'delete';
  key: string;
  value: Buffer;
  /** The revision of this change (the delete's revision for a delete). */
  modRevision: number;
  /** True when the put created the key. */
  created: boolean;
}

/** What a watch calls. `error` ends the watch (e.g. `VIPMESH_API_GONE` for a compacted revision). */
export interface KvWatchHandlers {
  event(e: KvEvent): void;
  error(err: Error): void;
}

/** A running watch. */
export interface KvWatch {
  close(): Promise<void>;
}

/** Options of {@link Kv.listPage}. */
export interface KvPageOptions {
  limit: number;
  start?: string;
  revision?: number;
}

/** One page of a {@link Kv.listPage}. */
export interface KvPage {
  pairs: KvPair[];
  revision: number;
  more: boolean;
}

/** The result of a conditional write: the new revision, or the key as it is now (absent: undefined). */
export type KvWriteResult = { ok: true; revision: number } | { ok: false; current: KvPair | undefined };

/**
 * A second key a conditional write also compares (its mod revision must be `expect`, 0: absent) and
 * rewrites in the same transaction: writers that all guard with one key are serialised, so a check made
 * against other keys before the write cannot be overtaken by another writer's (check-then-write).
 */
export interface KvGuard {
  key: string;
  expect: number;
}

/** One write of a {@link Kv.batch}: a put, or (no `value`) a delete. */
export interface KvOp {
  key: string;
  value?: Buffer;
}

/**
 * Most writes in one {@link Kv.batch}: etcd's default `--max-txn-ops`, so a batch is accepted by a real
 * etcd as configured out of the box.
 */
export const MAX_BATCH_OPS = 128;

/** The etcd operations the resource store uses. */
export interface Kv {
  get(key: string): Promise<KvPair | undefined>;
  /**
   * Every key under `prefix` and the store revision they were read at. Read in pages at that one revision,
   * so no single datastore message has to hold the whole prefix.
   */
  list(prefix: string): Promise<{ pairs: KvPair[]; revision: number }>;
  /**
   * Up to `limit` keys under `prefix` from `start` (inclusive; default the prefix), in key order, read at
   * `revision` (default the current one, returned as `revision`). `more`: keys remain after the last one.
   * A compacted `revision` is `VIPMESH_API_GONE`. May return fewer than `limit` with `more` set.
   */
  listPage(prefix: string, opts: KvPageOptions): Promise<KvPage>;
  /**
   * Write `value` if the key's mod revision is `expect` (0: the key must not exist) and, with `guard`, the
   * guard key's is `guard.expect`; the guard key is then rewritten too. One etcd Txn. A failure returns
   * the key as it is now: unchanged (`current` at `expect`) means the guard moved.
   */
  put(key: string, value: Buffer, expect: number, guard?: KvGuard): Promise<KvWriteResult>;
  /** Delete if the key's mod revision is `expect`. One etcd Txn. */
  delete(key: string, expect: number): Promise<KvWriteResult>;
  /**
   * Unconditional puts and deletes (at most {@link MAX_BATCH_OPS}, distinct keys) in one etcd Txn: one
   * revision, one commit. Returns that revision. For data with a single writer (the elected master).
   */
  batch(ops: readonly KvOp[]): Promise<number>;
  /** Changes under `prefix` from revision `from` (inclusive). */
  watch(prefix: string, from: number, handlers: KvWatchHandlers): Promise<KvWatch>;
  /** The current store revision. */
  revision(): Promise<number>;
  close(): Promise<void>;
}
