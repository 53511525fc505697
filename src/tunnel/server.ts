import { EventEmitter } from 'node:events';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { WebSocketServer } from 'ws';
import { type Clock, systemClock } from '../clock.js';
import { VipmeshError } from '../errors.js';
import { type Logger, silentLogger } from '../log.js';
import { createRegistry, type Registry } from '../metrics.js';
import type { ClaimVerdict, ConnectAuthorizer, ConnectVerdict, SessionClaims } from './authorizer.js';
import { clip, LogSummary } from './limits.js';
import { LivenessHub } from './liveness.js';
import { TunnelMetrics } from './metrics.js';
import { type RequestHandler, Session, type SessionTuning, sessionTuning } from './session.js';
import type { TunnelStream } from './stream.js';
import { type AllowFn, allowList } from './target.js';
import { WsTransport } from './ws-transport.js';

/** The path agents connect to. */
export const CONNECT_PATH = '/v1/connect';
/** Request headers the agent authenticates with (besides `Authorization: Bearer <join token>`). */
export const NODE_HEADER = 'x-vipmesh-node';
export const PASSWORD_HEADER = 'x-vipmesh-node-password';
/** Response header of a 409/429 refusal: when to try again, in ms (`Retry-After` carries it in seconds). */
export const RETRY_AFTER_MS_HEADER = 'x-vipmesh-retry-after-ms';
/** Websocket close code for a session refused at HELLO because its node already has a live one. */
export const NODE_IN_USE_CLOSE_CODE = 4009;

/** What an agent registers in its HELLO (sent again on every reconnect). */
export interface Registration {
  node: string;
  /** Loopback ports the agent serves through the tunnel (its default allow-list). */
  ports: number[];
  version?: string;
  /** Anything else the agent wants the control plane to know. */
  info?: unknown;
}

/** Events of a {@link TunnelServer}. */
interface TunnelServerEvents {
  /** A new session is up (after the agent's HELLO). Wire per-session handlers here. */
  session: [session: Session, registration: Registration];
  /** A node that had no session has one now; `reconnect` when it was seen before. */
  'node-seen': [event: { node: string; registration: Registration; reconnect: boolean; session: Session }];
  /** A node's session ended and no other replaced it. */
  'node-lost': [event: { node: string; reason: string }];
  /**
   * A connection for `node` was refused because the node already has a live session (a cloned node, or an
   * agent restarted before its old session was known dead). The live session is kept.
   */
  conflict: [event: { node: string; remote: string | undefined; reason: string }];
}

/** Options of a {@link TunnelServer}. Defaults in brackets. */
export interface TunnelServerOptions extends SessionTuning {
  /** Decides on each agent's connection (its token, node name and password) and names the node. */
  authorize: ConnectAuthorizer;
  /** Where a node's session is claimed cluster-wide (several servers); default: this server alone decides. */
  claims?: SessionClaims;
  /** The CA PEM served at `/cacerts`. */
  caCertPem: string;
  clock?: Clock;
  logger?: Logger;
  registry?: Registry;
  /** `host:port` targets agents may open streams to on the server's side [none]. */
  allow?: string[] | AllowFn;
  /** Time from TLS up to the agent's HELLO [5 s]. */
  handshakeTimeoutMs?: number;
  /** Largest frame accepted; bigger ones close the session (websocket 1009) [1 MiB]. */
  maxFrameBytes?: number;
  /** Window over which refused streams and refused connections are summarised in the log [10 s]. */
  logSummaryMs?: number;
}

/**
 * The server end of the tunnel: takes agents on `/v1/connect` when the injected authorizer accepts their
 * credentials (the bearer token, node name and node password headers), keeps one session per node, and
 * emits `session`, `node-seen` and `node-lost`. Mount it on an existing HTTPS server with
 * {@link TunnelServer.handleUpgrade} and {@link TunnelServer.handleCacerts} (or `attach`).
 */
export class TunnelServer extends EventEmitter<TunnelServerEvents> {
  readonly metrics: TunnelMetrics;
  readonly #o: TunnelServerOptions;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #wss: WebSocketServer;
  readonly #allow: AllowFn;
  readonly #handlers = new Map<string, RequestHandler>();
  readonly #sessions = new Map<string, Session>();
  readonly #seen = new Set<string>();
  readonly #pending = new Set<Session>();
  #closing = false;
  #liveness: LivenessHub | undefined;
  /** Set while the liveness port is being bound. */
  #livenessStarting: Promise<void> | undefined;
  readonly #refusedStreams: LogSummary;
  readonly #refusedConnects: LogSummary;

  constructor(o: TunnelServerOptions) {
    super();
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
    this.#log = o.logger ?? silentLogger();
    this.metrics = new TunnelMetrics(o.registry ?? createRegistry(), 'server');
    const summary = { clock: this.#clock, logger: this.#log, windowMs: o.logSummaryMs ?? 10_000 };
    this.#refusedStreams = new LogSummary({ ...summary, level: 'info', what: 'streams', keyField: 'node' });
    this.#refusedConnects = new LogSummary({
      ...summary,
      level: 'warn',
      what: 'tunnel connections',
      keyField: 'remote',
    });
    this.#allow = typeof o.allow === 'function' ? o.allow : allowList(o.allow ?? []);
    this.#wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: o.maxFrameBytes ?? 1 << 20,
    });
  }

  /**
   * Take liveness datagrams (see liveness.ts) on `host`:`port`/udp, the number of the HTTPS port the tunnel
   * is served on. Sessions that start from now on are granted them. When the port cannot be bound, this
   * logs why and sessions keep to their tunnel heartbeats alone. Never rejects; welcomes wait for it.
   */
  listenLiveness(host: string, port: number): Promise<void> {
    const starting = this.#startLiveness(host, port).finally(() => {
      if (this.#livenessStarting === starting) this.#livenessStarting = undefined;
    });
    this.#livenessStarting = starting;
    return starting;
  }

  async #startLiveness(host: string, port: number): Promise<void> {
    try {
      const hub = await LivenessHub.listen(host, port, this.#log);
      if (this.#closing) {
        await hub.close();
        return;
      }
      this.#liveness = hub;
      this.metrics.liveness = () => hub.counts;
      this.#log.debug({ port: hub.port }, 'liveness datagrams on udp');
    } catch (err) {
      this.#log.warn(
        { err },
        'no liveness datagrams: node loss is judged by the tunnel heartbeats alone, which a stalled event loop can mistake for a dead node',
      );
    }
  }

  /** Sessions by node name. */
  get sessions(): ReadonlyMap<string, Session> {
    return this.#sessions;
  }

  /** Answer `method` requests from agents. */
  onRequest(method: string, handler: RequestHandler): void {
    this.#handlers.set(method, handler);
  }

  /** Open a stream to `address` (`host:port`) on `node`'s side; `VIPMESH_TUNNEL_NO_SESSION` when it has none. */
  dial(node: string, address: string): TunnelStream {
    return this.#session(node).dial('tcp', address);
  }

  /** Call `method` on `node`'s agent. */
  request<R = unknown>(
    node: string,
    method: string,
    params?: unknown,
    opts?: { timeoutMs?: number },
  ): Promise<R> {
    return this.#session(node).request<R>(method, params, opts);
  }

  /** Push `payload` on `topic` to `node`; false when the node has no session. */
  push(node: string, topic: string, payload: unknown): boolean {
    const s = this.#sessions.get(node);
    if (s === undefined) return false;
    s.push(topic, payload);
    return true;
  }

  #session(node: string): Session {
    const s = this.#sessions.get(node);
    if (s === undefined)
      throw new VipmeshError('VIPMESH_TUNNEL_NO_SESSION', `node ${node} has no tunnel session`);
    return s;
  }

  /** Serve `GET /cacerts` (the CA PEM, unauthenticated: agents pin it by hash). False for other requests. */
  handleCacerts(req: IncomingMessage, res: ServerResponse): boolean {
    if (req.url?.split('?')[0] !== '/cacerts' || req.method !== 'GET') return false;
    res.writeHead(200, { 'content-type': 'application/x-pem-file' });
    res.end(this.#o.caCertPem);
    return true;
  }

  /**
   * Take an HTTP upgrade if it is for `/v1/connect` (true), else leave it to the caller (false). Refusals
   * answer the status the authorizer gives (401 for a bad token, 400 for a node name or password missing,
   * 403 for a name taken by another password, 429 for too many new nodes, 500 when it fails), or 409 with
   * `Retry-After` when the node already has a live session: a live session is never replaced, so two
   * machines with one identity cannot both hold it; the old session of a restarted agent goes once it
   * misses its heartbeats, and the retry after that gets in.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    if (req.url?.split('?')[0] !== CONNECT_PATH) return false;
    void this.#upgrade(req, socket, head);
    return true;
  }

  async #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const remote = (socket as TLSSocket).remoteAddress;
    const auth = req.headers.authorization ?? '';
    let verdict: ConnectVerdict;
    try {
      verdict = await this.#o.authorize({
        token: auth.startsWith('Bearer ') ? auth.slice(7) : '',
        node: String(req.headers[NODE_HEADER] ?? ''),
        password: String(req.headers[PASSWORD_HEADER] ?? ''),
        remote,
      });
    } catch (err) {
      this.#log.error({ err }, 'the connection authorizer failed');
      verdict = { accept: false, status: 500, reason: 'the connection authorizer failed' };
    }
    if (!verdict.accept) {
      const fields = verdict.node === undefined ? { remote } : { remote, node: clip(verdict.node) };
      this.#refuse(socket, verdict.status, verdict.reason, fields, verdict.retryAfterMs);
      return;
    }
    const node = verdict.node;
    if (socket.destroyed || this.#closing) {
      socket.destroy();
      return;
    }
    const live = this.#sessions.get(node);
    if (live !== undefined) {
      const retryAfterMs = this.#inUse(node, live, remote);
      this.#refuse(socket, 409, inUseReason(node, live), { remote, node }, retryAfterMs);
      return;
    }
    let release: (() => void) | undefined;
    let opened = false;
    if (this.#o.claims !== undefined) {
      let claim: ClaimVerdict;
      try {
        claim = await this.#o.claims.claim(node);
      } catch (err) {
        this.#log.error({ err, node }, 'cannot claim the node session');
        this.#refuse(socket, 500, 'cannot record the session in the datastore', { remote, node });
        return;
      }
      if (!claim.ok) {
        const reason = heldElsewhereReason(node, claim.holder);
        this.#conflict(node, remote, reason, { holder: claim.holder });
        this.#refuse(socket, 409, reason, { remote, node }, claim.retryAfterMs);
        return;
      }
      release = claim.release;
      if (socket.destroyed || this.#closing) {
        release();
        socket.destroy();
        return;
      }
      // An upgrade that fails never opens a session: its claim goes with the socket.
      const r = release;
      socket.once('close', () => {
        if (!opened) r();
      });
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      opened = true;
      this.#open(new WsTransport(ws, socket), node, remote, release);
    });
  }

  /** Count and report a connection for `node` while `live` holds it; returns when to retry, in ms. */
  #inUse(node: string, live: Session, remote: string | undefined): number {
    this.#conflict(node, remote, inUseReason(node, live), { silentMs: Math.round(live.silentMs) });
    // The live session is declared dead after deadAfterMs of silence: a retry just after that gets in.
    return Math.max(live.deadAfterMs - live.silentMs, 0) + (this.#o.heartbeatMs ?? 100);
  }

  /** Count, log and report a connection refused because `node` has a live session (here or elsewhere). */
  #conflict(node: string, remote: string | undefined, reason: string, fields: Record<string, unknown>): void {
    this.metrics.conflicts++;
    this.#log.warn({ op: 'connect', node, remote, ...fields }, reason);
    this.emit('conflict', { node, remote, reason });
  }

  #refuse(
    socket: Duplex,
    status: number,
    why: string,
    fields: Record<string, unknown>,
    retryAfterMs?: number,
  ): void {
    if (status !== 409) {
      // A 409 is counted and logged as a conflict by #inUse.
      this.metrics.authFailures++;
      this.#refusedConnects.note(
        String(fields['remote'] ?? 'unknown'),
        { op: 'connect', status, ...fields },
        `refused a tunnel connection: ${why}`,
      );
    }
    const text = {
      400: 'Bad Request',
      401: 'Unauthorized',
      403: 'Forbidden',
      409: 'Conflict',
      429: 'Too Many Requests',
      500: 'Internal Server Error',
    }[status];
    const retry =
      retryAfterMs === undefined
        ? ''
        : `Retry-After: ${Math.max(1, Math.ceil(retryAfterMs / 1000))}\r\n` +
          `${RETRY_AFTER_MS_HEADER}: ${Math.ceil(retryAfterMs)}\r\n`;
    const body = `${why}\n`;
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    socket.once('finish', () => socket.destroy());
    socket.end(
      `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\n` +
        `${retry}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }

  #open(transport: WsTransport, node: string, remote: string | undefined, release?: () => void): void {
    const s = new Session({
      role: 'server',
      node,
      transport,
      clock: this.#clock,
      logger: this.#log,
      metrics: this.metrics,
      ...sessionTuning(this.#o),
      allow: this.#allow,
      handlers: this.#handlers,
      refusals: this.#refusedStreams,
    });
    transport.bind(s);
    this.#pending.add(s);
    const helloTimer = this.#clock.setTimeout(
      () => s.close('no HELLO within the handshake timeout', 1008),
      this.#o.handshakeTimeoutMs ?? 5000,
    );
    s.once('close', (reason) => {
      this.#pending.delete(s);
      this.#clock.clearTimeout(helloTimer);
      release?.();
      if (this.#sessions.get(node) !== s) return;
      this.#sessions.delete(node);
      this.metrics.sessions--;
      this.#log.info({ node, reason }, 'node lost');
      if (!this.#closing) this.emit('node-lost', { node, reason });
    });
    s.once('hello', (info) => {
      this.#clock.clearTimeout(helloTimer);
      // At start the liveness port may still be binding: the welcome waits for it (tens of ms), so that
      // the first sessions are granted datagrams too.
      if (this.#livenessStarting === undefined) this.#welcome(s, node, remote, info);
      else
        void this.#livenessStarting.then(() => {
          if (s.closedReason === undefined) this.#welcome(s, node, remote, info);
        });
    });
  }

  /** Answer `s`'s HELLO: it becomes `node`'s session, unless the node has another live one. */
  #welcome(s: Session, node: string, remote: string | undefined, info: unknown): void {
    this.#pending.delete(s);
    const reg = registrationOf(node, info);
    const live = this.#sessions.get(node);
    if (live !== undefined) {
      // Two connections for one node passed the upgrade together: the first HELLO keeps the node.
      this.#inUse(node, live, remote);
      s.close(inUseReason(node, live), NODE_IN_USE_CLOSE_CODE);
      return;
    }
    this.#sessions.set(node, s);
    this.metrics.sessions++;
    const reconnect = this.#seen.has(node);
    this.#seen.add(node);
    const heartbeatMs = this.#o.heartbeatMs ?? 100;
    const misses = this.#o.misses ?? 3;
    const link = this.#liveness?.expect(
      { intervalMs: heartbeatMs, deadAfterMs: heartbeatMs * misses },
      {
        armed: () => s.setLivenessArmed(true),
        lost: (silentMs) => {
          if (Number.isNaN(silentMs)) s.setLivenessArmed(false);
          else s.close(`heartbeat timeout: no liveness datagram for ${Math.round(silentMs)} ms`, 4000);
        },
      },
    );
    if (link !== undefined) s.once('close', () => link.drop());
    s.hello({ heartbeatMs, misses, ...(link === undefined ? {} : { liveness: link.grant }) });
    this.#log.info({ node, remote, reconnect }, 'node connected');
    this.emit('session', s, reg);
    this.emit('node-seen', { node, registration: reg, reconnect, session: s });
  }

  /**
   * Mount on `server`: upgrades to `/v1/connect` go to the tunnel (others get 404), `GET /cacerts` is
   * answered (other requests get 404), and {@link guardHandshakes} applies. Use this for a server of the
   * tunnel's own; the control plane routes to the handlers itself.
   */
  attach(server: Server, opts: { handshakeTimeoutMs?: number } = {}): void {
    guardHandshakes(server, { timeoutMs: opts.handshakeTimeoutMs ?? this.#o.handshakeTimeoutMs ?? 5000 });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (!this.handleCacerts(req, res)) {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('not found\n');
      }
    });
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (!this.handleUpgrade(req, socket, head)) {
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      }
    });
  }

  /**
   * Close every session (no `node-lost` events: the server is going away, not the nodes). Resolves once
   * the liveness port is free again.
   */
  async close(): Promise<void> {
    this.#closing = true;
    this.#refusedStreams.flush();
    this.#refusedConnects.flush();
    for (const s of [...this.#sessions.values(), ...this.#pending]) s.close('server shutting down', 1001);
    const hub = this.#liveness;
    this.#liveness = undefined;
    // The goodbye frames are written; do not wait for the agents to answer them.
    setImmediate(() => {
      for (const ws of this.#wss.clients) ws.terminate();
      this.#wss.close();
    });
    await this.#livenessStarting;
    await hub?.close();
  }
}

/**
 * Close connections that finish TLS but send no request (nor upgrade) within `timeoutMs` [5 s]: Node's own
 * header timeout is checked only every 30 s, and a client that says nothing after the handshake would
 * otherwise hold a socket that long. Pass `handshakeTimeout` to `https.createServer` for the TLS part.
 */
function guardHandshakes(server: Server, opts: { timeoutMs?: number } = {}): void {
  const ms = opts.timeoutMs ?? 5000;
  const spoke = new WeakSet<object>();
  server.on('secureConnection', (sock: TLSSocket) => {
    // A real timer, like Node's own header timeout it complements: it guards a real socket.
    const timer = setTimeout(() => {
      if (!spoke.has(sock)) sock.destroy();
    }, ms);
    timer.unref();
    sock.once('close', () => clearTimeout(timer));
  });
  server.prependListener('request', (req: IncomingMessage) => spoke.add(req.socket));
  server.prependListener('upgrade', (req: IncomingMessage) => spoke.add(req.socket));
}

function inUseReason(node: string, live: Session): string {
  return (
    `node ${node} already has a live tunnel session (heard from ${Math.round(live.silentMs)} ms ago): ` +
    "another machine runs with this node's identity (a copied data directory?), or this agent restarted " +
    `and its old session is dropped after ${live.deadAfterMs} ms of silence`
  );
}

function heldElsewhereReason(node: string, holder: string): string {
  return (
    `node ${node} already has a live tunnel session on server ${holder}: another machine runs with this ` +
    `node's identity (a copied data directory?), or this agent moved here and the session on ${holder} ` +
    'ends once its heartbeats stop (or that server is gone and its lease expires)'
  );
}

function registrationOf(node: string, info: unknown): Registration {
  const i = (typeof info === 'object' && info !== null ? info : {}) as Record<string, unknown>;
  const ports = Array.isArray(i['ports'])
    ? i['ports'].filter((p): p is number => Number.isInteger(p) && p > 0 && p < 65536)
    : [];
  const reg: Registration = { node, ports };
  if (typeof i['version'] === 'string') reg.version = i['version'];
  if (i['info'] !== undefined) reg.info = i['info'];
  return reg;
}
