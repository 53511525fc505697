import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { type AssignmentIndex, nodeVipsView } from '../api/assignments.js';
import { tokenAuthenticator } from '../api/auth.js';
import { ApiHandler } from '../api/handler.js';
import type { ResourceStore } from '../api/store.js';
import { errnoOf, VipmeshError } from '../errors.js';
import type { ServerCredentials } from '../pki/index.js';
import type { TunnelServer } from '../tunnel/index.js';
import { joinHostPort } from '../util/host-port.js';
import { packageVersion } from '../util/package-version.js';
import { ConnectionLimits } from './connection-limits.js';
import type { ServerStep } from './server-options.js';

/** The HTTPS port serving the API and the tunnel. */
interface ApiListener {
  /** `https://127.0.0.1:PORT` (or the bind address when it is not a wildcard). */
  url: string;
  port: number;
  /** What `/readyz` answers: false until the whole server is up, and again once it stops. */
  setReady(ready: boolean): void;
}

/**
 * Step: the API handler and the one HTTPS port serving it, `/v1/connect` (upgraded to the tunnel),
 * `/cacerts`, `/healthz` and `/readyz`, with the deadlines and connection caps of {@link ConnectionLimits}.
 * A port that cannot be bound is `VIPMESH_CLUSTER_LISTEN`.
 */
export async function listenApi(
  { o, registry, stack }: ServerStep,
  deps: {
    store: ResourceStore;
    creds: ServerCredentials;
    tunnel: TunnelServer;
    holders: AssignmentIndex;
    /** Served before the API: true when it answered the request (the etcd join route). */
    route?: (req: IncomingMessage, res: ServerResponse) => boolean;
  },
): Promise<ApiListener> {
  const { creds, tunnel } = deps;
  let ready = false;
  const authenticate = tokenAuthenticator({ adminToken: creds.adminToken, joinToken: creds.joinToken });
  const handler = new ApiHandler({
    store: deps.store,
    authenticate,
    logger: o.logger.child({ module: 'api' }),
    caCertPem: creds.caCertPem,
    ready: () => ready,
    registry,
    version: packageVersion(),
    // A Node's VIPs are kept as assignment keys; the API shows them in its status.
    view: nodeVipsView(deps.holders),
  });
  stack.push('api', () => handler.close());
  const limits = new ConnectionLimits(o.connectionLimits ?? {}, {
    logger: o.logger.child({ module: 'api' }),
    registry,
  });
  const https: Server = createServer(
    { cert: creds.certPem, key: creds.keyPem, ...limits.serverOptions() },
    deps.route === undefined
      ? handler.handle
      : (req, res) => {
          if (!deps.route!(req, res)) handler.handle(req, res);
        },
  );
  limits.install(https);
  // A connection that shows a valid token (an agent, the CLI) no longer counts against its source's cap.
  https.prependListener('request', (req) => {
    if (authenticate(req.headers.authorization) !== undefined) limits.trust(req.socket);
  });
  https.on('upgrade', (req, socket, head) => {
    if (authenticate(req.headers.authorization) !== undefined) limits.trust(socket);
    if (!tunnel.handleUpgrade(req, socket, head)) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    }
  });
  const bind = o.bindAddress ?? '0.0.0.0';
  await listen(https, o.httpsListenPort, bind);
  stack.push('https', async () => {
    // Upgraded (tunnel) sockets are not HTTP connections: end the sessions first or close() waits forever.
    const closing = tunnel.close();
    limits.close();
    await closeWithin(https, 2000);
    await closing;
  });
  const port = (https.address() as AddressInfo).port;
  void tunnel.listenLiveness(bind, port);
  return { url: localUrl(bind, port), port, setReady: (r) => (ready = r) };
}

function listen(https: Server, port: number, bind: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    https.once('error', (err) =>
      reject(
        new VipmeshError('VIPMESH_CLUSTER_LISTEN', `cannot listen on ${bind}:${port}: ${err.message}`, {
          cause: err,
          details: { errno: errnoOf(err) },
        }),
      ),
    );
    https.listen(port, bind, () => resolve());
  });
}

/**
 * Close `https` and every connection; give up waiting after `timeoutMs`. A real timer, not the Clock: it
 * bounds the close of real sockets and decides nothing a test would drive.
 */
function closeWithin(https: Server, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    https.close(() => {
      clearTimeout(timer);
      resolve();
    });
    https.closeAllConnections();
  });
}

/**
 * The URL the local agent and the admin config use: loopback when listening on every address, else the
 * address itself.
 */
function localUrl(bind: string, port: number): string {
  const host = bind === '0.0.0.0' || bind === '::' || bind === '' ? '127.0.0.1' : bind;
  return `https://${joinHostPort(host, port)}`;
}
