import { Codes } from './codes.js';
import { type IpRange, isEntryError, parseAddressEntry, usableSize } from './range.js';
import type { AddressPool } from './types.js';

/** A pool with its entries parsed. */
interface CompiledPool {
  pool: AddressPool;
  ranges: IpRange[];
}

/** A problem with the set of pools; `pool` and `entry` index into the input. */
interface PoolSetProblem {
  code: string;
  message: string;
  pool: number;
  entry?: number;
}

/** Parse every pool's entries (unparseable entries become problems and are left out). */
export function compilePools(pools: readonly AddressPool[]): {
  compiled: CompiledPool[];
  problems: PoolSetProblem[];
} {
  const problems: PoolSetProblem[] = [];
  const compiled = pools.map((pool, p) => {
    const ranges: IpRange[] = [];
    pool.addresses.forEach((text, entry) => {
      const e = parseAddressEntry(text);
      if (isEntryError(e)) problems.push({ code: e.code, message: e.message, pool: p, entry });
      else ranges.push(e.range);
    });
    return { pool, ranges };
  });
  return { compiled, problems };
}

/**
 * What makes a set of pools unusable together: unparseable entries, duplicate names, and addresses in
 * two pools (or twice in one). O(n log n) in the number of entries; pool sizes do not matter.
 */
export function poolSetProblems(pools: readonly AddressPool[]): PoolSetProblem[] {
  const { problems } = compilePools(pools);
  const firstByName = new Map<string, number>();
  pools.forEach((pool, p) => {
    const first = firstByName.get(pool.name);
    if (first === undefined) firstByName.set(pool.name, p);
    else
      problems.push({
        code: Codes.POOL_DUPLICATE,
        message: `another pool is already named ${pool.name}`,
        pool: p,
      });
  });
  const all: Array<{ range: IpRange; pool: number; entry: number }> = [];
  pools.forEach((pool, p) => {
    pool.addresses.forEach((text, entry) => {
      const e = parseAddressEntry(text);
      if (!isEntryError(e)) all.push({ range: e.range, pool: p, entry });
    });
  });
  all.sort((a, b) =>
    a.range.family !== b.range.family
      ? a.range.family < b.range.family
        ? -1
        : 1
      : a.range.start < b.range.start
        ? -1
        : a.range.start > b.range.start
          ? 1
          : a.pool - b.pool || a.entry - b.entry,
  );
  let widest: (typeof all)[number] | undefined;
  for (const cur of all) {
    if (
      widest !== undefined &&
      widest.range.family === cur.range.family &&
      cur.range.start <= widest.range.end
    ) {
      const other = pools[widest.pool]!.name;
      const where = widest.pool === cur.pool ? `another entry of pool ${other}` : `pool ${other}`;
      problems.push({
        code: Codes.POOL_OVERLAP,
        message: `${pools[cur.pool]!.addresses[cur.entry]} overlaps ${where} (${pools[widest.pool]!.addresses[widest.entry]})`,
        pool: cur.pool,
        entry: cur.entry,
      });
    }
    if (
      widest === undefined ||
      widest.range.family !== cur.range.family ||
      cur.range.end > widest.range.end
    ) {
      widest = cur;
    }
  }
  return problems;
}

/** Addresses the pool can hand out (without .0/.255 when avoidBuggyIPs). */
export function poolSize(pool: AddressPool): bigint {
  const { compiled } = compilePools([pool]);
  return compiled[0]!.ranges.reduce((n, r) => n + usableSize(r, pool.avoidBuggyIPs), 0n);
}
