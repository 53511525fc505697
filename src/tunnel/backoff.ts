/** Options of {@link Backoff}. Defaults in brackets. */
interface BackoffOptions {
  /** Upper end of the first delay [100 ms]: the first retry comes within it. */
  baseMs?: number | undefined;
  /** Longest delay [5 s]. */
  capMs?: number | undefined;
  /** Uniform random in [0, 1) [Math.random]; injected so tests are exact. */
  random?: (() => number) | undefined;
}

/**
 * Capped exponential backoff with "equal jitter": delay n is uniform in [c/2, c) where
 * c = min(cap, base * 2^n). Half the window keeps agents that lost the server at the same moment from
 * coming back in lockstep; the other half keeps the first retry from being 0 ms (a tight loop when the
 * failure is immediate).
 */
export class Backoff {
  readonly #base: number;
  readonly #cap: number;
  readonly #random: () => number;
  #n = 0;

  constructor(o: BackoffOptions = {}) {
    this.#base = o.baseMs ?? 100;
    this.#cap = o.capMs ?? 5000;
    this.#random = o.random ?? Math.random;
  }

  /** Failures counted since the last reset. */
  get attempts(): number {
    return this.#n;
  }

  /** The delay before the next attempt; counts a failure when `escalate` [true]. */
  next(escalate = true): number {
    const c = Math.min(this.#cap, this.#base * 2 ** Math.min(this.#n, 30));
    if (escalate) this.#n++;
    return c / 2 + (this.#random() * c) / 2;
  }

  /** Back to the first delay (after a session came up). */
  reset(): void {
    this.#n = 0;
  }
}
