import { isIP } from 'node:net';
import { type ConnectionOptions, type TLSSocket, connect as tlsConnect } from 'node:tls';
import { WebSocket } from 'ws';
import { errnoOf, VipmeshError } from '../errors.js';
import { fetchAndPinCA } from '../util/ca-pin.js';
import { CONNECT_PATH, RETRY_AFTER_MS_HEADER } from './server.js';
import type { FrameTransport, Session } from './session.js';
import { WsTransport } from './ws-transport.js';

/** Largest message an agent takes from its server [64 MiB]; the server takes 1 MiB from an agent. */
export const MAX_PUSH_BYTES = 64 << 20;

/** An open tunnel connection, not yet carrying a session. */
export interface Connection {
  transport: FrameTransport;
  /** Deliver received frames to `session`. */
  bind(session: Session): void;
}

/** Options of one connection attempt. */
export interface OpenOptions {
  headers: Record<string, string>;
  /** The pinned CA PEM. */
  ca: string;
  /** Give up when TCP has not connected within this (the client's default is 400 ms). */
  tcpTimeoutMs: number;
  /** Give up when the websocket is not open within this (TLS + upgrade) [5 s]. */
  timeoutMs: number;
}

/**
 * How the agent reaches the server (the layer below the TunnelClient; tests pass fakes). Errors are
 * VipmeshErrors; `details.silent` is true when the server never answered (timeout, unreachable), which the
 * client retries without growing its backoff.
 */
export interface Connector {
  fetchCA(url: string, caHash: string, timeoutMs: number): Promise<string>;
  open(url: string, o: OpenOptions): Promise<Connection>;
}

/** errnos that mean "nothing answered": the network, not the server, is the problem. */
const SILENT = new Set(['ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN', 'EAI_AGAIN']);

/** True when `err` says the server never answered (see {@link Connector}). */
export function isSilentFailure(err: unknown): boolean {
  return err instanceof VipmeshError && err.details['silent'] === true;
}

function connectError(url: string, err: unknown): VipmeshError {
  if (err instanceof VipmeshError) return err;
  const errno = errnoOf(err);
  const msg = (err as Error)?.message ?? String(err);
  const silent = (errno !== undefined && SILENT.has(errno)) || /timed out/i.test(msg);
  return new VipmeshError('VIPMESH_TUNNEL_CONNECT', `cannot connect to ${url}: ${msg}`, {
    cause: err,
    details: { url, errno, silent },
  });
}

/** When the server asked to be tried again, in ms (its ms header, else `Retry-After` seconds). */
function retryAfterOf(headers: Record<string, string | string[] | undefined>): number | undefined {
  for (const [name, scale] of [
    [RETRY_AFTER_MS_HEADER, 1],
    ['retry-after', 1000],
  ] as const) {
    const v = Number(headers[name]);
    if (typeof headers[name] === 'string' && Number.isFinite(v) && v >= 0)
      return Math.min(v * scale, 600_000);
  }
  return undefined;
}

/** The production connector: `wss://<server>/v1/connect`, trusting only the pinned CA. */
export function wsConnector(): Connector {
  return {
    async fetchCA(url, caHash, timeoutMs) {
      try {
        return await fetchAndPinCA(url, caHash, timeoutMs);
      } catch (err) {
        if (err instanceof VipmeshError && err.code === 'VIPMESH_TUNNEL_CA_MISMATCH') throw err;
        throw connectError(url, (err as Error).cause ?? err);
      }
    },
    open(url, o) {
      return new Promise((resolve, reject) => {
        let socket: TLSSocket | undefined;
        const target = new URL(CONNECT_PATH, url.replace(/^https:/, 'wss:').replace(/^http:/, 'ws:'));
        const ws = new WebSocket(target, {
          headers: o.headers,
          ca: o.ca,
          // Trust is the pinned cluster CA, which signs nothing but this cluster's server certificates;
          // agents often reach the server by an address that was not known when its certificate was made.
          checkServerIdentity: (() => undefined) as never,
          perMessageDeflate: false,
          // What the server pushes is whole sets (a busy holder's Services are several MiB); the server is
          // the one the pinned CA vouches for, and this bounds a frame's memory all the same.
          maxPayload: MAX_PUSH_BYTES,
          handshakeTimeout: o.timeoutMs,
          createConnection: ((opts: ConnectionOptions & { host: string }) => {
            const sock = tlsConnect({ ...opts, servername: isIP(opts.host) === 0 ? opts.host : '' });
            socket = sock;
            // A SYN lost to a cut cable is retried by the kernel only after 1 s, 3 s, 7 s...: a fresh attempt
            // every tcpTimeoutMs is what brings the agent back within a second of the network returning.
            // A real timer: it guards a real socket's connect, which no injected clock can move.
            const timer = setTimeout(() => {
              if (sock.connecting)
                sock.destroy(Object.assign(new Error('TCP connect timed out'), { code: 'ETIMEDOUT' }));
            }, o.tcpTimeoutMs);
            sock.once('connect', () => clearTimeout(timer));
            sock.once('close', () => clearTimeout(timer));
            return sock;
          }) as never,
        });
        // createConnection ran inside the constructor: the socket is known here.
        const t = new WsTransport(ws, socket);
        let done = false;
        ws.once('open', () => {
          done = true;
          resolve({ transport: t, bind: (s) => t.bind(s) });
        });
        ws.once('unexpected-response', (req, res) => {
          const status = res.statusCode ?? 0;
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          const finish = () => {
            req.destroy();
            const why = Buffer.concat(chunks).toString('utf8').trim().slice(0, 200);
            const code =
              {
                401: 'VIPMESH_TUNNEL_UNAUTHORIZED',
                403: 'VIPMESH_TUNNEL_NODE_PASSWORD',
                409: 'VIPMESH_TUNNEL_NODE_IN_USE',
                429: 'VIPMESH_TUNNEL_JOIN_LIMIT',
              }[status] ?? 'VIPMESH_TUNNEL_CONNECT';
            const retryAfterMs = retryAfterOf(res.headers);
            done = true;
            reject(
              new VipmeshError(
                code,
                `${target.href}: the server answered ${status}${why ? `: ${why}` : ''}`,
                {
                  details: {
                    url,
                    status,
                    silent: false,
                    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
                  },
                },
              ),
            );
          };
          res.once('end', finish);
          res.once('error', finish);
        });
        ws.once('close', () => {
          if (!done) reject(connectError(url, new Error('connection closed during the handshake')));
        });
        ws.on('error', (err) => {
          if (!done) {
            done = true;
            reject(connectError(url, err));
          }
        });
      });
    },
  };
}
