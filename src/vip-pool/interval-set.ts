/**
 * A set of bigint values kept as sorted, merged, disjoint intervals [lo, hi]. It is how the allocator
 * remembers used addresses without enumerating a pool: memory grows with the number of runs of used
 * addresses, never with the size of the pool (an IPv6 /64 costs what a /24 costs).
 * Lookups are binary searches; inserting in the middle splices two small arrays.
 */
export class IntervalSet {
  private readonly lo: bigint[] = [];
  private readonly hi: bigint[] = [];
  private count = 0n;

  /** Number of values in the set. */
  get size(): bigint {
    return this.count;
  }

  /** Number of intervals (runs) held: the memory cost. */
  get runs(): number {
    return this.lo.length;
  }

  /** Index of the last interval whose lo <= x, or -1. */
  private floor(x: bigint): number {
    let a = 0;
    let b = this.lo.length - 1;
    let found = -1;
    while (a <= b) {
      const m = (a + b) >>> 1;
      if (this.lo[m]! <= x) {
        found = m;
        a = m + 1;
      } else {
        b = m - 1;
      }
    }
    return found;
  }

  /** True when x is in the set. */
  has(x: bigint): boolean {
    const i = this.floor(x);
    return i >= 0 && x <= this.hi[i]!;
  }

  /** Add x; false when it was already there. */
  add(x: bigint): boolean {
    const i = this.floor(x);
    if (i >= 0 && x <= this.hi[i]!) return false;
    const joinLeft = i >= 0 && this.hi[i]! === x - 1n;
    const joinRight = i + 1 < this.lo.length && this.lo[i + 1]! === x + 1n;
    if (joinLeft && joinRight) {
      this.hi[i] = this.hi[i + 1]!;
      this.lo.splice(i + 1, 1);
      this.hi.splice(i + 1, 1);
    } else if (joinLeft) {
      this.hi[i] = x;
    } else if (joinRight) {
      this.lo[i + 1] = x;
    } else {
      this.lo.splice(i + 1, 0, x);
      this.hi.splice(i + 1, 0, x);
    }
    this.count += 1n;
    return true;
  }

  /** Remove x; false when it was not there. */
  delete(x: bigint): boolean {
    const i = this.floor(x);
    if (i < 0 || x > this.hi[i]!) return false;
    const lo = this.lo[i]!;
    const hi = this.hi[i]!;
    if (lo === hi) {
      this.lo.splice(i, 1);
      this.hi.splice(i, 1);
    } else if (x === lo) {
      this.lo[i] = x + 1n;
    } else if (x === hi) {
      this.hi[i] = x - 1n;
    } else {
      this.hi[i] = x - 1n;
      this.lo.splice(i + 1, 0, x + 1n);
      this.hi.splice(i + 1, 0, hi);
    }
    this.count -= 1n;
    return true;
  }

  /** The smallest value >= x that is not in the set. */
  nextAbsent(x: bigint): bigint {
    const i = this.floor(x);
    return i >= 0 && x <= this.hi[i]! ? this.hi[i]! + 1n : x;
  }

  /** Every value, ascending (for tests and small sets only). */
  *values(): IterableIterator<bigint> {
    for (let i = 0; i < this.lo.length; i++) {
      for (let v = this.lo[i]!; v <= this.hi[i]!; v++) yield v;
    }
  }
}
