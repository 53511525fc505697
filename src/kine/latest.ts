import sortedBtree from 'sorted-btree';
import { isEmptyRange, type KeyRange } from './keys.js';
import type { Event, KeyValue } from './types.js';

// A CommonJS module whose class is its `default` export.
const BTree = sortedBtree.default;
const EMPTY = Buffer.alloc(0);

/** A tree key: the key's bytes as a latin1 string, whose code units compare as the bytes do. */
const treeKey = (key: Buffer): string => key.toString('latin1');

/** What a read of the newest revision finds in a key range. */
export interface LatestRange {
  /** The KeyValues in key order, at most `limit` of them (none for a count). */
  kvs: KeyValue[];
  /** Every live key of the range, before the limit. */
  count: number;
}

/**
 * The newest version of every live key, in memory and in key order, as of one revision: the durable one
 * clients read at. Reads of that revision in key order (the usual prefix list, a single get) are answered
 * from here, without SQLite's walk of the log (per key an index step, its row and the probe for a newer
 * revision) or a copied Buffer per key and value. The log stays the truth: the index is built from it at
 * start and after a failed commit, and a batch's events move it on once the batch is durable, so it
 * never shows a write a client could not read from the log at the same revision.
 *
 * Memory: one KeyValue per live key, sharing the Buffers its write event carried; what the store holds
 * live is what this holds, as etcd keeps its key index in memory and its values in a mapped file.
 */
export class LatestIndex {
  readonly #tree = new BTree<string, KeyValue>();
  #rev: number;

  /** The index of `kvs` (the live keys, in any order) as of revision `rev`. */
  constructor(kvs: Iterable<KeyValue>, rev: number) {
    for (const kv of kvs) this.#tree.set(treeKey(kv.key), kv);
    this.#rev = rev;
  }

  /** The revision the index shows. */
  get rev(): number {
    return this.#rev;
  }

  /** Live keys held. */
  get size(): number {
    return this.#tree.size;
  }

  /**
   * Move on to revision `rev` with the events of the revisions since (in revision order). Events at or
   * below the index's revision are already in it (a rebuild from the log can run ahead of the batches
   * still waiting for their sync) and are skipped.
   */
  apply(events: readonly Event[], rev: number): void {
    for (const ev of events) {
      if (Number(ev.kv.mod_revision) <= this.#rev) continue;
      if (ev.type === 0) this.#tree.set(treeKey(ev.kv.key), ev.kv);
      else this.#tree.delete(treeKey(ev.kv.key));
    }
    if (rev > this.#rev) this.#rev = rev;
  }

  /**
   * The live keys of `range` in key order: at most `limit` KeyValues (0: no limit; values left out when
   * `keysOnly`, none at all when `countOnly`) and the count of every live key in it.
   */
  range(range: KeyRange, limit: number, keysOnly: boolean, countOnly: boolean): LatestRange {
    if (range.single) {
      const kv = this.#tree.get(treeKey(range.key));
      if (kv === undefined) return { kvs: [], count: 0 };
      return { kvs: countOnly ? [] : [keysOnly ? withoutValue(kv) : kv], count: 1 };
    }
    if (isEmptyRange(range)) return { kvs: [], count: 0 };
    const kvs: KeyValue[] = [];
    const take = countOnly ? 0 : limit > 0 ? limit : Number.POSITIVE_INFINITY;
    let count = 0;
    const visit = (_k: string, kv: KeyValue) => {
      if (count < take) kvs.push(keysOnly ? withoutValue(kv) : kv);
      count++;
    };
    const low = treeKey(range.key);
    if (range.end === null) {
      const high = this.#tree.maxKey();
      if (high !== undefined) this.#tree.forRange(low, high, true, visit);
    } else {
      this.#tree.forRange(low, treeKey(range.end), false, visit);
    }
    return { kvs, count };
  }
}

function withoutValue(kv: KeyValue): KeyValue {
  return { ...kv, value: EMPTY };
}
