import type { Clock, TimerHandle } from '../clock.js';

interface Pending {
  id: number;
  at: number;
  fn: () => void;
}

const before = (a: Pending, b: Pending) => a.at < b.at || (a.at === b.at && a.id < b.id);

/**
 * A manual clock for tests: time moves only when `advance()` is called. Timers sit in a binary heap (a
 * cleared one is dropped when it reaches the top), so tens of thousands of them cost no more than a few.
 */
export class FakeClock implements Clock {
  #now: number;
  #nextId = 1;
  readonly #heap: Pending[] = [];
  /** The timers not yet fired nor cleared. */
  readonly #live = new Set<number>();

  constructor(start = 1_700_000_000_000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = this.#nextId++;
    this.#live.add(id);
    this.#push({ id, at: this.#now + Math.max(0, ms), fn });
    return id as unknown as TimerHandle;
  }

  clearTimeout(handle: TimerHandle): void {
    this.#live.delete(handle as unknown as number);
  }

  /** Number of timers not yet fired. */
  get pending(): number {
    return this.#live.size;
  }

  /** Move time forward by `ms`, firing due timers in order (timers they set are honoured too). */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      const next = this.#heap[0];
      if (next === undefined || next.at > end) break;
      this.#pop();
      if (!this.#live.delete(next.id)) continue;
      this.#now = next.at;
      next.fn();
    }
    this.#now = end;
  }

  #push(p: Pending): void {
    const h = this.#heap;
    h.push(p);
    for (let i = h.length - 1; i > 0; ) {
      const up = (i - 1) >> 1;
      if (!before(h[i]!, h[up]!)) break;
      [h[i], h[up]] = [h[up]!, h[i]!];
      i = up;
    }
  }

  #pop(): void {
    const h = this.#heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      const r = l + 1;
      let min = i;
      if (l < h.length && before(h[l]!, h[min]!)) min = l;
      if (r < h.length && before(h[r]!, h[min]!)) min = r;
      if (min === i) break;
      [h[i], h[min]] = [h[min]!, h[i]!];
      i = min;
    }
  }
}
