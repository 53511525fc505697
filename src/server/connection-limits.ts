import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { Server } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../log.js';
import { Counter, Gauge, type Registry } from '../metrics.js';
import { parseIpBytes } from '../util/ip.js';

/** Deadlines and caps of the HTTPS port. Defaults in brackets. */
export interface ConnectionLimitOptions {
  /** TCP accept to the end of the TLS handshake [5 s]. */
  handshakeTimeoutMs: number;
  /** TLS up to the first request's headers, and each request's headers [5 s]. */
  headersTimeoutMs: number;
  /** The whole request, body included; not the response, so watches stream on [10 s]. */
  requestTimeoutMs: number;
  /** Idle time between two requests on a kept-alive connection [5 s]. */
  keepAliveTimeoutMs: number;
  /** Connections one source (an IPv4 address, an IPv6 /64) may hold before it is trusted [64]. */
  maxPerSource: number;
  /** Connections the port holds in all [half the open-file limit, between 64 and 8192]. */
  maxConnections: number;
  /**
   * Past this many connections, a source already holding `pressurePerSource` untrusted ones is refused,
   * so the room left goes to sources that hold few (agents, health checks, the CLI) [3/4 of maxConnections].
   */
  highWater: number;
  /** See `highWater` [8]. */
  pressurePerSource: number;
  /** Refusals are logged as one summary line per this period [10 s]. */
  logSummaryMs: number;
}

/** Why a connection was refused or cut (the `reason` label of the metrics). */
export type RefusalReason = 'per_source' | 'pressure' | 'global';
export type CutReason = 'handshake' | 'tls_error' | 'idle_after_tls' | 'request_timeout' | 'bad_request';

/**
 * The open-file soft limit of this process from `/proc/self/limits` (Node has no getrlimit; it raises the
 * soft limit to the hard one at start). Undefined when it cannot be read or is unlimited.
 */
export function openFileLimit(text?: string): number | undefined {
  let limits = text;
  if (limits === undefined) {
    try {
      limits = readFileSync('/proc/self/limits', 'utf8');
    } catch {
      return undefined;
    }
  }
  const m = /^Max open files\s+(\S+)/m.exec(limits);
  const n = m === null ? Number.NaN : Number(m[1]);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

/** The defaults, with `maxConnections` from the open-file limit (1024 when it is unknown). */
export function connectionLimitDefaults(nofile = openFileLimit() ?? 1024): ConnectionLimitOptions {
  const maxConnections = Math.min(8192, Math.max(64, Math.floor(nofile / 2)));
  return {
    handshakeTimeoutMs: 5000,
    headersTimeoutMs: 5000,
    requestTimeoutMs: 10_000,
    keepAliveTimeoutMs: 5000,
    maxPerSource: 64,
    maxConnections,
    highWater: Math.floor((maxConnections * 3) / 4),
    pressurePerSource: 8,
    logSummaryMs: 10_000,
  };
}

/**
 * The source a connection counts against: an IPv4 address (IPv4-mapped IPv6 included) or an IPv6 /64, the
 * smallest block one host is usually given.
 */
export function sourceOf(remote: string | undefined): string {
  if (remote === undefined) return 'unknown';
  const b = parseIpBytes(remote);
  if (b === undefined) return remote;
  if (b.length === 4) return remote;
  if (b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) {
    return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  }
  return `${b
    .subarray(0, 8)
    .toString('hex')
    .replace(/(.{4})(?!$)/g, '$1:')}::/64`;
}

interface Conn {
  source: string;
  trusted: boolean;
}

/**
 * Deadlines and connection caps on the HTTPS port of the API and the tunnel. Install with {@link install}
 * on a server created with {@link ConnectionLimits.serverOptions}; call {@link trust} for a connection that
 * showed a valid token (a tunnel upgrade, an API request), which no longer counts against its source.
 */
export class ConnectionLimits {
  readonly o: ConnectionLimitOptions;
  readonly #log: Logger;
  readonly #conns = new Map<string, Conn>();
  /** Untrusted connections by source. */
  readonly #bySource = new Map<string, number>();
  readonly #refused: Counter<'reason'>;
  readonly #cut: Counter<'reason'>;
  #pending = new Map<string, number>();
  #pendingTotal = 0;
  #summaryTimer: NodeJS.Timeout | undefined;

  constructor(o: Partial<ConnectionLimitOptions>, deps: { logger: Logger; registry?: Registry }) {
    const d = connectionLimitDefaults();
    const maxConnections = o.maxConnections ?? d.maxConnections;
    this.o = {
      ...d,
      highWater: Math.floor((maxConnections * 3) / 4),
      ...o,
    } as ConnectionLimitOptions;
    // Node wants the header deadline inside the request deadline.
    this.o.headersTimeoutMs = Math.min(this.o.headersTimeoutMs, this.o.requestTimeoutMs);
    this.#log = deps.logger;
    const registers = deps.registry === undefined ? [] : [deps.registry];
    this.#refused = new Counter({
      name: 'vipmesh_controlplane_api_connections_refused_total',
      help: 'Connections to the HTTPS port closed at accept, by reason (per_source, pressure, global)',
      labelNames: ['reason'],
      registers,
    });
    this.#cut = new Counter({
      name: 'vipmesh_controlplane_api_connections_cut_total',
      help: 'Connections closed by a deadline or a malformed request, by reason',
      labelNames: ['reason'],
      registers,
    });
    const conns = this.#conns;
    new Gauge({
      name: 'vipmesh_controlplane_api_connections',
      help: 'Connections open now on the HTTPS port',
      registers,
      collect() {
        this.set(conns.size);
      },
    });
  }

  /** Options for `https.createServer` (the TLS handshake deadline). */
  serverOptions(): { handshakeTimeout: number; connectionsCheckingInterval: number } {
    const fastest = Math.min(this.o.headersTimeoutMs, this.o.requestTimeoutMs);
    return {
      handshakeTimeout: this.o.handshakeTimeoutMs,
      // How often Node checks the header and request deadlines; its default (30 s) would stretch them.
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(fastest / 2))),
    };
  }

  /** Connections open now. */
  get open(): number {
    return this.#conns.size;
  }

  /** Put the deadlines and the caps on `server` (before it listens). */
  install(server: Server): void {
    server.headersTimeout = this.o.headersTimeoutMs;
    server.requestTimeout = this.o.requestTimeoutMs;
    server.keepAliveTimeout = this.o.keepAliveTimeoutMs;
    // The caps decide before the TLS layer sees the socket: wrap the TLS server's own connection listener.
    const inner = server.listeners('connection') as ((s: Socket) => void)[];
    server.removeAllListeners('connection');
    server.on('connection', (sock: Socket) => {
      if (!this.#admit(sock)) return;
      for (const l of inner) l.call(server, sock);
    });
    // The https server hands TLS errors (tlsClientError) to clientError too: those sockets have no TLS
    // session to answer on.
    const secured = new WeakSet<object>();
    server.on('secureConnection', (sock: TLSSocket) => secured.add(sock));
    server.on('clientError', (err: NodeJS.ErrnoException, sock: Duplex) => {
      if (!secured.has(sock)) {
        this.#cut.inc({ reason: err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT' ? 'handshake' : 'tls_error' });
        sock.destroy();
        return;
      }
      const timeout = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
      this.#cut.inc({ reason: timeout ? 'request_timeout' : 'bad_request' });
      // As Node does: answer only when no response has started on this socket.
      const res = (sock as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
      if (sock.writable && res?.headersSent !== true) {
        const status = timeout ? '408 Request Timeout' : '400 Bad Request';
        sock.write(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      }
      sock.destroy();
    });
    this.#guardFirstRequest(server);
  }

  /** `sock` (the TLS socket of a request or upgrade) showed a valid token. */
  trust(sock: Duplex): void {
    const s = sock as Socket;
    const c = this.#conns.get(keyOf(s));
    if (c === undefined || c.trusted) return;
    c.trusted = true;
    this.#release(c.source);
  }

  /** Stop the summary timer (logging what is pending). */
  close(): void {
    this.#flush();
  }

  #admit(sock: Socket): boolean {
    if (sock.remoteAddress === undefined) {
      sock.destroy(); // reset by the peer before it was accepted
      return false;
    }
    const source = sourceOf(sock.remoteAddress);
    const held = this.#bySource.get(source) ?? 0;
    const reason: RefusalReason | undefined =
      this.#conns.size >= this.o.maxConnections
        ? 'global'
        : held >= this.o.maxPerSource
          ? 'per_source'
          : this.#conns.size >= this.o.highWater && held >= this.o.pressurePerSource
            ? 'pressure'
            : undefined;
    if (reason !== undefined) {
      this.#refuse(sock, source, reason);
      return false;
    }
    const key = keyOf(sock);
    const c: Conn = { source, trusted: false };
    this.#conns.set(key, c);
    this.#bySource.set(source, held + 1);
    sock.once('close', () => {
      if (this.#conns.get(key) !== c) return;
      this.#conns.delete(key);
      if (!c.trusted) this.#release(source);
    });
    return true;
  }

  #release(source: string): void {
    const n = (this.#bySource.get(source) ?? 1) - 1;
    if (n <= 0) this.#bySource.delete(source);
    else this.#bySource.set(source, n);
  }

  #refuse(sock: Socket, source: string, reason: RefusalReason): void {
    this.#refused.inc({ reason });
    // A reset frees the descriptor at once, with no TIME_WAIT on this side.
    sock.resetAndDestroy();
    const k = `${source} ${reason}`;
    this.#pending.set(k, (this.#pending.get(k) ?? 0) + 1);
    this.#pendingTotal++;
    if (this.#summaryTimer === undefined) {
      // A real timer: it paces log lines about real sockets and decides nothing.
      this.#summaryTimer = setTimeout(() => this.#flush(), this.o.logSummaryMs);
      this.#summaryTimer.unref();
    }
  }

  #flush(): void {
    clearTimeout(this.#summaryTimer);
    this.#summaryTimer = undefined;
    if (this.#pendingTotal === 0) return;
    const top = [...this.#pending.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 5)
      .map(([k, n]) => {
        const [source, reason] = k.split(' ');
        return { source, reason, refused: n };
      });
    this.#log.warn(
      {
        refused: this.#pendingTotal,
        sources: this.#pending.size,
        top,
        open: this.#conns.size,
        maxConnections: this.o.maxConnections,
        maxPerSource: this.o.maxPerSource,
      },
      `refused ${this.#pendingTotal} connections to the HTTPS port (connection limits)`,
    );
    this.#pending = new Map();
    this.#pendingTotal = 0;
  }

  /**
   * Close connections that finish TLS but send no request (nor upgrade) within the header deadline: Node's
   * own header deadline starts only with the first byte of a request.
   */
  #guardFirstRequest(server: Server): void {
    const spoke = new WeakSet<object>();
    server.on('secureConnection', (sock: TLSSocket) => {
      // A real timer, like Node's own deadlines it complements: it guards a real socket.
      const timer = setTimeout(() => {
        if (spoke.has(sock) || sock.destroyed) return;
        this.#cut.inc({ reason: 'idle_after_tls' });
        sock.destroy();
      }, this.o.headersTimeoutMs);
      timer.unref();
      sock.once('close', () => clearTimeout(timer));
    });
    server.prependListener('request', (req: IncomingMessage) => spoke.add(req.socket));
    server.prependListener('upgrade', (req: IncomingMessage) => spoke.add(req.socket));
  }
}

function keyOf(sock: Socket): string {
  return `${sock.remoteAddress}|${sock.remotePort}`;
}
