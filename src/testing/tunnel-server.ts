import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import {
  ensureServerCredentials,
  FileNodePasswordStore,
  type JoinAuthorizerOptions,
  joinAuthorizer,
  type NodePasswordStore,
  type ServerCredentials,
} from '../pki/index.js';
import { TunnelServer, type TunnelServerOptions } from '../tunnel/server.js';
import { joinHostPort } from '../util/host-port.js';

/** Options of {@link createTunnelServer}: the TunnelServer's, minus what the data dir provides. */
export interface StandaloneOptions extends Omit<TunnelServerOptions, 'authorize' | 'caCertPem'> {
  /** Port to listen on [6443; 0 picks a free one]. */
  port?: number;
  /** Address to listen on [all]. */
  host?: string;
  /** Where the server keeps its CA, tokens and node passwords. */
  dataDir: string;
  /** Extra subject alternative names for a serving certificate made now. */
  sans?: string[];
  /** Node password store [the file `<dataDir>/server/node-passwords.json`]. */
  passwords?: NodePasswordStore;
  /** Limits on new node names, and the clock they are counted on [the authorizer's defaults]. */
  joinLimits?: Pick<JoinAuthorizerOptions, 'maxNewNodes' | 'newNodesWindowMs' | 'maxNodes' | 'clock'>;
  /** Take liveness datagrams on the same port number, as the control plane does [true]. */
  liveness?: boolean;
}

/** A tunnel server on an HTTPS server of its own. */
export interface StandaloneTunnelServer {
  tunnel: TunnelServer;
  https: Server;
  port: number;
  /** `https://<host>:<port>` (what agents take as `--server`). */
  url: string;
  credentials: ServerCredentials;
  /** Close every session and stop listening. */
  close(): Promise<void>;
}

/**
 * A tunnel server for tests and benchmarks (the control plane mounts {@link TunnelServer} on its own
 * HTTPS port instead): credentials from `dataDir` (made on first start), agents authorized as the server
 * does (join token, node passwords in a file).
 */
export async function createTunnelServer(o: StandaloneOptions): Promise<StandaloneTunnelServer> {
  const credentials = await ensureServerCredentials(o.dataDir, { sans: o.sans ?? [] });
  const passwords =
    o.passwords ?? new FileNodePasswordStore(join(o.dataDir, 'server', 'node-passwords.json'));
  const tunnel = new TunnelServer({
    ...o,
    authorize: joinAuthorizer({
      joinToken: credentials.joinToken,
      passwords,
      ...o.joinLimits,
      ...(o.logger === undefined ? {} : { logger: o.logger }),
    }),
    caCertPem: credentials.caCertPem,
  });
  const handshakeTimeout = o.handshakeTimeoutMs ?? 5000;
  const https = createServer({ cert: credentials.certPem, key: credentials.keyPem, handshakeTimeout });
  tunnel.attach(https, { handshakeTimeoutMs: handshakeTimeout });
  await new Promise<void>((resolve, reject) => {
    https.once('error', reject);
    https.listen(o.port ?? 6443, o.host, () => {
      https.off('error', reject);
      resolve();
    });
  });
  const port = (https.address() as AddressInfo).port;
  if (o.liveness !== false) void tunnel.listenLiveness(o.host ?? '::', port);
  const host = o.host === undefined || o.host === '0.0.0.0' || o.host === '::' ? '127.0.0.1' : o.host;
  return {
    tunnel,
    https,
    port,
    url: `https://${joinHostPort(host, port)}`,
    credentials,
    close: async () => {
      const closing = tunnel.close();
      https.closeAllConnections();
      await new Promise<void>((resolve) => https.close(() => resolve()));
      await closing;
    },
  };
}
