import { randomBytes } from 'node:crypto';
import { VipmeshError } from '../errors.js';
import { type Logger, silentLogger } from '../log.js';
import { nativeAddon } from '../util/native-addon.js';

/**
 * Liveness datagrams: the fast half of telling a dead node from a busy one.
 *
 * A session's heartbeats travel inside the tunnel and are sent, read and judged by the event loop, so a
 * long garbage collection or a starved loop on either side looks exactly like a dead peer. These datagrams
 * are sent, read and judged by a native thread of each side instead, outside V8: neither the event loop nor a
 * garbage collection stops it. While they flow, a peer is
 * declared lost only after `deadAfterMs` without one, and the tunnel's own heartbeats are held to a much
 * longer bound (a wedged event loop is still found, just not mistaken for a cut cable).
 *
 * The server grants each session a random 8-byte id and a 32-byte key in its welcome (over TLS). The agent
 * sends a ping every `intervalMs` to the server's tunnel address, on the server's UDP port of the same
 * number as its HTTPS port; the server's thread answers each with an ack. Both are 40 bytes:
 *
 *     0  "VMLV"  4  version (1)  5  kind (1 ping, 2 ack)  6  0 0
 *     8  session id (8 bytes)   16  counter (uint64, big-endian)
 *     24 HMAC-SHA256(key, bytes 0-23), first 16 bytes
 *
 * A datagram counts only when its tag verifies and its counter is above the last one counted (an ack's no
 * higher than the last ping sent), so neither a forged nor a replayed datagram keeps a dead node alive.
 * Each side arms only after the first datagram that counts: where UDP does not get through, the session
 * stays on its tunnel heartbeats alone, as before.
 */
/** What the server grants a session in its welcome, for the agent's pings. */
export interface LivenessGrant {
  /** The server's UDP port. */
  port: number;
  /** The session's id, 16 hex digits. */
  id: string;
  /** The session's key, base64 of 32 bytes. */
  key: string;
  /** How often the agent pings, in ms. */
  intervalMs: number;
  /** Silence after which either side declares the other lost, in ms. */
  deadAfterMs: number;
}

/** What a session is told by its hub. */
export interface LivenessPeer {
  /** The first datagram from the peer that counts has arrived. */
  armed(): void;
  /** Armed, and then nothing that counts for `silentMs`; or the hub itself failed (`silentMs` NaN). */
  lost(silentMs: number): void;
}

/** One session's datagrams: stop them with `drop` when the session ends. */
export interface LivenessLink {
  drop(): void;
}

/** Datagrams counted by a hub's thread. */
export interface LivenessCounts {
  /** Datagrams that verified and counted. */
  received: number;
  /** Datagrams dropped: malformed, unknown session, bad tag, replayed. */
  rejected: number;
  sent: number;
  /**
   * The longest silence an armed peer ended with a datagram that counted, in ms, as judged (time this side's
   * thread did not run is not in it): how near any peer came to being lost.
   */
  longestSilenceMs: number;
  /** Datagrams that counted after a silence longer than half the bound: one lost or late. */
  longSilences: number;
  /** The longest the thread woke after a ping or a deadline was due, in ms: the host did not run it. */
  lateWakeMs: number;
  /** The longest the thread took from waking to waiting again, in ms: a page fault or a lock held it. */
  busyMs: number;
  /** Major page faults the thread took: its code or data read back from disk. */
  majorFaults: number;
}

interface NativeHub {
  add(id: Buffer, key: Buffer, deadMs: number, host?: string, port?: number, intervalMs?: number): void;
  drop(id: Buffer): void;
  /** [received, rejected, sent, longestSilenceMs, longSilences, lateWakeMs, busyMs, majorFaults] */
  counts(): number[];
  close(): void;
  stall(ms: number): void;
  readonly port: number;
  readonly realtimeError: string | null;
}

type NativeHubClass = new (
  bindHost: string | null,
  bindPort: number,
  onEvent: (lost: boolean, id: Buffer, silentMs: number) => void,
) => NativeHub;

/**
 * Sends, reads and judges liveness datagrams for any number of sessions on a thread of its own: the server
 * has one bound to its port ({@link LivenessHub.listen}), an agent one on an ephemeral port
 * ({@link LivenessHub.start}). The thread is native (src/tunnel/native/liveness.cc), not a worker: it runs no
 * JavaScript and allocates nothing, so no isolate's garbage collection in the process can stop it, and it
 * costs a 256 KiB stack rather than a second V8 heap.
 */
export class LivenessHub {
  readonly #native: NativeHub | undefined;
  readonly #peers: Map<string, LivenessPeer>;
  #failed: string | undefined;
  /** The bound UDP port (server), or 0. */
  readonly port: number;

  private constructor(
    native: NativeHub | undefined,
    failed: string | undefined,
    peers = new Map<string, LivenessPeer>(),
  ) {
    this.#native = native;
    this.#peers = peers;
    this.#failed = failed;
    this.port = native?.port ?? 0;
  }

  static #create(bind: { host: string; port: number } | undefined, log: Logger): LivenessHub {
    const Native = nativeAddon<{ LivenessHub: NativeHubClass }>().LivenessHub;
    const peers = new Map<string, LivenessPeer>();
    const native = new Native(bind?.host ?? null, bind?.port ?? 0, (lost, id, silentMs) => {
      const peer = peers.get(id.toString('hex'));
      if (lost) peer?.lost(silentMs);
      else peer?.armed();
    });
    const hub = new LivenessHub(native, undefined, peers);
    LivenessHub.#realtime(native.realtimeError, log);
    return hub;
  }

  /**
   * The thread puts itself (only itself) in the real-time class, SCHED_RR at priority 1: on a machine whose
   * cores are saturated, an ordinary thread of a busy process can wait a few hundred ms for a core (measured
   * here: all threads of a test process stalled 150-400 ms together at load 10 on 2 cores), and a ping sent
   * that late is a false failover. keepalived runs its VRRP process real-time for the same reason. The thread
   * wakes a few dozen times a second for microseconds, so it costs the rest of the machine nothing. Needs
   * CAP_SYS_NICE (the units grant it) or an RLIMIT_RTPRIO of at least 1; without, it runs at normal priority
   * and the hub says so.
   */
  static #realtime(error: string | null, log: Logger): void {
    if (error === null) log.debug('liveness thread runs real-time (SCHED_RR 1)');
    else
      log.warn(
        { err: error },
        'the liveness thread runs at normal priority: on a saturated machine its datagrams can be late, and a node be taken for dead',
      );
  }

  /** An agent's hub: pings go out from an ephemeral port. Without the native addon, a hub that never arms. */
  static start(logger: Logger = silentLogger()): LivenessHub {
    try {
      return LivenessHub.#create(undefined, logger);
    } catch (err) {
      const why = `no liveness datagrams: ${(err as Error).message}`;
      logger.warn(why);
      return new LivenessHub(undefined, why);
    }
  }

  /** A server's hub, bound to `host`:`port` (UDP). Rejects with `VIPMESH_TUNNEL_LIVENESS` when it cannot bind. */
  static async listen(host: string, port: number, logger: Logger = silentLogger()): Promise<LivenessHub> {
    try {
      return LivenessHub.#create({ host, port }, logger);
    } catch (err) {
      throw new VipmeshError(
        'VIPMESH_TUNNEL_LIVENESS',
        `cannot listen on ${host}:${port}/udp: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
  }

  /** Datagrams counted so far. */
  get counts(): LivenessCounts {
    const [
      received = 0,
      rejected = 0,
      sent = 0,
      longestSilenceMs = 0,
      longSilences = 0,
      lateWakeMs = 0,
      busyMs = 0,
      majorFaults = 0,
    ] = this.#native?.counts() ?? [];
    return { received, rejected, sent, longestSilenceMs, longSilences, lateWakeMs, busyMs, majorFaults };
  }

  /** The hub has no thread (no addon, or closed): sessions given to it are never armed. */
  get failed(): boolean {
    return this.#failed !== undefined;
  }

  /** Sessions this hub serves now. */
  get size(): number {
    return this.#peers.size;
  }

  /** Server: a new session; answer its pings from now on. The grant goes to the agent in the welcome. */
  expect(
    timing: { intervalMs: number; deadAfterMs: number },
    peer: LivenessPeer,
  ): LivenessLink & { grant: LivenessGrant } {
    const id = randomBytes(8);
    const key = randomBytes(32);
    this.#add(id, peer, (n) => n.add(id, key, timing.deadAfterMs));
    const grant = { port: this.port, id: id.toString('hex'), key: key.toString('base64'), ...timing };
    return { grant, drop: () => this.#drop(id) };
  }

  /** Agent: ping the server at `host` as `grant` says, and judge it by its acks. */
  call(host: string, grant: LivenessGrant, peer: LivenessPeer): LivenessLink {
    const h = host.startsWith('::ffff:') ? host.slice(7) : host;
    const id = Buffer.from(grant.id, 'hex');
    const key = Buffer.from(grant.key, 'base64');
    this.#add(id, peer, (n) => n.add(id, key, grant.deadAfterMs, h, grant.port, grant.intervalMs));
    return { drop: () => this.#drop(id) };
  }

  #add(id: Buffer, peer: LivenessPeer, add: (native: NativeHub) => void): void {
    this.#peers.set(id.toString('hex'), peer);
    // No thread: the session is never armed and stays on its tunnel heartbeats.
    if (this.#failed === undefined && this.#native !== undefined) add(this.#native);
  }

  #drop(id: Buffer): void {
    if (!this.#peers.delete(id.toString('hex')) || this.#failed !== undefined) return;
    this.#native?.drop(id);
  }

  /**
   * For tests: the thread sleeps `ms` once, outside its wait, as when the host does not run it (a vCPU not
   * scheduled, a suspended VM), so its deadlines pass meanwhile.
   */
  stallForTests(ms: number): void {
    this.#native?.stall(ms);
  }

  /** Stop the thread; sessions still registered are told nothing (their owner is closing them). */
  async close(): Promise<void> {
    this.#failed ??= 'closed';
    this.#peers.clear();
    this.#native?.close();
  }
}

/** The grant in a server's welcome, if it is one this agent can use. */
export function grantOf(info: unknown): LivenessGrant | undefined {
  const g = (info as { liveness?: Partial<LivenessGrant> } | null)?.liveness;
  if (typeof g !== 'object' || g === null) return undefined;
  const { port, id, key, intervalMs, deadAfterMs } = g;
  if (
    !Number.isInteger(port) ||
    port! < 1 ||
    port! > 65535 ||
    typeof id !== 'string' ||
    !/^[0-9a-f]{16}$/.test(id) ||
    typeof key !== 'string' ||
    Buffer.from(key, 'base64').length !== 32 ||
    typeof intervalMs !== 'number' ||
    !(intervalMs >= 5 && intervalMs <= 60_000) ||
    typeof deadAfterMs !== 'number' ||
    !(deadAfterMs >= intervalMs && deadAfterMs <= 600_000)
  ) {
    return undefined;
  }
  return { port: port!, id, key, intervalMs, deadAfterMs };
}
