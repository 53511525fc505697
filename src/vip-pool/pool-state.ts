import type { IpFamily } from '../util/ip.js';
import { IntervalSet } from './interval-set.js';
import { type IpRange, usable, usableSize } from './range.js';
import type { AddressPool } from './types.js';

/** One range of a pool: the used offsets and a cursor below which nothing is free. */
export class RangeState {
  /** Used addresses (absolute values) as merged runs: memory grows with allocations, not range size. */
  readonly used = new IntervalSet();
  /** Every address in [range.start, cursor) is used or skipped (.0/.255): the search starts here. */
  private cursor: bigint;

  constructor(
    readonly range: IpRange,
    readonly pool: PoolState,
  ) {
    this.cursor = range.start;
  }

  /** The lowest free address that may be handed out, or undefined when the range is full. */
  lowestFree(): bigint | undefined {
    const avoid = this.pool.pool.avoidBuggyIPs;
    let v = this.used.nextAbsent(this.cursor);
    while (v <= this.range.end && !usable(this.range.family, v, avoid)) v = this.used.nextAbsent(v + 1n);
    // Everything below v is now known to be unavailable, so later searches start there.
    this.cursor = v > this.range.end ? this.range.end + 1n : v;
    return v > this.range.end ? undefined : v;
  }

  /** Mark `v` used. False when it already was. */
  take(v: bigint): boolean {
    return this.used.add(v);
  }

  /** Mark `v` free. False when it was not used. */
  free(v: bigint): boolean {
    if (!this.used.delete(v)) return false;
    if (v < this.cursor) this.cursor = v;
    return true;
  }
}

/** A pool and its ranges' state. */
export class PoolState {
  readonly ranges: RangeState[];

  constructor(
    readonly pool: AddressPool,
    ranges: IpRange[],
  ) {
    this.ranges = ranges.map((r) => new RangeState(r, this));
  }

  get name(): string {
    return this.pool.name;
  }

  /** True when the pool has a range of `family`. */
  has(family: IpFamily): boolean {
    return this.ranges.some((r) => r.range.family === family);
  }

  /** Addresses it can hand out. */
  size(): bigint {
    return this.ranges.reduce((n, r) => n + usableSize(r.range, this.pool.avoidBuggyIPs), 0n);
  }

  /** Addresses in use. */
  used(): bigint {
    return this.ranges.reduce((n, r) => n + r.used.size, 0n);
  }
}

/** Finds the range holding an address: every range of every pool, sorted, binary-searched. */
export class RangeIndex {
  private readonly byFamily = new Map<IpFamily, RangeState[]>();

  constructor(pools: readonly PoolState[]) {
    for (const p of pools) {
      for (const r of p.ranges) {
        const list = this.byFamily.get(r.range.family) ?? [];
        list.push(r);
        this.byFamily.set(r.range.family, list);
      }
    }
    for (const list of this.byFamily.values()) list.sort((a, b) => (a.range.start < b.range.start ? -1 : 1));
  }

  /** The range containing the address, if any (pools never overlap, so there is at most one). */
  find(family: IpFamily, value: bigint): RangeState | undefined {
    const list = this.byFamily.get(family) ?? [];
    let a = 0;
    let b = list.length - 1;
    while (a <= b) {
      const m = (a + b) >>> 1;
      const r = list[m]!.range;
      if (value < r.start) b = m - 1;
      else if (value > r.end) a = m + 1;
      else return list[m];
    }
    return undefined;
  }
}
