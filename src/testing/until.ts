/** Options of {@link until}. */
export interface UntilOptions {
  /** Give up after this long [15 s]. */
  timeoutMs?: number;
  /** Pause between two looks [20 ms]. */
  stepMs?: number;
  /**
   * Treat a throw from the condition as "not yet" and look again (the last error is named in the
   * timeout message); by default a throw ends the wait at once.
   */
  retryErrors?: boolean;
}

/**
 * Poll `fn` until it returns something other than `undefined` or `false`, and resolve to that value.
 * Rejects, naming `what`, when `timeoutMs` has passed without it. For conditions no event reports; a wait
 * for an event should listen for that event instead.
 */
export async function until<T>(
  what: string,
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  opts: UntilOptions = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const stepMs = opts.stepMs ?? 20;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      if (opts.retryErrors !== true) throw err;
      last = err;
    }
    if (Date.now() > deadline) {
      const why = last === undefined ? '' : `: ${String(last)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
