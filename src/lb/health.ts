/**
 * Per-endpoint health checks with keepalived's and HAProxy's knobs: a check every `intervalMs`, failed
 * after `timeoutMs`, `rise` successes in a row to come up, `fall` failures in a row to go down. All timers
 * are on the injected Clock. One check per endpoint is in flight at any time: the next is scheduled only
 * when the last has settled, and the timeout aborts the probe (closing its socket), so a slow or silent
 * endpoint cannot pile up sockets.
 *
 * A new endpoint counts as healthy until its first check settles, and that first result decides at once
 * (rise and fall count from there): a VIP that fails over is served at once instead of after `rise`
 * intervals, and a dead endpoint leaves the rotation after one check rather than `fall`.
 */
import type { Clock, TimerHandle } from '../clock.js';
import type { Probe, ProbeTarget } from './probes.js';

/** The measured state of one endpoint. */
export interface HealthState {
  healthy: boolean;
  /** Why the last check failed (`connect ECONNREFUSED`, `HTTP 503`, `timeout after 1000 ms`). */
  reason?: string;
}

/** Options of {@link HealthChecker}. */
export interface HealthCheckerOptions {
  clock: Clock;
  probe: Probe;
  /** An endpoint went healthy or unhealthy. */
  onChange: (key: string, state: HealthState) => void;
  /** A check failed (counted by the agent's metrics, whether or not the state changed). */
  onFailure?: (key: string, reason: string) => void;
}

interface Entry {
  target: ProbeTarget;
  /** JSON of the target: a changed check restarts the entry. */
  spec: string;
  state: HealthState;
  known: boolean;
  ok: number;
  bad: number;
  timer: TimerHandle | undefined;
  inFlight: AbortController | undefined;
}

/** Runs the checks of a set of endpoints, keyed by the caller (`namespace/name/ip`). */
export class HealthChecker {
  readonly #o: HealthCheckerOptions;
  readonly #entries = new Map<string, Entry>();
  #closed = false;

  constructor(o: HealthCheckerOptions) {
    this.#o = o;
  }

  /** The state of `key`; undefined when it is not checked. */
  state(key: string): HealthState | undefined {
    return this.#entries.get(key)?.state;
  }

  /** Number of endpoints checked. */
  get size(): number {
    return this.#entries.size;
  }

  /** Check exactly these endpoints: new ones start now, gone ones stop, changed ones start over. */
  set(targets: ReadonlyMap<string, ProbeTarget>): void {
    if (this.#closed) return;
    for (const [key, e] of this.#entries) {
      const t = targets.get(key);
      if (t === undefined || JSON.stringify(t) !== e.spec) this.#stop(key, e);
    }
    for (const [key, target] of targets) {
      if (this.#entries.has(key)) continue;
      const e: Entry = {
        target,
        spec: JSON.stringify(target),
        state: { healthy: true },
        known: target.check.type === 'none',
        ok: 0,
        bad: 0,
        timer: undefined,
        inFlight: undefined,
      };
      this.#entries.set(key, e);
      if (target.check.type !== 'none') this.#run(key, e);
    }
  }

  #stop(key: string, e: Entry): void {
    if (e.timer !== undefined) this.#o.clock.clearTimeout(e.timer);
    e.inFlight?.abort();
    this.#entries.delete(key);
  }

  #run(key: string, e: Entry): void {
    const ac = new AbortController();
    e.inFlight = ac;
    e.timer = undefined;
    let timedOut = false;
    const limit = this.#o.clock.setTimeout(() => {
      timedOut = true;
      ac.abort();
    }, e.target.check.timeoutMs);
    const settle = (err: unknown) => {
      this.#o.clock.clearTimeout(limit);
      if (this.#entries.get(key) !== e || e.inFlight !== ac) return; // stopped or restarted meanwhile
      e.inFlight = undefined;
      if (err === undefined) this.#result(key, e, undefined);
      else {
        const reason = timedOut ? `timeout after ${e.target.check.timeoutMs} ms` : (err as Error).message;
        this.#result(key, e, reason);
      }
      e.timer = this.#o.clock.setTimeout(() => this.#run(key, e), e.target.check.intervalMs);
    };
    let p: Promise<void>;
    try {
      p = this.#o.probe(e.target, ac.signal);
    } catch (err) {
      p = Promise.reject(err);
    }
    p.then(
      () => settle(undefined),
      (err: unknown) => settle(err instanceof Error ? err : new Error(String(err))),
    );
  }

  #result(key: string, e: Entry, reason: string | undefined): void {
    const c = e.target.check;
    const was = e.state.healthy;
    if (reason === undefined) {
      e.ok++;
      e.bad = 0;
      if (!e.known || (!was && e.ok >= c.rise)) e.state = { healthy: true };
    } else {
      e.bad++;
      e.ok = 0;
      this.#o.onFailure?.(key, reason);
      if (!e.known || (was && e.bad >= c.fall)) e.state = { healthy: false, reason };
      else if (!was) e.state = { healthy: false, reason };
    }
    e.known = true;
    if (e.state.healthy !== was) this.#o.onChange(key, e.state);
  }

  /** Stop every check (in-flight probes are aborted). */
  close(): void {
    this.#closed = true;
    for (const [key, e] of this.#entries) this.#stop(key, e);
  }
}
