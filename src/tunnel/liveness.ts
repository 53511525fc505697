import { randomBytes } from 'node:crypto';
import { isIPv6 } from 'node:net';
import { Worker } from 'node:worker_threads';
import { VipmeshError } from '../errors.js';
import { type Logger, silentLogger } from '../log.js';

/**
 * Liveness datagrams: the fast half of telling a dead node from a busy one.
 *
 * A session's heartbeats travel inside the tunnel and are sent, read and judged by the event loop, so a
 * long garbage collection or a starved loop on either side looks exactly like a dead peer. These datagrams
 * are sent, read and judged by a worker thread of each side instead: its heap is a few kilobytes, it
 * allocates almost nothing, and the main heap's collections do not stop it. While they flow, a peer is
 * declared lost only after `deadAfterMs` without one, and the tunnel's own heartbeats are held to a much
 * longer bound (a wedged event loop is still found, just not mistaken for a cut cable).
 *
 * The server grants each session a random 8-byte id and a 32-byte key in its welcome (over TLS). The agent
 * sends a ping every `intervalMs` to the server's tunnel address, on the server's UDP port of the same
 * number as its HTTPS port; the server's worker answers each with an ack. Both are 40 bytes:
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
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const dgram = require('node:dgram');
const { createHmac, timingSafeEqual } = require('node:crypto');
const MAGIC = 0x564d4c56, VERSION = 1, PING = 1, ACK = 2, LEN = 40;
const stats = new BigInt64Array(workerData.stats);
const peers = new Map();
const sockets = new Map();
let timer;
let timerDue = 0;
function tag(key, b) { return createHmac('sha256', key).update(b.subarray(0, 24)).digest().subarray(0, 16); }
function packet(kind, id, n, key) {
  const b = Buffer.alloc(LEN);
  b.writeUInt32BE(MAGIC, 0); b[4] = VERSION; b[5] = kind; id.copy(b, 8); b.writeBigUInt64BE(n, 16);
  tag(key, b).copy(b, 24);
  return b;
}
function send(s, b, port, host) { Atomics.add(stats, 2, 1n); s.send(b, port, host, () => {}); }
function receive(s, b, r) {
  const p = b.length === LEN && b.readUInt32BE(0) === MAGIC && b[4] === VERSION ? peers.get(b.toString('hex', 8, 16)) : undefined;
  const n = b.length === LEN ? b.readBigUInt64BE(16) : 0n;
  if (p === undefined || b[5] !== p.expect || !timingSafeEqual(tag(p.key, b), b.subarray(24)) || n <= p.last ||
      (p.expect === ACK && n > p.sent)) { Atomics.add(stats, 1, 1n); return; }
  Atomics.add(stats, 0, 1n);
  p.last = n; p.heardAt = performance.now();
  if (p.expect === PING) send(s, packet(ACK, p.id, n, p.key), r.port, r.address);
  if (!p.armed) { p.armed = true; parentPort.postMessage({ op: 'armed', id: p.hex }); schedule(); }
}
function socket(type, bind) {
  let s = sockets.get(type);
  if (s !== undefined) return s;
  s = dgram.createSocket({ type, ipv6Only: false });
  s.on('message', (b, r) => receive(s, b, r));
  s.on('error', (err) => { if (bind) parentPort.postMessage({ op: 'bound', error: err.message }); });
  sockets.set(type, s);
  return s;
}
// Time this thread itself did not run (its timer fired late) is not the peer's silence: an agent whose
// pings went out late would otherwise blame the server for acks it could not have sent. And the verdict
// waits for one I/O poll (setImmediate runs after it), so datagrams that queued meanwhile count first.
function tick() {
  timer = undefined;
  const now = performance.now();
  const late = now - timerDue;
  if (late > 5) for (const p of peers.values()) if (p.armed) p.heardAt += late;
  for (const p of peers.values()) {
    if (p.host === undefined || now < p.nextSend) continue;
    p.sent += 1n; p.nextSend = now + p.intervalMs;
    send(p.socket, packet(PING, p.id, p.sent, p.key), p.port, p.host);
  }
  setImmediate(judge);
}
function judge() {
  const now = performance.now();
  for (const p of peers.values()) {
    if (!p.armed || p.lost || now - p.heardAt < p.deadMs) continue;
    p.lost = true;
    parentPort.postMessage({ op: 'lost', id: p.hex, silentMs: now - p.heardAt });
  }
  schedule();
}
function schedule() {
  let due = Infinity;
  for (const p of peers.values()) {
    if (p.host !== undefined) due = Math.min(due, p.nextSend);
    if (p.armed && !p.lost) due = Math.min(due, p.heardAt + p.deadMs);
  }
  if (timer !== undefined) clearTimeout(timer);
  const now = performance.now();
  timerDue = Math.max(due, now);
  timer = due === Infinity ? undefined : setTimeout(tick, timerDue - now);
}
parentPort.on('message', (m) => {
  if (m.op === 'drop') { peers.delete(m.id); schedule(); return; }
  const p = { hex: m.id, id: Buffer.from(m.id, 'hex'), key: Buffer.from(m.key), expect: m.host === undefined ? PING : ACK,
    deadMs: m.deadMs, last: 0n, sent: 0n, armed: false, lost: false, heardAt: 0 };
  if (m.host !== undefined) Object.assign(p, { host: m.host, port: m.port, intervalMs: m.intervalMs, nextSend: 0, socket: socket(m.type) });
  peers.set(m.id, p);
  schedule();
});
// This thread only (its tid) goes real-time; done here, not by the busy main thread, so it happens at once.
try {
  const tid = require('node:fs').readlinkSync('/proc/thread-self').split('/').pop();
  require('node:child_process').execFile('chrt', ['-r', '-p', '1', tid], (err, _out, stderr) =>
    parentPort.postMessage({ op: 'realtime', tid, error: err ? String(stderr || err.message).trim() : undefined }));
} catch (err) {
  parentPort.postMessage({ op: 'realtime', error: String(err && err.message) });
}
const bind = workerData.bind;
if (bind !== undefined) {
  const s = socket(bind.type, true);
  s.bind(bind.port, bind.host, () => parentPort.postMessage({ op: 'bound', port: s.address().port }));
}
`;

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

/** Datagrams counted by a hub (shared with its worker). */
export interface LivenessCounts {
  /** Datagrams that verified and counted. */
  received: number;
  /** Datagrams dropped: malformed, unknown session, bad tag, replayed. */
  rejected: number;
  sent: number;
}

type WorkerMessage =
  | { op: 'armed'; id: string }
  | { op: 'lost'; id: string; silentMs: number }
  | { op: 'bound'; port?: number; error?: string }
  | { op: 'realtime'; tid?: string; error?: string };

/**
 * A worker thread sending, reading and judging liveness datagrams for any number of sessions: the server
 * has one bound to its port ({@link LivenessHub.listen}), an agent one on an ephemeral port
 * ({@link LivenessHub.start}).
 */
export class LivenessHub {
  readonly #worker: Worker;
  readonly #stats: BigInt64Array;
  readonly #peers = new Map<string, LivenessPeer>();
  readonly #log: Logger;
  #failed: string | undefined;
  /** The bound UDP port (server), or 0. */
  port = 0;

  private constructor(bind: { host: string; port: number; type: 'udp4' | 'udp6' } | undefined, log: Logger) {
    this.#log = log;
    const stats = new SharedArrayBuffer(3 * 8);
    this.#stats = new BigInt64Array(stats);
    // Plain CommonJS: the worker needs no TypeScript loader, so --import tsx and the like are not passed on.
    this.#worker = new Worker(WORKER, {
      eval: true,
      workerData: { stats, bind },
      execArgv: [],
      resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 1 },
    });
    this.#worker.unref();
    this.#worker.on('message', (m: WorkerMessage) => {
      if (m.op === 'armed') this.#peers.get(m.id)?.armed();
      else if (m.op === 'lost') this.#peers.get(m.id)?.lost(m.silentMs);
      else if (m.op === 'realtime') this.#realtime(m);
    });
    this.#worker.on('error', (err) => this.#fail(`the liveness worker failed: ${err.message}`));
    this.#worker.on('exit', (code) => this.#fail(`the liveness worker exited (${code})`));
  }

  /**
   * The worker thread puts itself (only itself) in the real-time class, SCHED_RR at priority 1, with `chrt`: on a
   * machine whose cores are saturated, an ordinary thread of a busy process can wait a few hundred ms for
   * a core (measured here: all threads of a test process stalled 150-400 ms together at load 10 on 2
   * cores), and a ping sent that late is a false failover. keepalived runs its VRRP process real-time for
   * the same reason. The thread wakes a few dozen times a second for microseconds, so it costs the rest of
   * the machine nothing. Needs CAP_SYS_NICE (the units grant it) or an RLIMIT_RTPRIO of at least 1;
   * without, the worker runs at normal priority and says so.
   */
  #realtime(m: { tid?: string; error?: string }): void {
    if (m.error === undefined) this.#log.debug({ tid: m.tid }, 'liveness worker runs real-time (SCHED_RR 1)');
    else
      this.#log.warn(
        { tid: m.tid, err: m.error },
        'the liveness worker runs at normal priority: on a saturated machine its datagrams can be late, and a node be taken for dead',
      );
  }

  /** An agent's hub: pings go out from an ephemeral port. */
  static start(logger: Logger = silentLogger()): LivenessHub {
    return new LivenessHub(undefined, logger);
  }

  /** A server's hub, bound to `host`:`port` (UDP). Rejects with `VIPMESH_TUNNEL_LIVENESS` when it cannot bind. */
  static listen(host: string, port: number, logger: Logger = silentLogger()): Promise<LivenessHub> {
    const type = isIPv6(host) ? 'udp6' : 'udp4';
    const hub = new LivenessHub({ host, port, type }, logger);
    return new Promise((resolve, reject) => {
      const fail = (why: string) => {
        void hub.close();
        reject(new VipmeshError('VIPMESH_TUNNEL_LIVENESS', `cannot listen on ${host}:${port}/udp: ${why}`));
      };
      // A real timer: it bounds a real thread's start, which no injected clock drives.
      const timer = setTimeout(() => fail('the worker did not start within 5 s'), 5000);
      hub.#worker.once('error', (err) => {
        clearTimeout(timer);
        fail(err.message);
      });
      const bound = (m: WorkerMessage) => {
        if (m.op !== 'bound') return;
        hub.#worker.off('message', bound);
        clearTimeout(timer);
        if (m.port === undefined) fail(m.error ?? 'bind failed');
        else {
          hub.port = m.port;
          resolve(hub);
        }
      };
      hub.#worker.on('message', bound);
    });
  }

  /** Datagrams counted so far. */
  get counts(): LivenessCounts {
    return {
      received: Number(this.#stats[0]),
      rejected: Number(this.#stats[1]),
      sent: Number(this.#stats[2]),
    };
  }

  /** The worker is gone (it failed, or the hub was closed): sessions given to it are never armed. */
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
    const id = randomBytes(8).toString('hex');
    const key = randomBytes(32);
    this.#add(id, peer, { id, key, deadMs: timing.deadAfterMs });
    const grant = { port: this.port, id, key: key.toString('base64'), ...timing };
    return { grant, drop: () => this.#drop(id) };
  }

  /** Agent: ping the server at `host` as `grant` says, and judge it by its acks. */
  call(host: string, grant: LivenessGrant, peer: LivenessPeer): LivenessLink {
    const h = host.startsWith('::ffff:') ? host.slice(7) : host;
    this.#add(grant.id, peer, {
      id: grant.id,
      key: Buffer.from(grant.key, 'base64'),
      deadMs: grant.deadAfterMs,
      host: h,
      port: grant.port,
      type: isIPv6(h) ? 'udp6' : 'udp4',
      intervalMs: grant.intervalMs,
    });
    return { drop: () => this.#drop(grant.id) };
  }

  #add(id: string, peer: LivenessPeer, msg: Record<string, unknown>): void {
    this.#peers.set(id, peer);
    if (this.#failed !== undefined) {
      // No worker: the session is never armed and stays on its tunnel heartbeats.
      return;
    }
    this.#worker.postMessage({ op: 'add', ...msg });
  }

  #drop(id: string): void {
    if (!this.#peers.delete(id) || this.#failed !== undefined) return;
    this.#worker.postMessage({ op: 'drop', id });
  }

  /** The worker is gone: every armed session goes back to its tunnel heartbeats alone. */
  #fail(why: string): void {
    if (this.#failed !== undefined) return;
    this.#failed = why;
    if (this.#peers.size > 0) this.#log.error({ sessions: this.#peers.size }, why);
    for (const p of [...this.#peers.values()]) p.lost(Number.NaN);
  }

  /** Stop the worker; sessions still registered are told nothing (their owner is closing them). */
  async close(): Promise<void> {
    this.#failed ??= 'closed';
    this.#peers.clear();
    await this.#worker.terminate();
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
