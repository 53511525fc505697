/**
 * Claims on a held VIP from MACs that belong to no node of the cluster: a spoofed gratuitous ARP, ARP
 * reply or unsolicited NA. The agent keeps such a VIP and wins the LAN's caches back with an extra
 * gratuitous round; only a claim from a known node's MAC can make it let a VIP go.
 */
import type { Clock, TimerHandle } from '../clock.js';
import type { Logger } from '../log.js';
import { Counter, type Registry } from '../metrics.js';

/** Options of {@link ForeignClaims}. Defaults in brackets. */
interface ForeignClaimsOptions {
  /** Sends one gratuitous round for a held VIP (the announcer's `announce`). */
  announce(vip: string): boolean;
  clock: Clock;
  logger: Logger;
  registry?: Registry;
  /** At most one extra round per VIP this often; a claim inside the interval gets a round at its end [1000 ms]. */
  reannounceMs?: number;
  /** At most one log line per VIP this often, with the count of claims since the last one [60 s]. */
  logEveryMs?: number;
}

interface VipState {
  lastRoundAt: number;
  roundTimer: TimerHandle | undefined;
  lastLogAt: number;
  logTimer: TimerHandle | undefined;
  unlogged: number;
  macs: Set<string>;
}

/** The node MACs the server sent, and what is done about claims from any other MAC. */
export class ForeignClaims {
  readonly #o: ForeignClaimsOptions;
  readonly #reannounceMs: number;
  readonly #logEveryMs: number;
  readonly #counter: Counter<'vip'> | undefined;
  readonly #vips = new Map<string, VipState>();
  #peers: Set<string> | undefined;

  constructor(o: ForeignClaimsOptions) {
    this.#o = o;
    this.#reannounceMs = o.reannounceMs ?? 1000;
    this.#logEveryMs = o.logEveryMs ?? 60_000;
    const name = 'vipmesh_agent_foreign_claims_total';
    this.#counter =
      o.registry === undefined
        ? undefined
        : ((o.registry.getSingleMetric(name) as Counter<'vip'> | undefined) ??
          new Counter({
            name,
            help: 'Claims on a held VIP (gratuitous ARP, ARP reply, NA) from a MAC of no cluster node; the VIP was kept and announced again',
            labelNames: ['vip'],
            registers: [o.registry],
          }));
  }

  /** The MACs of every node's interfaces, as the server pushes them. */
  setPeers(macs: readonly string[]): void {
    this.#peers = new Set(macs.map((m) => m.toLowerCase()));
  }

  /**
   * True when a claim from `mac` may take a VIP from this node: it is a cluster node's MAC, or no list
   * was ever received (a server that does not send one: the behaviour before the list existed).
   */
  trusted(mac: string): boolean {
    return this.#peers === undefined || this.#peers.has(mac.toLowerCase());
  }

  /** Count a claim from a foreign `mac`, announce `vip` again (rate-limited) and log (summarised). */
  foreign(vip: string, mac: string): void {
    const clock = this.#o.clock;
    const now = clock.now();
    let s = this.#vips.get(vip);
    if (s === undefined) {
      s = {
        lastRoundAt: -Infinity,
        roundTimer: undefined,
        lastLogAt: -Infinity,
        logTimer: undefined,
        unlogged: 0,
        macs: new Set(),
      };
      this.#vips.set(vip, s);
    }
    this.#counter?.inc({ vip });
    s.unlogged++;
    s.macs.add(mac);
    const st = s;
    if (now - s.lastLogAt >= this.#logEveryMs) this.#log(vip, st);
    else st.logTimer ??= clock.setTimeout(() => this.#log(vip, st), st.lastLogAt + this.#logEveryMs - now);
    if (s.roundTimer !== undefined) return;
    const round = () => {
      st.roundTimer = undefined;
      st.lastRoundAt = clock.now();
      this.#o.announce(vip);
    };
    const waitMs = s.lastRoundAt + this.#reannounceMs - now;
    if (waitMs <= 0) round();
    else s.roundTimer = clock.setTimeout(round, waitMs);
  }

  #log(vip: string, s: VipState): void {
    if (s.logTimer !== undefined) this.#o.clock.clearTimeout(s.logTimer);
    s.logTimer = undefined;
    if (s.unlogged === 0) return;
    const first = s.lastLogAt === -Infinity;
    this.#o.logger.warn(
      { vip, claims: s.unlogged, macs: [...s.macs] },
      first
        ? 'a MAC of no cluster node claims a VIP we hold; keeping it and announcing it again'
        : 'more claims on a VIP we hold from MACs of no cluster node; kept it and announced it again',
    );
    s.lastLogAt = this.#o.clock.now();
    s.unlogged = 0;
    s.macs.clear();
  }

  /** Forget `vip` (released): no pending round or log line for it. */
  forget(vip: string): void {
    const s = this.#vips.get(vip);
    if (s === undefined) return;
    this.#log(vip, s);
    if (s.roundTimer !== undefined) this.#o.clock.clearTimeout(s.roundTimer);
    this.#vips.delete(vip);
  }

  /** Stop every pending round and log line. */
  close(): void {
    for (const vip of [...this.#vips.keys()]) this.forget(vip);
  }
}
