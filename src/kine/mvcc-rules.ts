/**
 * etcd's rules for txn compares, range sorting and duplicate keys in a txn branch: pure functions over
 * rows and requests, used by the log.
 */
import type { LiveRow } from './dialect.js';
import { etcdErrors } from './errors.js';
import { type KeyRange, keyRange, overlaps } from './keys.js';
import {
  type Compare,
  CompareResult,
  CompareTarget,
  type RequestOp,
  SortOrder,
  SortTarget,
} from './types.js';

/** Whether `row` (undefined: the key is absent) satisfies the txn compare `c`, as etcd decides it. */
export function compareRow(c: Compare, row: LiveRow | undefined): boolean {
  let r: number;
  switch (c.target) {
    case CompareTarget.VALUE:
      r = Buffer.compare(row?.value ?? Buffer.alloc(0), c.value ?? Buffer.alloc(0));
      break;
    case CompareTarget.CREATE:
      r = Math.sign((row?.create_revision ?? 0) - Number(c.create_revision ?? 0));
      break;
    case CompareTarget.MOD:
      r = Math.sign((row?.revision ?? 0) - Number(c.mod_revision ?? 0));
      break;
    case CompareTarget.LEASE:
      r = Math.sign((row?.lease ?? 0) - Number(c.lease ?? 0));
      break;
    default:
      r = Math.sign((row?.version ?? 0) - Number(c.version ?? 0));
  }
  switch (c.result) {
    case CompareResult.EQUAL:
      return r === 0;
    case CompareResult.GREATER:
      return r > 0;
    case CompareResult.LESS:
      return r < 0;
    case CompareResult.NOT_EQUAL:
      return r !== 0;
    default:
      return false;
  }
}

/** Sort range results in place by `target`, ascending or descending (etcd's sort options). */
export function sortRows(rows: LiveRow[], order: number, target: number): void {
  const key = (r: LiveRow): number | Buffer => {
    switch (target) {
      case SortTarget.VERSION:
        return r.version;
      case SortTarget.CREATE:
        return r.create_revision;
      case SortTarget.MOD:
        return r.revision;
      case SortTarget.VALUE:
        return r.value ?? Buffer.alloc(0);
      default:
        return r.name;
    }
  };
  const dir = order === SortOrder.DESCEND ? -1 : 1;
  // Array.prototype.sort is stable: ties keep key order, as etcd's sort.Stable does.
  rows.sort((a, b) => {
    const x = key(a);
    const y = key(b);
    const c = typeof x === 'number' ? x - (y as number) : Buffer.compare(x, y as Buffer);
    return dir * c;
  });
}

/** etcd refuses a txn branch that writes one key twice (puts, or a put inside a deleted range). */
export function checkDuplicates(ops: RequestOp[]): void {
  const puts: KeyRange[] = [];
  const dels: KeyRange[] = [];
  const collect = (list: RequestOp[]) => {
    for (const op of list) {
      if (op.request_put) {
        const r = keyRange(op.request_put.key, null);
        if (puts.some((p) => p.key.equals(r.key))) throw etcdErrors.duplicateKey();
        puts.push(r);
      } else if (op.request_delete_range) {
        dels.push(keyRange(op.request_delete_range.key, op.request_delete_range.range_end));
      }
    }
  };
  collect(ops);
  for (const d of dels) for (const p of puts) if (overlaps(d, p)) throw etcdErrors.duplicateKey();
}
