import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { tokenAuthenticator } from '../api/auth.js';
import { ApiHandler, type ApiHandlerOptions } from '../api/handler.js';
import type { ResourceStore } from '../api/store.js';
import type { Logger } from '../log.js';
import { joinHostPort } from '../util/host-port.js';

/** Options for {@link createApiServer}. */
export interface ApiServerOptions {
  store: ResourceStore;
  logger: Logger;
  /** Serving certificate and key (PEM); `caCertPem` is served at /cacerts for pinning. */
  tls: { certPem: string; keyPem: string; caCertPem?: string };
  /** The admin token the API accepts (`ServerCredentials.adminToken`). */
  adminToken: string;
  /** The agents' join token: authenticates, but gets 403 on the API. */
  joinToken?: string;
  /** Address to listen on; default 127.0.0.1. */
  host?: string;
  /** Port; default 0 (any free port, see `url`). */
  port?: number;
  ready?: () => boolean;
  extraRoutes?: ApiHandlerOptions['extraRoutes'];
  registry?: Registry;
  /** Largest request body; default 3 MiB. */
  maxBodyBytes?: number;
  /** BOOKMARK period of watches that allow them; default 60 s. */
  bookmarkIntervalMs?: number;
}

/** A listening API server. */
export interface ApiServer {
  server: Server;
  handler: ApiHandler;
  /** `https://127.0.0.1:PORT` */
  url: string;
  port: number;
  /** End watch streams, close connections and stop listening. The store stays open. */
  close(): Promise<void>;
}

/** Start the HTTPS API on its own server (tests; the daemon mounts ApiHandler on its shared port). */
export async function createApiServer(opts: ApiServerOptions): Promise<ApiServer> {
  const handler = new ApiHandler({
    store: opts.store,
    logger: opts.logger,
    authenticate: tokenAuthenticator({
      adminToken: opts.adminToken,
      ...(opts.joinToken === undefined ? {} : { joinToken: opts.joinToken }),
    }),
    ...(opts.tls.caCertPem === undefined ? {} : { caCertPem: opts.tls.caCertPem }),
    ...(opts.ready === undefined ? {} : { ready: opts.ready }),
    ...(opts.extraRoutes === undefined ? {} : { extraRoutes: opts.extraRoutes }),
    ...(opts.registry === undefined ? {} : { registry: opts.registry }),
    ...(opts.maxBodyBytes === undefined ? {} : { maxBodyBytes: opts.maxBodyBytes }),
    ...(opts.bookmarkIntervalMs === undefined ? {} : { bookmarkIntervalMs: opts.bookmarkIntervalMs }),
  });
  const server = createServer({ cert: opts.tls.certPem, key: opts.tls.keyPem }, handler.handle);
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    handler,
    port,
    url: `https://${joinHostPort(host, port)}`,
    async close() {
      await handler.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
