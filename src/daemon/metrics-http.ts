import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { errnoOf, VipmeshError } from '../errors.js';
import type { Registry } from '../metrics.js';
import * as hostPort from '../util/host-port.js';

/** Where the daemons serve their metrics unless told otherwise (`--metrics-bind-address`). */
export const DEFAULT_METRICS_BIND_ADDRESS = '127.0.0.1:7472';

/** A listening metrics server. */
export interface MetricsServer {
  /** `http://host:port/metrics` */
  url: string;
  close(): Promise<void>;
}

/** Split `host:port` / `[v6]:port` (a bare port binds 127.0.0.1). */
export function splitHostPort(address: string): { host: string; port: number } {
  const { host, port } = hostPort.splitHostPort(address, '127.0.0.1');
  if (!hostPort.isPortNumber(port)) {
    throw new VipmeshError(
      'VIPMESH_CLUSTER_BAD_FLAG',
      `--metrics-bind-address: "${address}" is not host:port`,
    );
  }
  return { host, port };
}

/** Serve `registry` in the Prometheus text format at `http://<address>/metrics`. */
export function serveMetrics(address: string, registry: Registry): Promise<MetricsServer> {
  const { host, port } = splitHostPort(address);
  const server = createServer((req, res) => {
    if (req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      () => res.writeHead(500).end(),
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', (err) =>
      reject(
        new VipmeshError(
          'VIPMESH_CLUSTER_LISTEN',
          `cannot listen on ${address} for metrics: ${err.message}`,
          {
            cause: err,
            details: { errno: errnoOf(err) },
          },
        ),
      ),
    );
    server.listen(port, host, () => {
      const a = server.address() as AddressInfo;
      resolve({
        url: `http://${hostPort.joinHostPort(a.address, a.port)}/metrics`,
        close: () =>
          new Promise<void>((r) => {
            server.close(() => r());
            server.closeAllConnections();
          }),
      });
    });
  });
}
