import type { LiveRow } from './dialect.js';
import type { KeyValue } from './types.js';

const EMPTY = Buffer.alloc(0);

/** A key range as etcd defines it: one key, [key, end), or every key >= key (`end` null, `single` false). */
export interface KeyRange {
  key: Buffer;
  end: Buffer | null;
  single: boolean;
}

/** Decode etcd's (key, range_end) pair: empty range_end = one key, "\0" = from key on, else [key, end). */
export function keyRange(key: Buffer, rangeEnd: Buffer | undefined | null): KeyRange {
  if (rangeEnd === undefined || rangeEnd === null || rangeEnd.length === 0) {
    return { key, end: null, single: true };
  }
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return { key, end: null, single: false };
  return { key, end: rangeEnd, single: false };
}

/** True when `range` holds no key at all (an end at or below the start). */
export function isEmptyRange(range: KeyRange): boolean {
  return !range.single && range.end !== null && Buffer.compare(range.end, range.key) <= 0;
}

/** True when `name` lies in `range`. */
export function inRange(range: KeyRange, name: Buffer): boolean {
  if (range.single) return name.equals(range.key);
  if (Buffer.compare(name, range.key) < 0) return false;
  return range.end === null || Buffer.compare(name, range.end) < 0;
}

/** True when two ranges share a key. */
export function overlaps(a: KeyRange, b: KeyRange): boolean {
  if (isEmptyRange(a) || isEmptyRange(b)) return false;
  if (a.single) return inRange(b, a.key);
  if (b.single) return inRange(a, b.key);
  const aBeforeB = a.end !== null && Buffer.compare(a.end, b.key) <= 0;
  const bBeforeA = b.end !== null && Buffer.compare(b.end, a.key) <= 0;
  return !aBeforeB && !bBeforeA;
}

/** The etcd KeyValue of a live row (value dropped when `keysOnly`). */
export function toKv(row: LiveRow, keysOnly = false): KeyValue {
  return {
    key: row.name,
    create_revision: row.create_revision,
    mod_revision: row.revision,
    version: row.version,
    value: keysOnly || row.value === null ? EMPTY : row.value,
    lease: row.lease,
  };
}

/** The KeyValue etcd puts in a DELETE event: the key and the deletion revision, nothing else. */
export function tombstoneKv(name: Buffer, revision: number): KeyValue {
  return { key: name, create_revision: 0, mod_revision: revision, version: 0, value: EMPTY, lease: 0 };
}

/** The prefix range end etcd clients compute (`--prefix`): the key with its last non-0xff byte + 1. */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i] = end[i]! + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}
