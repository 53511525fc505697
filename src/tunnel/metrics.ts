import { Counter, Gauge, Histogram, type Registry } from '../metrics.js';
import type { LivenessCounts } from './liveness.js';

/** Why a session was cut: its send queue went over the cap, its peer over a rate limit, or silent to pings. */
export type CutReason = 'send-queue' | 'rate-limit' | 'unresponsive';
const CUT_REASONS: CutReason[] = ['send-queue', 'rate-limit', 'unresponsive'];

/** Every TunnelMetrics on a registry: the collectors sum them. */
const byRegistry = new WeakMap<Registry, Set<TunnelMetrics>>();

/**
 * The tunnel's metrics (`vipmesh_tunnel_*`), labelled by `role` (server or agent). The hot path adds to plain
 * numbers; the counters read them when scraped, so a DATA frame costs no label lookup. A server and an agent
 * in one process (tests, bench) share the registered metrics.
 */
export class TunnelMetrics {
  readonly role: 'server' | 'agent';
  sessions = 0;
  streamsOpen = 0;
  bytesIn = 0;
  bytesOut = 0;
  reconnects = 0;
  authFailures = 0;
  /** Streams the peer asked for and this side refused (allow-list, bad target, too many). */
  streamsRefused = 0;
  /** Sessions this side cut because the peer misbehaved, by reason. */
  readonly cuts: Record<CutReason, number> = { 'send-queue': 0, 'rate-limit': 0, unresponsive: 0 };
  /** The most bytes any session of this side has had queued towards its peer. */
  sendQueuePeakBytes = 0;
  /** Server: connections refused because their node already has a live session. Agent: times refused so. */
  conflicts = 0;
  /** The liveness datagrams' counts, when this side has a hub. */
  liveness: (() => LivenessCounts) | undefined;
  readonly rtt: Histogram<'role'>;

  constructor(registry: Registry, role: 'server' | 'agent') {
    this.role = role;
    let all = byRegistry.get(registry);
    if (all === undefined) {
      all = new Set();
      byRegistry.set(registry, all);
    }
    all.add(this);
    const sum = (role: string, pick: (m: TunnelMetrics) => number) =>
      [...all!].filter((m) => m.role === role).reduce((a, m) => a + pick(m), 0);
    const most = (role: string, pick: (m: TunnelMetrics) => number) =>
      [...all!].filter((m) => m.role === role).reduce((a, m) => Math.max(a, pick(m)), 0);
    const gauge = (name: string, help: string, pick: (m: TunnelMetrics) => number, agg = sum) => {
      if (registry.getSingleMetric(name) !== undefined) return;
      new Gauge({
        name,
        help,
        labelNames: ['role'],
        registers: [registry],
        collect() {
          for (const r of ['server', 'agent']) this.set({ role: r }, agg(r, pick));
        },
      });
    };
    const counter = (name: string, help: string, pick: (m: TunnelMetrics) => number) => {
      if (registry.getSingleMetric(name) !== undefined) return;
      new Counter({
        name,
        help,
        labelNames: ['role'],
        registers: [registry],
        collect() {
          this.reset();
          for (const r of ['server', 'agent']) this.inc({ role: r }, sum(r, pick));
        },
      });
    };
    gauge('vipmesh_tunnel_sessions', 'Tunnel sessions up', (m) => m.sessions);
    gauge('vipmesh_tunnel_streams_open', 'Streams open through the tunnel', (m) => m.streamsOpen);
    counter('vipmesh_tunnel_bytes_in_total', 'Frame bytes received', (m) => m.bytesIn);
    counter('vipmesh_tunnel_bytes_out_total', 'Frame bytes sent', (m) => m.bytesOut);
    counter('vipmesh_tunnel_reconnects_total', 'Agent reconnects after a lost session', (m) => m.reconnects);
    counter('vipmesh_tunnel_auth_failures_total', 'Refused tunnel connections', (m) => m.authFailures);
    counter(
      'vipmesh_tunnel_streams_refused_total',
      'Streams the peer asked for and this side refused',
      (m) => m.streamsRefused,
    );
    gauge(
      'vipmesh_tunnel_send_queue_peak_bytes',
      'Most bytes a session has had queued towards its peer',
      (m) => m.sendQueuePeakBytes,
      most,
    );
    if (registry.getSingleMetric('vipmesh_tunnel_sessions_cut_total') === undefined) {
      new Counter({
        name: 'vipmesh_tunnel_sessions_cut_total',
        help: 'Sessions cut because the peer did not read, went over a rate limit or stopped answering heartbeats',
        labelNames: ['role', 'reason'],
        registers: [registry],
        collect() {
          this.reset();
          for (const r of ['server', 'agent']) {
            for (const reason of CUT_REASONS)
              this.inc(
                { role: r, reason },
                sum(r, (m) => m.cuts[reason]),
              );
          }
        },
      });
    }
    counter(
      'vipmesh_tunnel_session_conflicts_total',
      'Tunnel connections refused because their node already had a live session',
      (m) => m.conflicts,
    );
    counter(
      'vipmesh_tunnel_liveness_datagrams_total',
      'Liveness datagrams that verified and counted',
      (m) => m.liveness?.().received ?? 0,
    );
    counter(
      'vipmesh_tunnel_liveness_rejected_total',
      'Liveness datagrams dropped: malformed, for no session, a bad tag, or replayed',
      (m) => m.liveness?.().rejected ?? 0,
    );
    counter(
      'vipmesh_tunnel_liveness_long_silences_total',
      'Liveness datagrams that counted after a silence longer than half the bound (one lost or late)',
      (m) => m.liveness?.().longSilences ?? 0,
    );
    gauge(
      'vipmesh_tunnel_liveness_longest_silence_seconds',
      'Longest silence of a peer that then was heard from, since the start (the bound is interval x lost-after)',
      (m) => (m.liveness?.().longestSilenceMs ?? 0) / 1000,
      most,
    );
    gauge(
      'vipmesh_tunnel_liveness_thread_late_wake_seconds',
      'Longest time the liveness thread woke after a ping or a deadline was due, since the start (the host did not run it)',
      (m) => (m.liveness?.().lateWakeMs ?? 0) / 1000,
      most,
    );
    gauge(
      'vipmesh_tunnel_liveness_thread_busy_seconds',
      'Longest time the liveness thread took from waking to waiting again, since the start (a page fault or a lock held it)',
      (m) => (m.liveness?.().busyMs ?? 0) / 1000,
      most,
    );
    counter(
      'vipmesh_tunnel_liveness_thread_major_faults_total',
      'Major page faults the liveness thread took: its code or data read back from disk',
      (m) => m.liveness?.().majorFaults ?? 0,
    );
    const name = 'vipmesh_tunnel_heartbeat_rtt_seconds';
    this.rtt =
      (registry.getSingleMetric(name) as Histogram<'role'> | undefined) ??
      new Histogram({
        name,
        help: 'Heartbeat round-trip time',
        labelNames: ['role'],
        buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
        registers: [registry],
      });
  }
}
