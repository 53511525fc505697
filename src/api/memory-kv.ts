import type {
  Kv,
  KvEvent,
  KvGuard,
  KvOp,
  KvPage,
  KvPageOptions,
  KvPair,
  KvWatch,
  KvWatchHandlers,
  KvWriteResult,
} from './kv.js';
import { apiError } from './status.js';

/**
 * An in-memory {@link Kv} with etcd's revision semantics (one global revision, bumped by every write, a
 * history for watches from an old revision). For unit tests of the store, the API and controllers.
 * `compact(rev)` drops history so tests can reach the "revision compacted" path.
 */
export class MemoryKv implements Kv {
  #rev = 1;
  #compacted = 0;
  #data = new Map<string, KvPair>();
  #history: KvEvent[] = [];
  #watchers = new Set<{ prefix: string; handlers: KvWatchHandlers }>();

  async get(key: string): Promise<KvPair | undefined> {
    return this.#data.get(key);
  }

  async list(prefix: string): Promise<{ pairs: KvPair[]; revision: number }> {
    const pairs = [...this.#data.values()].filter((p) => p.key.startsWith(prefix));
    pairs.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return { pairs, revision: this.#rev };
  }

  /** A page of the current data; `revision` only checks compaction (no old versions are kept). */
  async listPage(prefix: string, opts: KvPageOptions): Promise<KvPage> {
    if (opts.revision !== undefined && opts.revision <= this.#compacted) {
      throw apiError('VIPMESH_API_GONE', `revision ${opts.revision} has been compacted`);
    }
    const start = opts.start ?? prefix;
    const { pairs } = await this.list(prefix);
    const after = pairs.filter((p) => p.key >= start);
    const limit = opts.limit > 0 ? opts.limit : after.length;
    return {
      pairs: after.slice(0, limit),
      revision: opts.revision ?? this.#rev,
      more: after.length > limit,
    };
  }

  async put(key: string, value: Buffer, expect: number, guard?: KvGuard): Promise<KvWriteResult> {
    const cur = this.#data.get(key);
    if ((cur?.modRevision ?? 0) !== expect) return { ok: false, current: cur };
    if (guard !== undefined && (this.#data.get(guard.key)?.modRevision ?? 0) !== guard.expect)
      return { ok: false, current: cur };
    const rev = ++this.#rev;
    if (guard !== undefined) {
      const g = this.#data.get(guard.key);
      const v = Buffer.from(key);
      this.#data.set(guard.key, {
        key: guard.key,
        value: v,
        modRevision: rev,
        createRevision: g?.createRevision ?? rev,
      });
      this.#emit({ type: 'put', key: guard.key, value: v, modRevision: rev, created: g === undefined });
    }
    this.#data.set(key, { key, value, modRevision: rev, createRevision: cur?.createRevision ?? rev });
    this.#emit({ type: 'put', key, value, modRevision: rev, created: cur === undefined });
    return { ok: true, revision: rev };
  }

  async delete(key: string, expect: number): Promise<KvWriteResult> {
    const cur = this.#data.get(key);
    if (cur === undefined || cur.modRevision !== expect) return { ok: false, current: cur };
    const rev = ++this.#rev;
    this.#data.delete(key);
    this.#emit({ type: 'delete', key, value: cur.value, modRevision: rev, created: false });
    return { ok: true, revision: rev };
  }

  async batch(ops: readonly KvOp[]): Promise<number> {
    const rev = ++this.#rev;
    for (const { key, value } of ops) {
      const cur = this.#data.get(key);
      if (value === undefined) {
        if (cur === undefined) continue;
        this.#data.delete(key);
        this.#emit({ type: 'delete', key, value: cur.value, modRevision: rev, created: false });
      } else {
        this.#data.set(key, { key, value, modRevision: rev, createRevision: cur?.createRevision ?? rev });
        this.#emit({ type: 'put', key, value, modRevision: rev, created: cur === undefined });
      }
    }
    return rev;
  }

  async watch(prefix: string, from: number, handlers: KvWatchHandlers): Promise<KvWatch> {
    if (from <= this.#compacted) {
      throw apiError(
        'VIPMESH_API_GONE',
        `revision ${from} has been compacted (oldest ${this.#compacted + 1})`,
      );
    }
    const w = { prefix, handlers };
    const backlog = this.#history.filter((e) => e.modRevision >= from && e.key.startsWith(prefix));
    // Replay asynchronously, as a real watch would, then follow live writes.
    queueMicrotask(() => {
      for (const e of backlog) handlers.event(e);
    });
    this.#watchers.add(w);
    return {
      close: async () => {
        this.#watchers.delete(w);
      },
    };
  }

  async revision(): Promise<number> {
    return this.#rev;
  }

  /** Forget history up to and including `rev`, as etcd's compaction does. */
  compact(rev: number): void {
    this.#compacted = rev;
    this.#history = this.#history.filter((e) => e.modRevision > rev);
  }

  async close(): Promise<void> {
    this.#watchers.clear();
  }

  #emit(e: KvEvent): void {
    this.#history.push(e);
    for (const w of this.#watchers) {
      if (e.key.startsWith(w.prefix)) queueMicrotask(() => w.handlers.event(e));
    }
  }
}
