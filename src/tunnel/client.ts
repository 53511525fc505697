import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Clock, systemClock, type TimerHandle } from '../clock.js';
import { errnoOf, VipmeshError } from '../errors.js';
import { type Logger, silentLogger } from '../log.js';
import { createRegistry, type Registry } from '../metrics.js';
import { caHashOf } from '../util/ca-pin.js';
import { Backoff } from './backoff.js';
import { type Connector, isSilentFailure, wsConnector } from './connector.js';
import { grantOf, LivenessHub } from './liveness.js';
import { TunnelMetrics } from './metrics.js';
import { NODE_HEADER, NODE_IN_USE_CLOSE_CODE, PASSWORD_HEADER, type Registration } from './server.js';
import { type RequestHandler, Session, type SessionTuning, sessionTuning } from './session.js';
import type { TunnelStream } from './stream.js';
import { type AllowFn, allowList, loopbackPorts } from './target.js';

/** Options of a {@link TunnelClient}. Defaults in brackets. */
export interface TunnelClientOptions extends SessionTuning {
  /** Server URLs (`https://host:6443`), tried in order. */
  servers: string[];
  /** The join token, sent as `Authorization: Bearer <token>` as it is (the server judges it). */
  token: string;
  /**
   * sha256 hex of the server's CA PEM (the hash a `K10<hash>::...` token carries): the CA fetched from
   * `/cacerts` is trusted only when it hashes to this.
   */
  caHash: string;
  /** This node's name. */
  node: string;
  /** Where the node password (`agent/node-password`) and the pinned CA (`agent/server-ca.crt`) live. */
  dataDir: string;
  /** Loopback ports this agent serves through the tunnel: registered, and the default allow-list. */
  ports?: number[];
  /** `host:port` targets the server may open streams to [each port on 127.0.0.1 and ::1]. */
  allow?: string[] | AllowFn;
  /** Extra registration data sent in every HELLO. */
  info?: unknown;
  version?: string;
  clock?: Clock;
  logger?: Logger;
  registry?: Registry;
  /** First retry within this [100 ms]; doubles per failure the server answered. */
  backoffBaseMs?: number;
  /** Longest wait between attempts [5 s]. */
  backoffCapMs?: number;
  /**
   * TCP connect timeout of one attempt [400 ms]. A SYN lost to a cut cable is retried by the kernel only
   * after 1 s, so a fresh attempt this often (plus a 50-100 ms pause) is what brings the agent back within
   * a second of the network returning. A LAN answers a SYN in well under 10 ms; raise it for a slow WAN.
   * After a cut the kernel's ARP retry (net.ipv4.neigh.<if>.retrans_time_ms, 1 s) is a floor no attempt
   * can beat (measured 0.2-1.1 s to reconnect) unless `neighbourProbe` asks sooner (40-120 ms).
   */
  tcpTimeoutMs?: number;
  /** TLS + upgrade + HELLO timeout of one attempt [5 s]. */
  connectTimeoutMs?: number;
  random?: () => number;
  connector?: Connector;
  /**
   * Send liveness datagrams when the server grants them [true]: a native thread pings the server, so a
   * stall of this agent's event loop is not taken for a dead node (see liveness.ts).
   */
  liveness?: boolean;
  /**
   * Started when the session is lost or an attempt met silence, stopped when anything answers [none]. The
   * agent passes the ARP/NDP one of src/arp (LinkNeighbourProbe), which keeps the server's link-layer
   * address fresh so a reconnect does not wait for the kernel's 1 s ARP retry.
   */
  neighbourProbe?: NeighbourProbe;
}

/** What {@link TunnelClientOptions.neighbourProbe} is: started and stopped, both idempotent. */
export interface NeighbourProbe {
  start(): void;
  stop(): void;
}

/** Events of a {@link TunnelClient}. */
interface TunnelClientEvents {
  connected: [event: { session: Session; url: string; reconnect: boolean }];
  disconnected: [event: { reason: string }];
  push: [topic: string, payload: unknown];
  /** The client gave up for good (wrong token, CA mismatch, name taken): it will not retry. */
  failed: [err: VipmeshError];
  /**
   * The server refused this attempt for now: `VIPMESH_TUNNEL_NODE_IN_USE` (the node already has a live
   * session there) or `VIPMESH_TUNNEL_JOIN_LIMIT` (too many new nodes). The client retries after
   * `details.retryAfterMs` at the earliest.
   */
  refused: [err: VipmeshError];
}

/** Refusals that say "not now": retried, no sooner than the server asked. */
const REFUSED_FOR_NOW = new Set(['VIPMESH_TUNNEL_NODE_IN_USE', 'VIPMESH_TUNNEL_JOIN_LIMIT']);

/** Errors no retry can fix. */
const FATAL = new Set([
  'VIPMESH_TUNNEL_UNAUTHORIZED',
  'VIPMESH_TUNNEL_NODE_PASSWORD',
  'VIPMESH_TUNNEL_CA_MISMATCH',
  'VIPMESH_TUNNEL_BAD_TOKEN',
  'VIPMESH_TUNNEL_AGENT_DATA',
]);

/**
 * The agent end: keeps exactly one session to one of `servers`, reconnecting with capped exponential
 * backoff plus jitter. Every step of an attempt has a timeout and a live session has heartbeats, so the
 * loop cannot wedge. Request handlers registered with `onRequest` survive reconnects.
 */
export class TunnelClient extends EventEmitter<TunnelClientEvents> {
  readonly metrics: TunnelMetrics;
  readonly #o: TunnelClientOptions;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #backoff: Backoff;
  readonly #connector: Connector;
  readonly #probe: NeighbourProbe;
  readonly #allow: AllowFn;
  readonly #handlers = new Map<string, RequestHandler>();
  #session: Session | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;
  #sleepTimer: TimerHandle | undefined;
  #wake: (() => void) | undefined;
  #everConnected = false;
  #liveness: LivenessHub | undefined;

  constructor(o: TunnelClientOptions) {
    super();
    if (o.servers.length === 0) throw new VipmeshError('VIPMESH_TUNNEL_CONNECT', 'no server URL given');
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
    this.#log = o.logger ?? silentLogger();
    this.metrics = new TunnelMetrics(o.registry ?? createRegistry(), 'agent');
    this.#backoff = new Backoff({ baseMs: o.backoffBaseMs, capMs: o.backoffCapMs, random: o.random });
    this.#connector = o.connector ?? wsConnector();
    this.#probe = o.neighbourProbe ?? { start() {}, stop() {} };
    this.#allow =
      typeof o.allow === 'function' ? o.allow : allowList(o.allow ?? loopbackPorts(o.ports ?? []));
  }

  /** The current session, if connected. */
  get session(): Session | undefined {
    return this.#session;
  }

  /**
   * Start the connection loop; resolves once the first session is up. Rejects (and stops) on errors no
   * retry can fix: a wrong token (`VIPMESH_TUNNEL_UNAUTHORIZED`), the name taken by another node
   * (`VIPMESH_TUNNEL_NODE_PASSWORD`), `VIPMESH_TUNNEL_CA_MISMATCH`.
   */
  connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      const ok = () => {
        this.off('failed', bad);
        resolve();
      };
      const bad = (err: VipmeshError) => {
        this.off('connected', ok);
        reject(err);
      };
      this.once('connected', ok);
      this.once('failed', bad);
      this.#running ??= this.#loop();
    });
  }

  /** Answer `method` requests from the server (kept across reconnects). */
  onRequest(method: string, handler: RequestHandler): void {
    this.#handlers.set(method, handler);
  }

  /** Call `method` on the server. */
  request<R = unknown>(method: string, params?: unknown, opts?: { timeoutMs?: number }): Promise<R> {
    const s = this.#session;
    if (s === undefined) return Promise.reject(noSession());
    return s.request<R>(method, params, opts);
  }

  /** Open a stream to `address` on the server's side. */
  dial(network: string, address: string): TunnelStream {
    const s = this.#session;
    if (s === undefined) throw noSession();
    return s.dial(network, address);
  }

  /** Stop: close the session and the loop. */
  async close(): Promise<void> {
    this.#stopped = true;
    if (this.#sleepTimer !== undefined) this.#clock.clearTimeout(this.#sleepTimer);
    this.#wake?.();
    this.#probe.stop();
    this.#session?.close('agent shutting down', 1001);
    await this.#running;
    await this.#liveness?.close();
  }

  async #loop(): Promise<void> {
    let idx = 0;
    while (!this.#stopped) {
      const url = this.#o.servers[idx]!;
      let escalate = true;
      try {
        const session = await this.#attempt(url);
        if (session !== undefined) {
          this.#backoff.reset();
          idx = 0;
          const reason = await new Promise<string>((resolve) => {
            if (session.closedReason !== undefined) resolve(session.closedReason);
            else session.once('close', resolve);
          });
          this.#session = undefined;
          this.metrics.sessions--;
          // Our own close() ended it: the caller says what stopping means; nothing was lost.
          if (this.#stopped) this.#log.debug({ url, reason }, 'tunnel session closed');
          else this.#log.warn({ url, reason }, 'tunnel session lost');
          if (!this.#stopped) this.#probe.start();
          this.emit('disconnected', { reason });
          escalate = false; // losing a session is not a failed attempt
        }
      } catch (err) {
        const e = err instanceof VipmeshError ? err : new VipmeshError('VIPMESH_TUNNEL_CONNECT', String(err));
        // Nothing answered: the link may be down, so keep the server's address fresh. Any answer means it is not.
        if (isSilentFailure(e) && !this.#stopped) this.#probe.start();
        else this.#probe.stop();
        if (FATAL.has(e.code)) {
          this.#log.error({ url, code: e.code }, e.message);
          this.#stopped = true;
          this.emit('failed', e);
          return;
        }
        if (REFUSED_FOR_NOW.has(e.code)) {
          if (e.code === 'VIPMESH_TUNNEL_NODE_IN_USE') this.metrics.conflicts++;
          this.#log.warn({ url, code: e.code }, `the server refused this agent for now: ${e.message}`);
          this.emit('refused', e);
          const wait = Math.max(Number(e.details['retryAfterMs'] ?? 0), this.#backoff.next(true));
          if (this.#stopped) return;
          await this.#sleep(wait);
          continue;
        }
        escalate = !isSilentFailure(e);
        this.#log.debug(
          { url, code: e.code, errno: errnoOf(e.cause) },
          `connect attempt failed: ${e.message}`,
        );
        idx = (idx + 1) % this.#o.servers.length;
      }
      if (this.#stopped) return;
      await this.#sleep(this.#backoff.next(escalate));
    }
  }

  async #attempt(url: string): Promise<Session | undefined> {
    const timeoutMs = this.#o.connectTimeoutMs ?? 5000;
    const ca = await this.#ca(url, timeoutMs);
    const conn = await this.#connector.open(url, {
      ca,
      timeoutMs,
      tcpTimeoutMs: this.#o.tcpTimeoutMs ?? 400,
      headers: {
        authorization: `Bearer ${this.#o.token}`,
        [NODE_HEADER]: this.#o.node,
        [PASSWORD_HEADER]: this.#password(),
      },
    });
    const s = new Session({
      role: 'agent',
      node: this.#o.node,
      transport: conn.transport,
      clock: this.#clock,
      logger: this.#log,
      metrics: this.metrics,
      ...sessionTuning(this.#o),
      allow: this.#allow,
      handlers: this.#handlers,
    });
    conn.bind(s);
    s.on('push', (topic, payload) => this.emit('push', topic, payload));
    const reg: Registration = { node: this.#o.node, ports: this.#o.ports ?? [] };
    if (this.#o.version !== undefined) reg.version = this.#o.version;
    if (this.#o.info !== undefined) reg.info = this.#o.info;
    s.hello(reg);
    const welcome = await new Promise<unknown>((resolve, reject) => {
      const timer = this.#clock.setTimeout(() => s.close('no welcome from the server', 1008), timeoutMs);
      s.once('hello', (info) => {
        this.#clock.clearTimeout(timer);
        resolve(info);
      });
      s.once('close', (reason) => {
        this.#clock.clearTimeout(timer);
        const inUse = reason.includes(`(${NODE_IN_USE_CLOSE_CODE}:`);
        reject(
          new VipmeshError(
            inUse ? 'VIPMESH_TUNNEL_NODE_IN_USE' : 'VIPMESH_TUNNEL_CONNECT',
            `${url}: session closed before the welcome: ${reason}`,
            { details: { url, silent: false } },
          ),
        );
      });
    });
    if (this.#stopped) {
      s.close('agent shutting down', 1001);
      return undefined;
    }
    this.#probe.stop();
    this.#ping(s, welcome, conn.transport.peerAddress?.());
    this.#session = s;
    this.metrics.sessions++;
    const reconnect = this.#everConnected;
    if (reconnect) this.metrics.reconnects++;
    this.#everConnected = true;
    this.#log.info({ url, reconnect }, 'tunnel connected');
    this.emit('connected', { session: s, url, reconnect });
    return s;
  }

  /** Send liveness datagrams for `s` when the server's welcome grants them. */
  #ping(s: Session, welcome: unknown, host: string | undefined): void {
    const grant = grantOf(welcome);
    if (this.#o.liveness === false || grant === undefined || host === undefined) return;
    if (this.#liveness === undefined || this.#liveness.failed) {
      const hub = LivenessHub.start(this.#log);
      this.#liveness = hub;
      this.metrics.liveness = () => hub.counts;
    }
    const link = this.#liveness.call(host, grant, {
      armed: () => s.setLivenessArmed(true),
      lost: (silentMs) => {
        if (Number.isNaN(silentMs)) s.setLivenessArmed(false);
        else s.close(`heartbeat timeout: no liveness ack for ${Math.round(silentMs)} ms`, 4000);
      },
    });
    s.once('close', () => link.drop());
  }

  /** The pinned CA: cached in the data dir when its hash matches the token, fetched (and checked) otherwise. */
  async #ca(url: string, timeoutMs: number): Promise<string> {
    const file = join(this.#o.dataDir, 'agent', 'server-ca.crt');
    if (existsSync(file)) {
      const pem = readFileSync(file, 'utf8');
      if (caHashOf(pem) === this.#o.caHash) return pem;
    }
    const pem = await this.#connector.fetchCA(url, this.#o.caHash, timeoutMs);
    this.#write(file, pem);
    return pem;
  }

  /** The node password: made on first join, then always the same (the server binds the name to it). */
  #password(): string {
    const file = join(this.#o.dataDir, 'agent', 'node-password');
    if (existsSync(file)) return readFileSync(file, 'utf8').trim();
    const pw = randomBytes(32).toString('hex');
    this.#write(file, `${pw}\n`);
    return pw;
  }

  #write(file: string, text: string): void {
    try {
      mkdirSync(join(this.#o.dataDir, 'agent'), { recursive: true, mode: 0o700 });
      writeFileSync(file, text, { mode: 0o600 });
      chmodSync(file, 0o600);
    } catch (err) {
      throw new VipmeshError('VIPMESH_TUNNEL_AGENT_DATA', `cannot write ${file}`, {
        cause: err,
        details: { errno: errnoOf(err) },
      });
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
      this.#sleepTimer = this.#clock.setTimeout(() => {
        this.#wake = undefined;
        resolve();
      }, ms);
    });
  }
}

function noSession(): VipmeshError {
  return new VipmeshError('VIPMESH_TUNNEL_NO_SESSION', 'the agent has no tunnel session right now');
}
