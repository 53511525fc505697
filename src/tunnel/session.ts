import { EventEmitter } from 'node:events';
import { connect as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import { type Clock, systemClock, type TimerHandle } from '../clock.js';
import { errnoOf, isVipmeshError, VipmeshError } from '../errors.js';
import { type Logger, silentLogger } from '../log.js';
import {
  decodeFrame,
  encodeError,
  encodeHello,
  encodeOpen,
  encodePing,
  encodePush,
  encodeRequest,
  encodeResponse,
  encodeU32,
  type Frame,
  FrameType,
} from './codec.js';
import { clip, LogSummary, TokenBucket } from './limits.js';
import type { CutReason, TunnelMetrics } from './metrics.js';
import { type StreamOwner, TunnelStream } from './stream.js';
import { type AllowFn, parseTarget, type Target, targetOf } from './target.js';

/** The wire under a session: one binary message per frame (a websocket, or an in-memory pair in tests). */
export interface FrameTransport {
  /** Queue `frame`; `written` (when given and supported) runs once it has been handed to the OS. */
  send(frame: Buffer, written?: () => void): void;
  /** True when `send` calls `written` (else a frame counts as written when sent). */
  readonly reportsWrites?: boolean;
  /** Bytes queued towards the peer and not yet handed to the OS (0 when unknown). */
  bufferedBytes?(): number;
  /** Close now (no waiting for the peer); `code` is a websocket close code. */
  close(code: number, reason: string): void;
  /** The peer's IP address, when the transport is a network connection. */
  peerAddress?(): string | undefined;
}

/** Answers one request method; what it returns (or throws) travels back to the caller. */
export type RequestHandler = (params: unknown, ctx: { node: string; session: Session }) => unknown;

/** Opens the local end of an accepted stream (default: `net.connect`). */
type ConnectTarget = (target: Target) => Duplex;

/** Options of a {@link Session}. Defaults in brackets. */
export interface SessionOptions {
  /** Which side this is: agents open odd stream ids, the server even ones. */
  role: 'server' | 'agent';
  /** The agent's node name (on both sides). */
  node: string;
  transport: FrameTransport;
  clock?: Clock;
  logger?: Logger;
  metrics?: TunnelMetrics;
  /** Heartbeat interval [100 ms]. */
  heartbeatMs?: number | undefined;
  /** Missed heartbeats before the peer is declared dead [3]. */
  misses?: number | undefined;
  /**
   * While liveness datagrams from the peer flow ({@link Session.setLivenessArmed}), they decide whether it is
   * alive, and the tunnel itself may stay silent this long before the session is closed [3 s]: a peer whose
   * event loop is wedged (or a connection a middlebox broke) is still found, but a collection or a starved
   * loop on either side is no longer taken for a dead node. Never shorter than `heartbeatMs` × `misses`.
   */
  tunnelTimeoutMs?: number | undefined;
  /**
   * Floor under the tunnel heartbeats' own bound, `heartbeatMs` × `misses`, while liveness datagrams are
   * not armed [0]. Short heartbeats are for the datagrams; where those do not get through, the daemons
   * keep the tunnel's verdict at 300 ms, which an event loop on a busy machine still meets.
   */
  minDeadMs?: number | undefined;
  /**
   * Receive window per stream, the bound on its buffered memory [1 MiB]. A window has to cover the peer
   * being descheduled for a few ms (at 400 MiB/s, 1 MiB is 2.5 ms). bench/tunnel.ts, one bulk stream, one
   * run each on a loaded 2-core machine: 512 KiB 99 MiB/s, 1 MiB 139 MiB/s, 2 MiB 148 MiB/s; that machine's
   * run-to-run noise is about 2x, so this says "not worse" more than "better". remotedialer pauses a
   * stream at 2 MiB.
   */
  windowBytes?: number | undefined;
  /** Default timeout of `request()` [5 s]. */
  requestTimeoutMs?: number | undefined;
  /** Which targets the peer may open streams to [none]. */
  allow?: AllowFn;
  connectTarget?: ConnectTarget;
  /** Streams the peer may have open at once here; more are refused [10,000]. */
  maxStreams?: number | undefined;
  /** Request handlers by method (shared with the owner, so handlers outlive reconnects). */
  handlers?: Map<string, RequestHandler>;
  /**
   * Bytes that may wait towards the peer (the websocket's buffer, not yet taken by the OS) [64 MiB]. A send
   * that would go over it cuts the session: the peer is not reading what it asked for.
   */
  maxSendQueueBytes?: number | undefined;
  /** Stream OPENs the peer may send per second, sustained [1,000]; a peer over the rate is cut. */
  opensPerSecond?: number | undefined;
  /** OPENs the peer may send at once before the rate applies [10,000]. */
  openBurst?: number | undefined;
  /** Requests the peer may send per second, sustained [1,000]; a peer over the rate is cut. */
  requestsPerSecond?: number | undefined;
  /** Requests the peer may send at once before the rate applies [5,000]. */
  requestBurst?: number | undefined;
  /** Where refused streams are counted and summarised (shared by an owner's sessions) [one of its own]. */
  refusals?: LogSummary;
}

/** The session settings the tunnel client and server take and pass to each of their sessions. */
export type SessionTuning = Pick<
  SessionOptions,
  | 'heartbeatMs'
  | 'misses'
  | 'tunnelTimeoutMs'
  | 'minDeadMs'
  | 'windowBytes'
  | 'requestTimeoutMs'
  | 'maxStreams'
  | 'maxSendQueueBytes'
  | 'opensPerSecond'
  | 'openBurst'
  | 'requestsPerSecond'
  | 'requestBurst'
>;

/** Only the {@link SessionTuning} fields of `o` (an owner's options hold more). */
export function sessionTuning(o: SessionTuning): SessionTuning {
  return {
    heartbeatMs: o.heartbeatMs,
    misses: o.misses,
    tunnelTimeoutMs: o.tunnelTimeoutMs,
    minDeadMs: o.minDeadMs,
    windowBytes: o.windowBytes,
    requestTimeoutMs: o.requestTimeoutMs,
    maxStreams: o.maxStreams,
    maxSendQueueBytes: o.maxSendQueueBytes,
    opensPerSecond: o.opensPerSecond,
    openBurst: o.openBurst,
    requestsPerSecond: o.requestsPerSecond,
    requestBurst: o.requestBurst,
  };
}

/** Events of a {@link Session}. */
interface SessionEvents {
  hello: [info: unknown];
  push: [topic: string, payload: unknown];
  /** Liveness datagrams started (true) or stopped (false) judging the peer. */
  liveness: [armed: boolean];
  /** The session ended; `reason` says why (heartbeat timeout, protocol error, closed by peer...). */
  close: [reason: string];
}

interface PendingRequest {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: TimerHandle;
}

/** A heartbeat sent and not answered yet: its stamp and when it was handed to the OS. */
interface OutstandingPing {
  stamp: number;
  writtenAt: number | undefined;
  /** {@link Session}'s own stalled time when it was written: only the stalls after it count against it. */
  stalledAtWrite: number;
}

/** Pings kept outstanding at most: with this many unanswered, no more are sent until one is. */
const MAX_OUTSTANDING_PINGS = 64;

/** Close code for a peer cut for not reading: no goodbye is queued behind what it did not read. */
export const ABANDON_CODE = 4002;

/**
 * One tunnel connection, either end: control messages (hello, heartbeats, request/response/push with
 * correlation ids and timeouts) and streams in both directions. Heartbeats go out every `heartbeatMs`; the
 * session closes itself when nothing at all was heard for `misses` intervals, whether or not TCP noticed.
 */
export class Session extends EventEmitter<SessionEvents> implements StreamOwner {
  readonly role: 'server' | 'agent';
  readonly node: string;
  readonly #t: FrameTransport;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #metrics: TunnelMetrics | undefined;
  readonly #hbMs: number;
  readonly #deadMs: number;
  readonly #armedDeadMs: number;
  /** Liveness datagrams from the peer flow: they judge it, and the tunnel gets {@link #armedDeadMs}. */
  #armed = false;
  readonly #window: number;
  readonly #requestTimeoutMs: number;
  readonly #allow: AllowFn;
  readonly #connectTarget: ConnectTarget;
  readonly #maxStreams: number;
  readonly #handlers: Map<string, RequestHandler>;
  readonly #streams = new Map<number, TunnelStream>();
  readonly #pending = new Map<number, PendingRequest>();
  #nextStream: number;
  #nextRequest = 1;
  #lastHeard: number;
  /**
   * How long this side's own timers have run late in all (overlapping stalls counted once), ms: time in
   * which our event loop was blocked (garbage collection, a long task, no CPU) and could not have read
   * the peer. Silence in that time is ours, not the peer's, and is not held against it.
   */
  #stalled = 0;
  /** End of the last stall counted in {@link #stalled}. */
  #stalledUntil = 0;
  /** {@link #stalled} when the peer was last heard. */
  #stalledAtHeard = 0;
  /** When the next heartbeat is due. */
  #beatDue: number;
  #hbTimer: TimerHandle | undefined;
  #deadTimer: TimerHandle | undefined;
  #closed: string | undefined;
  readonly #maxQueue: number;
  readonly #opens: TokenBucket;
  readonly #requests: TokenBucket;
  readonly #refusals: LogSummary;
  readonly #pings: OutstandingPing[] = [];
  /** Most bytes this session has had queued towards the peer. */
  sendQueuePeakBytes = 0;
  /** Last heartbeat round trip in ms (NaN before the first). */
  rttMs = Number.NaN;

  constructor(o: SessionOptions) {
    super();
    this.role = o.role;
    this.node = o.node;
    this.#t = o.transport;
    this.#clock = o.clock ?? systemClock;
    this.#log = o.logger ?? silentLogger();
    this.#metrics = o.metrics;
    this.#hbMs = o.heartbeatMs ?? 100;
    this.#deadMs = Math.max(this.#hbMs * (o.misses ?? 3), o.minDeadMs ?? 0);
    this.#armedDeadMs = Math.max(o.tunnelTimeoutMs ?? 3000, this.#deadMs);
    this.#window = o.windowBytes ?? 1024 * 1024;
    this.#requestTimeoutMs = o.requestTimeoutMs ?? 5000;
    this.#allow = o.allow ?? (() => false);
    this.#connectTarget = o.connectTarget ?? defaultConnect;
    this.#maxStreams = o.maxStreams ?? 10_000;
    this.#handlers = o.handlers ?? new Map();
    this.#nextStream = o.role === 'agent' ? 1 : 2;
    this.#maxQueue = o.maxSendQueueBytes ?? 64 * 1024 * 1024;
    this.#opens = new TokenBucket(this.#clock, o.opensPerSecond ?? 1000, o.openBurst ?? 10_000);
    this.#requests = new TokenBucket(this.#clock, o.requestsPerSecond ?? 1000, o.requestBurst ?? 5000);
    this.#refusals =
      o.refusals ??
      new LogSummary({
        clock: this.#clock,
        logger: this.#log,
        level: 'info',
        what: 'streams',
        keyField: 'node',
      });
    this.#lastHeard = this.#clock.now();
    this.#beatDue = this.#lastHeard;
    this.#beat();
    this.#armDeadline(this.#deadMs);
  }

  /** Why the session closed, or undefined while it is up. */
  get closedReason(): string | undefined {
    return this.#closed;
  }

  /** How long nothing at all was heard from the peer, in ms. */
  get silentMs(): number {
    return this.#clock.now() - this.#lastHeard;
  }

  /** How long the peer may stay silent before it is declared dead, in ms (`heartbeatMs` × `misses`). */
  get deadAfterMs(): number {
    return this.#deadMs;
  }

  /** True while liveness datagrams judge the peer (see {@link setLivenessArmed}). */
  get livenessArmed(): boolean {
    return this.#armed;
  }

  /**
   * Liveness datagrams from the peer flow (true) or stopped being usable (false). While armed, the owner
   * closes the session when they stop; the tunnel's heartbeats go out a quarter as often as the longer
   * `tunnelTimeoutMs` bound they are then held to.
   */
  setLivenessArmed(armed: boolean): void {
    if (armed === this.#armed || this.#closed !== undefined) return;
    this.#armed = armed;
    this.emit('liveness', armed);
    if (!armed) {
      // Back to the short bound: it starts now, and a heartbeat goes out at once (while armed they were
      // rarer, so the last thing heard may be older than the short bound already).
      this.#lastHeard = this.#clock.now();
      this.#stalledAtHeard = this.#stalled;
      if (this.#hbTimer !== undefined) this.#clock.clearTimeout(this.#hbTimer);
      this.#beatDue = this.#lastHeard;
      this.#beat();
    }
    // Judge the tunnel by its new bound now, not when the timer set for the old one runs.
    if (this.#deadTimer !== undefined) this.#clock.clearTimeout(this.#deadTimer);
    this.#armDeadline(0);
  }

  /** Silence of the tunnel itself after which the peer is declared dead, in ms. */
  get #tunnelDeadMs(): number {
    return this.#armed ? this.#armedDeadMs : this.#deadMs;
  }

  /** Streams currently open. */
  get streamCount(): number {
    return this.#streams.size;
  }

  /** @internal Put a frame on the wire (streams call this). */
  send(frame: Buffer, written?: () => void): void {
    if (this.#closed !== undefined) return;
    const queued = (this.#t.bufferedBytes?.() ?? 0) + frame.length;
    if (queued > this.#maxQueue) {
      this.#cut(
        'send-queue',
        `send queue over ${this.#maxQueue} bytes: the peer is not reading what it is sent`,
        ABANDON_CODE,
      );
      return;
    }
    if (queued > this.sendQueuePeakBytes) {
      this.sendQueuePeakBytes = queued;
      if (this.#metrics !== undefined && queued > this.#metrics.sendQueuePeakBytes) {
        this.#metrics.sendQueuePeakBytes = queued;
      }
    }
    if (this.#metrics !== undefined) this.#metrics.bytesOut += frame.length;
    this.#t.send(frame, written);
  }

  /** Close the session because the peer misbehaved, counting it by `kind`. */
  #cut(kind: CutReason, reason: string, code: number): void {
    if (this.#metrics !== undefined) this.#metrics.cuts[kind]++;
    this.#log.warn({ node: this.node, op: 'cut', kind }, `cut the tunnel session: ${reason}`);
    this.close(reason, code);
  }

  /** @internal A stream is finished. */
  release(stream: TunnelStream): void {
    if (this.#streams.get(stream.id) === stream) {
      this.#streams.delete(stream.id);
      if (this.#metrics !== undefined) this.#metrics.streamsOpen--;
    }
  }

  /** Send the HELLO frame (the agent's registration or the server's welcome). */
  hello(info: unknown): void {
    this.send(encodeHello(info));
  }

  /** Send a push on `topic` (fire and forget). */
  push(topic: string, payload: unknown): void {
    this.send(encodePush(topic, payload));
  }

  /**
   * Call `method` on the peer. Rejects with the peer's error code, `VIPMESH_TUNNEL_TIMEOUT` after
   * `timeoutMs` [5 s], or `VIPMESH_TUNNEL_SESSION_CLOSED`.
   */
  request<R = unknown>(method: string, params?: unknown, opts: { timeoutMs?: number } = {}): Promise<R> {
    if (this.#closed !== undefined) return Promise.reject(this.#closedError());
    const id = this.#nextRequest;
    this.#nextRequest = (this.#nextRequest % 0xffff_ffff) + 1;
    const timeoutMs = opts.timeoutMs ?? this.#requestTimeoutMs;
    return new Promise<R>((resolve, reject) => {
      const timer = this.#clock.setTimeout(() => {
        this.#pending.delete(id);
        reject(new VipmeshError('VIPMESH_TUNNEL_TIMEOUT', `${method}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.send(encodeRequest(id, method, params));
    });
  }

  /**
   * Open a stream to `address` on the peer's side (`network` is `tcp`). Returns at once; the stream emits
   * `connect` when the peer has connected, or an error (`VIPMESH_TUNNEL_DIAL_REFUSED` when the target is not
   * on the peer's allow-list, `VIPMESH_TUNNEL_DIAL_FAILED` when connecting failed). The session stays up.
   */
  dial(network: string, address: string): TunnelStream {
    const target = targetOf(network, address);
    const id = this.#nextStream;
    this.#nextStream += 2;
    const s = this.#track(new TunnelStream(this, id, target, { window: this.#window }));
    if (this.#closed !== undefined) process.nextTick(() => s.abort(this.#closedError()));
    else this.send(encodeOpen(id, this.#window, target));
    return s;
  }

  /** Feed one received frame (the transport calls this). Bad input closes the session with a reason. */
  receive(buf: Buffer): void {
    if (this.#closed !== undefined) return;
    this.#lastHeard = this.#clock.now();
    this.#stalledAtHeard = this.#stalled;
    if (this.#metrics !== undefined) this.#metrics.bytesIn += buf.length;
    const f = decodeFrame(buf);
    if ('error' in f) {
      this.close(`protocol error: ${f.error}`, 1002);
      return;
    }
    if (f.type === 'data') {
      const s = this.#streams.get(f.stream);
      if (s !== undefined && !s.onData(f.data)) {
        s.destroy(new VipmeshError('VIPMESH_TUNNEL_FLOW', `stream ${s.id}: the peer sent beyond its credit`));
      }
      return;
    }
    this.#control(f);
  }

  #control(f: Exclude<Frame, { type: 'data' }>): void {
    switch (f.type) {
      case 'hello':
        this.emit('hello', f.info);
        return;
      case 'ping':
        this.send(encodePing(true, f.stamp));
        return;
      case 'pong': {
        const stamp = f.stamp.readDoubleBE(0);
        while (this.#pings.length > 0 && this.#pings[0]!.stamp <= stamp) this.#pings.shift();
        const rtt = this.#clock.now() - stamp;
        if (rtt >= 0 && rtt < 3_600_000) {
          this.rttMs = rtt;
          this.#metrics?.rtt.observe({ role: this.#metrics.role }, rtt / 1000);
        }
        return;
      }
      case 'request':
        if (!this.#requests.take()) {
          this.#cut(
            'rate-limit',
            `requests over ${this.#requests.perSecond}/s (burst ${this.#requests.burst})`,
            1008,
          );
          return;
        }
        void this.#answer(f.id, f.method, f.params);
        return;
      case 'response': {
        const p = this.#pending.get(f.id);
        if (p === undefined) return; // timed out already
        this.#pending.delete(f.id);
        this.#clock.clearTimeout(p.timer);
        if (f.ok) p.resolve(f.body);
        else p.reject(remoteError(f.body));
        return;
      }
      case 'push':
        this.emit('push', f.topic, f.payload);
        return;
      case 'open':
        if (!this.#opens.take()) {
          this.#cut(
            'rate-limit',
            `stream opens over ${this.#opens.perSecond}/s (burst ${this.#opens.burst})`,
            1008,
          );
          return;
        }
        this.#accept(f.stream, f.window, f.target);
        return;
    }
    const s = this.#streams.get(f.stream);
    if (s === undefined) return; // a frame for a stream already gone: late, harmless
    switch (f.type) {
      case 'open-ack':
        s.onOpenAck(f.window);
        break;
      case 'credit':
        s.onCredit(f.bytes);
        break;
      case 'fin':
        s.onFin();
        break;
      case 'close':
        s.abort(null);
        break;
      case 'error':
        s.abort(
          new VipmeshError(
            f.code.startsWith('VIPMESH_') ? clip(f.code) : 'VIPMESH_TUNNEL_STREAM_RESET',
            clip(f.message, 1024),
          ),
        );
        break;
    }
  }

  async #answer(id: number, method: string, params: unknown): Promise<void> {
    const h = this.#handlers.get(method);
    try {
      if (h === undefined) {
        throw new VipmeshError('VIPMESH_TUNNEL_NO_HANDLER', `no handler for request "${clip(method)}"`);
      }
      const result = await h(params, { node: this.node, session: this });
      this.send(encodeResponse(id, true, result ?? null));
    } catch (err) {
      const code = isVipmeshError(err) ? err.code : 'VIPMESH_TUNNEL_REMOTE_ERROR';
      const message = clip((err as Error)?.message ?? String(err), 1024);
      this.send(encodeResponse(id, false, { code, message }));
    }
  }

  #accept(id: number, window: number, text: string): void {
    const mine = this.role === 'agent' ? 1 : 0;
    if (id % 2 === mine || this.#streams.has(id)) {
      this.close(`protocol error: OPEN with stream id ${id} that is not the peer's to open`, 1002);
      return;
    }
    if (this.#streams.size >= this.#maxStreams) {
      this.#refuse(id, text, 'VIPMESH_TUNNEL_DIAL_REFUSED', `too many streams (${this.#maxStreams})`);
      return;
    }
    const target = text.length > 300 ? undefined : parseTarget(text);
    if (target === undefined || !this.#allow(target)) {
      const [code, why] =
        target === undefined
          ? ['VIPMESH_TUNNEL_BAD_TARGET', `"${clip(text)}" is not a target`]
          : [
              'VIPMESH_TUNNEL_DIAL_REFUSED',
              `${text} is not on ${this.role === 'agent' ? 'the agent' : 'the server'}'s allow-list`,
            ];
      this.#refuse(id, text, code, why);
      return;
    }
    const s = this.#track(new TunnelStream(this, id, text, { window: this.#window, sendCredit: window }));
    const sock = this.#connectTarget(target);
    let connected = false;
    sock.once('connect', () => {
      connected = true;
      if (s.destroyed) {
        sock.destroy();
        return;
      }
      this.send(encodeU32(FrameType.OPEN_ACK, id, this.#window));
      sock.pipe(s);
      s.pipe(sock);
    });
    sock.on('error', (err) => {
      if (!connected) {
        s.destroy(
          new VipmeshError('VIPMESH_TUNNEL_DIAL_FAILED', `${text}: ${err.message}`, {
            cause: err,
            details: { errno: errnoOf(err) },
          }),
        );
      } else s.destroy(err);
    });
    s.on('error', () => sock.destroy());
    s.once('close', () => {
      if (s.aborted) sock.destroy();
    });
  }

  /** Refuse stream `id` with `code`: an ERROR frame to the peer, a count, and a summarised log line. */
  #refuse(id: number, text: string, code: string, why: string): void {
    if (this.#metrics !== undefined) this.#metrics.streamsRefused++;
    this.#refusals.note(this.node, { op: 'dial', target: clip(text), code }, `refused a stream: ${why}`);
    this.send(encodeError(id, code, why));
  }

  #track(s: TunnelStream): TunnelStream {
    this.#streams.set(s.id, s);
    if (this.#metrics !== undefined) this.#metrics.streamsOpen++;
    return s;
  }

  /**
   * Send a heartbeat, and check that the earlier ones are answered: a peer that has not answered a ping
   * the OS took from us `lost-after` ago is not reading (a peer that sends but never reads would otherwise
   * look alive, and have us queue for it without end). The verdict waits for one I/O poll (setImmediate
   * runs after it): if our own event loop was blocked, the answer may be waiting unread in the socket.
   */
  #beat(): void {
    const now = this.#clock.now();
    this.#noteWake(this.#beatDue, now);
    const oldest = this.#pings[0];
    if (oldest?.writtenAt !== undefined) {
      const silentMs = now - oldest.writtenAt;
      const ownMs = this.#stalled - oldest.stalledAtWrite;
      if (silentMs - ownMs >= this.#tunnelDeadMs) {
        setImmediate(() => {
          if (this.#closed !== undefined || this.#pings[0] !== oldest) return;
          this.#cut(
            'unresponsive',
            `heartbeat timeout: no answer to a heartbeat for ${Math.round(silentMs)} ms (the peer is not reading)${ownText(ownMs)}`,
            ABANDON_CODE,
          );
        });
      }
    }
    if (this.#pings.length < MAX_OUTSTANDING_PINGS) {
      const ping: OutstandingPing = { stamp: now, writtenAt: undefined, stalledAtWrite: this.#stalled };
      this.#pings.push(ping);
      const stamp = Buffer.allocUnsafe(8);
      stamp.writeDoubleBE(now, 0);
      if (this.#t.reportsWrites === true) {
        this.send(encodePing(false, stamp), () => {
          if (ping.writtenAt !== undefined) return;
          ping.writtenAt = this.#clock.now();
          ping.stalledAtWrite = this.#stalled;
        });
      } else {
        ping.writtenAt = now;
        this.send(encodePing(false, stamp));
      }
    }
    if (this.#closed !== undefined) return;
    const every = this.#armed ? Math.max(this.#hbMs, this.#armedDeadMs / 4) : this.#hbMs;
    this.#beatDue = now + every;
    this.#hbTimer = this.#clock.setTimeout(() => this.#beat(), every);
  }

  /**
   * A timer due at `due` runs at `now`: count the part of [due, now] not counted yet as our own stall.
   * Timers run a few ms late on any loaded machine; only lateness past a quarter of the heartbeat counts, so
   * ordinary scheduling jitter never stretches the deadline.
   */
  #noteWake(due: number, now: number): void {
    if (now - due <= this.#hbMs / 4) return;
    const from = Math.max(due, this.#stalledUntil);
    if (now > from) this.#stalled += now - from;
    this.#stalledUntil = Math.max(this.#stalledUntil, now);
  }

  /**
   * Judge the peer when `ms` have passed. The silence held against it is the time since it was last heard
   * less our own stalls in that time: while our loop was blocked we neither read its frames nor sent the
   * pings it answers, so a peer we were too busy to hear is not lost. A peer that is really gone is still
   * declared lost `heartbeatMs` × `misses` after it went quiet, plus only the time we ourselves stalled.
   */
  #armDeadline(ms: number, late = false): void {
    const due = this.#clock.now() + ms;
    this.#deadTimer = this.#clock.setTimeout(() => {
      const now = this.#clock.now();
      this.#noteWake(due, now);
      const silent = now - this.#lastHeard;
      const own = this.#stalled - this.#stalledAtHeard;
      const dead = this.#tunnelDeadMs;
      if (silent - own < dead) {
        this.#armDeadline(dead - (silent - own));
      } else if (!late && now - due > this.#hbMs / 2) {
        // This timer itself ran late: our own event loop was blocked, and frames the peer sent meanwhile
        // may be waiting unread in the socket. Let one I/O poll pass (setImmediate runs after it) before
        // calling the peer dead.
        setImmediate(() => {
          if (this.#closed === undefined) this.#armDeadline(0, true);
        });
      } else {
        this.close(`heartbeat timeout: nothing heard for ${Math.round(silent)} ms${ownText(own)}`, 4000);
      }
    }, ms);
  }

  /** Close the session now (streams and pending requests fail with `reason`). */
  close(reason: string, code = 1000): void {
    if (this.#closed !== undefined) return;
    this.#finish(reason);
    try {
      this.#t.close(code, reason);
    } catch (err) {
      this.#log.debug({ err }, 'closing the transport failed');
    }
  }

  /** The transport closed under us (the adapter calls this). */
  transportClosed(reason: string): void {
    if (this.#closed === undefined) this.#finish(reason);
  }

  #closedError(): VipmeshError {
    return new VipmeshError('VIPMESH_TUNNEL_SESSION_CLOSED', `tunnel session closed: ${this.#closed}`);
  }

  #finish(reason: string): void {
    this.#closed = reason;
    if (this.#hbTimer !== undefined) this.#clock.clearTimeout(this.#hbTimer);
    if (this.#deadTimer !== undefined) this.#clock.clearTimeout(this.#deadTimer);
    const err = this.#closedError();
    for (const p of this.#pending.values()) {
      this.#clock.clearTimeout(p.timer);
      p.reject(err);
    }
    this.#pending.clear();
    for (const s of [...this.#streams.values()]) s.abort(err);
    this.emit('close', reason);
  }
}

/** The part of a heartbeat-timeout reason that says how much of the silence was our own stall. */
function ownText(ownMs: number): string {
  return ownMs > 0 ? ` (${Math.round(ownMs)} ms of it this side's own event loop was stalled)` : '';
}

function remoteError(body: unknown): VipmeshError {
  const b = (typeof body === 'object' && body !== null ? body : {}) as { code?: unknown; message?: unknown };
  const code =
    typeof b.code === 'string' && b.code.startsWith('VIPMESH_') ? b.code : 'VIPMESH_TUNNEL_REMOTE_ERROR';
  return new VipmeshError(
    clip(code),
    typeof b.message === 'string' ? clip(b.message, 1024) : 'the peer failed the request',
  );
}

function defaultConnect(t: Target): Duplex {
  const sock = netConnect({ host: t.host, port: t.port, allowHalfOpen: true, noDelay: true });
  // A target that never answers must not hold the stream forever.
  sock.setTimeout(10_000, () => {
    if (sock.connecting) sock.destroy(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' }));
  });
  sock.once('connect', () => sock.setTimeout(0));
  return sock;
}
