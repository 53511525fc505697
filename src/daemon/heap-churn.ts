import { type Clock, systemClock, type TimerHandle } from '../clock.js';

/** The environment variable that turns the churn on in a daemon: megabytes of garbage per second. */
export const HEAP_CHURN_ENV = 'VIPMESH_DEBUG_HEAP_CHURN';

/** Options of {@link startHeapChurn}. Defaults in brackets. */
export interface HeapChurnOptions {
  /** Megabytes (2^20 bytes, estimated) allocated per second. */
  mbPerSecond: number;
  /** How often a slice is allocated [20 ms]. */
  tickMs?: number;
  /**
   * How long each slice is kept before it is dropped [1 s]. Garbage that dies young is swept by cheap
   * scavenges; kept this long it is promoted, so the old generation fills and mark-compact runs too, which
   * is what stalls a daemon's event loop.
   */
  retainMs?: number;
  clock?: Clock;
}

/** A running churn. */
export interface HeapChurn {
  /** Slices allocated so far. */
  readonly slices: number;
  /** Stop allocating and drop what is kept. */
  stop(): void;
}

/** Rough size of one `{ i, s, next }` object on a 64-bit V8 with pointer compression, bytes. */
const OBJECT_BYTES = 32;

/**
 * A debug knob for soak tests: allocate and drop garbage on a timer, so a daemon's event loop sees the
 * garbage-collection pauses of a busy heap. Off unless a daemon is started with {@link HEAP_CHURN_ENV}.
 */
export function startHeapChurn(o: HeapChurnOptions): HeapChurn {
  const clock = o.clock ?? systemClock;
  const tickMs = o.tickMs ?? 20;
  const keepSlices = Math.max(1, Math.round((o.retainMs ?? 1000) / tickMs));
  const perSlice = Math.max(1, Math.round((o.mbPerSecond * 2 ** 20 * tickMs) / 1000 / OBJECT_BYTES));
  const kept: unknown[] = [];
  let slices = 0;
  let timer: TimerHandle | undefined;
  const tick = (): void => {
    // A linked list of small objects: the collector has to trace every one of them.
    let head: { i: number; s: string; next: unknown } | undefined;
    for (let i = 0; i < perSlice; i++) head = { i, s: i % 64 === 0 ? `churn-${i}` : '', next: head };
    kept.push(head);
    if (kept.length > keepSlices) kept.shift();
    slices++;
    timer = clock.setTimeout(tick, tickMs);
  };
  timer = clock.setTimeout(tick, tickMs);
  return {
    get slices() {
      return slices;
    },
    stop() {
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
      kept.length = 0;
    },
  };
}

/**
 * Start the churn when `env` asks for it (`VIPMESH_DEBUG_HEAP_CHURN=MB/s`, a positive number); undefined
 * when it is unset or not a positive number.
 */
export function heapChurnFromEnv(env: NodeJS.ProcessEnv, clock?: Clock): HeapChurn | undefined {
  const raw = env[HEAP_CHURN_ENV];
  if (raw === undefined || raw === '') return undefined;
  const mbPerSecond = Number(raw);
  if (!Number.isFinite(mbPerSecond) || mbPerSecond <= 0) return undefined;
  return startHeapChurn({ mbPerSecond, ...(clock === undefined ? {} : { clock }) });
}
