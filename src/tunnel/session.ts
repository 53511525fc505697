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
import type { TunnelMetrics } from './metrics.js';
import { type StreamOwner, TunnelStream } from './stream.js';
import { type AllowFn, parseTarget, type Target, targetOf } from './target.js';

/** The wire under a session: one binary message per frame (a websocket, or an in-memory pair in tests). */
export interface FrameTransport {
  send(frame: Buffer): void;
  /** Close now (no waiting for the peer); `code` is a websocket close code. */
  close(code: number, reason: string): void;
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
}

/** The session settings the tunnel client and server take and pass to each of their sessions. */
export type SessionTuning = Pick<
  SessionOptions,
  'heartbeatMs' | 'misses' | 'windowBytes' | 'requestTimeoutMs' | 'maxStreams'
>;

/** Only the {@link SessionTuning} fields of `o` (an owner's options hold more). */
export function sessionTuning(o: SessionTuning): SessionTuning {
  return {
    heartbeatMs: o.heartbeatMs,
    misses: o.misses,
    windowBytes: o.windowBytes,
    requestTimeoutMs: o.requestTimeoutMs,
    maxStreams: o.maxStreams,
  };
}

/** Events of a {@link Session}. */
interface SessionEvents {
  hello: [info: unknown];
  push: [topic: string, payload: unknown];
  /** The session ended; `reason` says why (heartbeat timeout, protocol error, closed by peer...). */
  close: [reason: string];
}

interface PendingRequest {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: TimerHandle;
}

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
  #hbTimer: TimerHandle | undefined;
  #deadTimer: TimerHandle | undefined;
  #closed: string | undefined;
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
    this.#deadMs = this.#hbMs * (o.misses ?? 3);
    this.#window = o.windowBytes ?? 1024 * 1024;
    this.#requestTimeoutMs = o.requestTimeoutMs ?? 5000;
    this.#allow = o.allow ?? (() => false);
    this.#connectTarget = o.connectTarget ?? defaultConnect;
    this.#maxStreams = o.maxStreams ?? 10_000;
    this.#handlers = o.handlers ?? new Map();
    this.#nextStream = o.role === 'agent' ? 1 : 2;
    this.#lastHeard = this.#clock.now();
    this.#beat();
    this.#armDeadline(this.#deadMs);
  }

  /** Why the session closed, or undefined while it is up. */
  get closedReason(): string | undefined {
    return this.#closed;
  }

  /** Streams currently open. */
  get streamCount(): number {
    return this.#streams.size;
  }

  /** @internal Put a frame on the wire (streams call this). */
  send(frame: Buffer): void {
    if (this.#closed !== undefined) return;
    if (this.#metrics !== undefined) this.#metrics.bytesOut += frame.length;
    this.#t.send(frame);
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
        const rtt = this.#clock.now() - f.stamp.readDoubleBE(0);
        if (rtt >= 0 && rtt < 3_600_000) {
          this.rttMs = rtt;
          this.#metrics?.rtt.observe({ role: this.#metrics.role }, rtt / 1000);
        }
        return;
      }
      case 'request':
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
          new VipmeshError(f.code.startsWith('VIPMESH_') ? f.code : 'VIPMESH_TUNNEL_STREAM_RESET', f.message),
        );
        break;
    }
  }

  async #answer(id: number, method: string, params: unknown): Promise<void> {
    const h = this.#handlers.get(method);
    try {
      if (h === undefined) {
        throw new VipmeshError('VIPMESH_TUNNEL_NO_HANDLER', `no handler for request "${method}"`);
      }
      const result = await h(params, { node: this.node, session: this });
      this.send(encodeResponse(id, true, result ?? null));
    } catch (err) {
      const code = isVipmeshError(err) ? err.code : 'VIPMESH_TUNNEL_REMOTE_ERROR';
      this.send(encodeResponse(id, false, { code, message: (err as Error)?.message ?? String(err) }));
    }
  }

  #accept(id: number, window: number, text: string): void {
    const mine = this.role === 'agent' ? 1 : 0;
    if (id % 2 === mine || this.#streams.has(id)) {
      this.close(`protocol error: OPEN with stream id ${id} that is not the peer's to open`, 1002);
      return;
    }
    if (this.#streams.size >= this.#maxStreams) {
      this.send(encodeError(id, 'VIPMESH_TUNNEL_DIAL_REFUSED', `too many streams (${this.#maxStreams})`));
      return;
    }
    const target = parseTarget(text);
    if (target === undefined || !this.#allow(target)) {
      const [code, why] =
        target === undefined
          ? ['VIPMESH_TUNNEL_BAD_TARGET', `"${text}" is not a target`]
          : [
              'VIPMESH_TUNNEL_DIAL_REFUSED',
              `${text} is not on ${this.role === 'agent' ? 'the agent' : 'the server'}'s allow-list`,
            ];
      this.#log.info({ op: 'dial', node: this.node, target: text }, 'refused a stream');
      this.send(encodeError(id, code, why));
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

  #track(s: TunnelStream): TunnelStream {
    this.#streams.set(s.id, s);
    if (this.#metrics !== undefined) this.#metrics.streamsOpen++;
    return s;
  }

  #beat(): void {
    const stamp = Buffer.allocUnsafe(8);
    stamp.writeDoubleBE(this.#clock.now(), 0);
    this.send(encodePing(false, stamp));
    this.#hbTimer = this.#clock.setTimeout(() => this.#beat(), this.#hbMs);
  }

  #armDeadline(ms: number, late = false): void {
    const due = this.#clock.now() + ms;
    this.#deadTimer = this.#clock.setTimeout(() => {
      const now = this.#clock.now();
      const silent = now - this.#lastHeard;
      if (silent < this.#deadMs) {
        this.#armDeadline(this.#deadMs - silent);
      } else if (!late && now - due > this.#hbMs / 2) {
        // This timer itself ran late: our own event loop was blocked, and frames the peer sent meanwhile
        // may be waiting unread in the socket. Let one I/O poll pass (setImmediate runs after it) before
        // calling the peer dead.
        setImmediate(() => {
          if (this.#closed === undefined) this.#armDeadline(0, true);
        });
      } else {
        this.close(`heartbeat timeout: nothing heard for ${Math.round(silent)} ms`, 4000);
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

function remoteError(body: unknown): VipmeshError {
  const b = (typeof body === 'object' && body !== null ? body : {}) as { code?: unknown; message?: unknown };
  const code =
    typeof b.code === 'string' && b.code.startsWith('VIPMESH_') ? b.code : 'VIPMESH_TUNNEL_REMOTE_ERROR';
  return new VipmeshError(code, typeof b.message === 'string' ? b.message : 'the peer failed the request');
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
