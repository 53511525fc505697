import type { Clock, TimerHandle } from '../clock.js';
import type { Logger } from '../log.js';

/** Longest peer-supplied string the tunnel repeats in an error, a close reason or a log line. */
export const MAX_ECHO_CHARS = 64;

/** `s` cut to `max` characters, saying how long it was when it was cut. */
export function clip(s: string, max = MAX_ECHO_CHARS): string {
  return s.length <= max ? s : `${s.slice(0, max)}... (${s.length} chars)`;
}

/**
 * A token bucket on an injected clock: `burst` tokens to start with, refilled at `perSecond`. `take()` is
 * false when the bucket is empty (the caller is over its rate).
 */
export class TokenBucket {
  readonly perSecond: number;
  readonly burst: number;
  readonly #clock: Clock;
  #tokens: number;
  #at: number;

  constructor(clock: Clock, perSecond: number, burst: number) {
    this.#clock = clock;
    this.perSecond = perSecond;
    this.burst = burst;
    this.#tokens = burst;
    this.#at = clock.now();
  }

  take(): boolean {
    const now = this.#clock.now();
    if (now > this.#at) {
      this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#at) * this.perSecond) / 1000);
      this.#at = now;
    }
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

/** Options of a {@link LogSummary}. */
export interface LogSummaryOptions {
  clock: Clock;
  logger: Logger;
  level: 'info' | 'warn';
  /** What is counted, for the summary line ("refused N <what> from <key> in the last 10 s"). */
  what: string;
  /** The field the key goes in on log lines (`node`, `remote`). */
  keyField: string;
  /** Length of one summary window [10 s]. */
  windowMs?: number;
  /** Keys tracked per window; further keys are counted together under `other` [100]. */
  maxKeys?: number;
}

interface KeyState {
  count: number;
  /** The first occurrence's own fields (logged at once), kept for the summary line. */
  first: Record<string, unknown>;
}

/**
 * Turns a flood of identical events into a bounded number of log lines: the first event of each key in a
 * window is logged as it happens (so a one-off refusal still says why, at once), the rest are counted and
 * said in one line when the window ends ("refused 2,999 more connections from 192.0.2.7 in the last 10 s").
 * At most two lines per key per window, and at most `maxKeys` keys.
 */
export class LogSummary {
  readonly #o: Required<LogSummaryOptions>;
  readonly #keys = new Map<string, KeyState>();
  #timer: TimerHandle | undefined;
  #windowStart = 0;

  constructor(o: LogSummaryOptions) {
    this.#o = { windowMs: 10_000, maxKeys: 100, ...o };
  }

  /** Count one event for `key`; `fields` and `msg` describe it (logged when it is the window's first). */
  note(key: string, fields: Record<string, unknown>, msg: string): void {
    if (this.#timer === undefined) {
      this.#windowStart = this.#o.clock.now();
      this.#timer = this.#o.clock.setTimeout(() => this.flush(), this.#o.windowMs);
    }
    const k = this.#keys.has(key) || this.#keys.size < this.#o.maxKeys ? key : 'other';
    const st = this.#keys.get(k);
    if (st !== undefined) {
      st.count++;
      return;
    }
    this.#keys.set(k, { count: 1, first: fields });
    this.#o.logger[this.#o.level]({ ...fields, [this.#o.keyField]: k }, msg);
  }

  /** Log the summary of the window so far and start a new one. */
  flush(): void {
    if (this.#timer !== undefined) this.#o.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    const seconds = Math.round((this.#o.clock.now() - this.#windowStart) / 1000);
    for (const [key, st] of this.#keys) {
      if (st.count < 2) continue;
      this.#o.logger[this.#o.level](
        { ...st.first, [this.#o.keyField]: key, count: st.count - 1 },
        `refused ${st.count - 1} more ${this.#o.what} from ${this.#o.keyField} ${key} in the last ${seconds} s`,
      );
    }
    this.#keys.clear();
  }
}
