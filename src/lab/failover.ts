/**
 * Failover measurement in a lab: a prober in the client namespace connects to a VIP every few
 * milliseconds; `measureCut()` pulls the holder's cable and returns how long the client was without
 * service (from the cut to the first answer, from another node, to an attempt started after the cut).
 * Used by `vipmesh demo` and bench/failover.ts, for vipmesh and for keepalived alike.
 */
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Lab } from './index.js';
import { labScript } from './scripts.js';

/** One connection attempt of the prober. */
interface ProbeLine {
  /** When the attempt started (epoch ms, sub-ms precision). */
  t: number;
  ok: boolean;
  /** The node that answered. */
  from?: string;
  /** Why an attempt failed: `timeout`, an errno code (`ECONNRESET`), ... */
  why?: string;
}

/** Epoch milliseconds with sub-millisecond precision (the prober uses the same clock). */
export function preciseNow(): number {
  return performance.timeOrigin + performance.now();
}

/** Start the name server (answers its node name on TCP and UDP `port`) in node `name`. */
export function startNameServer(lab: Lab, name: string, port = 8080): Promise<ChildProcess> {
  const child = lab.spawn(name, [...labScript('name-server'), name, String(port)]);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`name server on ${name} did not start`)), 15_000);
    child.stdout?.once('data', () => {
      clearTimeout(timer);
      resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`name server on ${name} exited (${code})`)));
  });
}

/** A running prober: its lines, and waits on them. */
export class Prober {
  readonly lines: ProbeLine[] = [];
  readonly #child: ChildProcess;
  readonly #waiters = new Set<() => void>();

  constructor(lab: Lab, client: string, target: string, port = 8080, intervalMs = 5) {
    this.#child = lab.spawn(client, [...labScript('prober'), target, String(port), String(intervalMs)]);
    const rl = createInterface({ input: this.#child.stdout! });
    rl.on('line', (line) => {
      try {
        this.lines.push(JSON.parse(line) as ProbeLine);
      } catch {
        return;
      }
      for (const w of this.#waiters) w();
    });
  }

  /** Resolve with the first line (at or after index `from`) matching `pred`; reject after `timeoutMs`. */
  waitFor(pred: (l: ProbeLine) => boolean, timeoutMs: number, from = 0): Promise<ProbeLine> {
    return new Promise((resolve, reject) => {
      let i = from;
      const check = (): void => {
        for (; i < this.lines.length; i++) {
          const l = this.lines[i]!;
          if (pred(l)) {
            cleanup();
            resolve(l);
            return;
          }
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`prober: no matching answer within ${timeoutMs} ms`));
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }

  /** Wait until `quietMs` of consecutive successful answers all came from one node; return that node. */
  async stable(quietMs: number, timeoutMs: number): Promise<string> {
    const deadline = preciseNow() + timeoutMs;
    for (;;) {
      if (preciseNow() > deadline) throw new Error(`prober: service not stable for ${quietMs} ms`);
      const first = await this.waitFor((l) => l.ok, Math.max(1, deadline - preciseNow()), this.lines.length);
      const start = first.t;
      let holder = first.from;
      let idx = this.lines.length;
      let broken = false;
      while (!broken && preciseNow() - start < quietMs) {
        await new Promise((r) => setTimeout(r, 20));
        for (; idx < this.lines.length; idx++) {
          const l = this.lines[idx]!;
          if (!l.ok || l.from !== holder) {
            broken = true;
            holder = undefined;
            break;
          }
        }
      }
      if (!broken && holder !== undefined) return holder;
    }
  }

  stop(): void {
    this.#child.kill('SIGKILL');
  }
}

/** The outcome of one planned hand-over. */
interface HandoverResult {
  victim: string;
  newHolder: string;
  /** The longest time between two answered attempts, from the signal to well after the exit. */
  gapMs: number;
  /** Attempts started in that window that got no answer. */
  failed: number;
  /** When they started, in ms after the signal, and why they failed. */
  failures: Array<{ atMs: number; why: string }>;
  /** The longest time between two answered attempts in the second before the signal (the client's own noise). */
  quietGapMs: number;
  /** From the signal to the victim's exit. */
  stopMs: number;
}

/** After the victim exits, attempts this much later still count (a late release would show there). */
const AFTER_EXIT_MS = 500;

/**
 * SIGTERM the agent of the node currently answering (`stop` sends the signal and resolves at its exit)
 * and measure what the client saw: the longest stretch without an answer and the attempts that failed,
 * from the signal until {@link AFTER_EXIT_MS} after the exit. The agent stays stopped.
 */
export async function measureHandover(
  prober: Prober,
  stop: (victim: string) => Promise<unknown>,
  timeoutMs = 30_000,
): Promise<HandoverResult> {
  const last = await prober.waitFor((l) => l.ok, timeoutMs, Math.max(0, prober.lines.length - 1));
  const victim = last.from!;
  const mark = prober.lines.length;
  const stopAt = preciseNow();
  await stop(victim);
  const exitAt = preciseNow();
  const end = exitAt + AFTER_EXIT_MS;
  // Every attempt started before `end` has finished (timed out or not) once one started a timeout later is in.
  const after = await prober.waitFor((l) => l.ok && l.from !== victim && l.t >= end + 250, timeoutMs, mark);
  const lines = [...prober.lines].sort((a, b) => a.t - b.t);
  const longestGap = (from: number, to: number): number => {
    const answered = lines.filter((l) => l.ok && l.t >= from && l.t <= to).map((l) => l.t);
    let gap = 0;
    for (let i = 1; i < answered.length; i++) gap = Math.max(gap, answered[i]! - answered[i - 1]!);
    return gap;
  };
  const failures = lines
    .filter((l) => !l.ok && l.t >= stopAt && l.t <= end)
    .map((l) => ({ atMs: l.t - stopAt, why: l.why ?? '?' }));
  return {
    victim,
    newHolder: after.from!,
    // From the last answer before the signal.
    gapMs: longestGap(stopAt - 50, end),
    failed: failures.length,
    failures,
    quietGapMs: longestGap(stopAt - 1000, stopAt),
    stopMs: exitAt - stopAt,
  };
}

/** The outcome of one cut. */
interface CutResult {
  /** The node whose cable was pulled. */
  victim: string;
  /** The node that answered afterwards. */
  newHolder: string;
  /** Milliseconds the client was without service. */
  outageMs: number;
}

/**
 * Pull the cable of the node currently answering, wait for another node to answer an attempt that
 * started after the cut, and return the outage. The cable stays pulled; the caller restores it.
 */
export async function measureCut(lab: Lab, prober: Prober, timeoutMs = 20_000): Promise<CutResult> {
  const last = await prober.waitFor((l) => l.ok, timeoutMs, Math.max(0, prober.lines.length - 1));
  const victim = last.from!;
  const mark = prober.lines.length;
  const cutAt = preciseNow();
  await lab.cut(victim);
  const answer = await prober.waitFor((l) => l.ok && l.t >= cutAt && l.from !== victim, timeoutMs, mark);
  return { victim, newHolder: answer.from!, outageMs: answer.t - cutAt };
}

/** Median and p99 (nearest rank) of a sample. */
export function summarize(samples: number[]): {
  n: number;
  median: number;
  p99: number;
  min: number;
  max: number;
} {
  const s = [...samples].sort((a, b) => a - b);
  const rank = (p: number): number => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
  return { n: s.length, median: rank(0.5), p99: rank(0.99), min: s[0]!, max: s[s.length - 1]! };
}
