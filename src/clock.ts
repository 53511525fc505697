/**
 * Time, injected wherever it decides behaviour (GARP repeats, heartbeats, lease expiry, backoff, retries),
 * so that tests can move it by hand instead of waiting. Production code uses {@link systemClock}; tests use
 * FakeClock from src/testing/fake-clock.ts.
 */
export interface Clock {
  /** Milliseconds since the epoch (may be fractional on a fake clock). */
  now(): number;
  /** Call `fn` once, `ms` milliseconds from now. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Cancel a timer that has not fired (a fired or cleared one is ignored). */
  clearTimeout(handle: TimerHandle): void;
}

/** Opaque timer handle. */
export type TimerHandle = { readonly __timer: unique symbol } | NodeJS.Timeout;

/** The real clock. Timers are unref'd so they never keep a process alive on their own. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
};
