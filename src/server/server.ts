import { writeAdminConfig } from '../api/admin-config.js';
import type { AssignmentIndex } from '../api/assignments.js';
import type { ResourceStore } from '../api/store.js';
import { type Controllers, type Informers, LostNodes } from '../controllers/index.js';
import { type MetricsServer, serveMetrics } from '../daemon/metrics-http.js';
import { registerProcessMetrics } from '../daemon/process-metrics.js';
import { ShutdownStack } from '../daemon/shutdown-stack.js';
import { createRegistry, type Registry } from '../metrics.js';
import type { ServerCredentials } from '../pki/index.js';
import type { TunnelServer } from '../tunnel/index.js';
import { joinHostPort } from '../util/host-port.js';
import { listenApi } from './api-step.js';
import { loadCredentials, openClient, openDatastore } from './datastore-step.js';
import { registerServerGauges, startElection } from './election-step.js';
import { joinRoute } from './etcd-join.js';
import { startHolders, startInformers, startLifecycle, startRelay, startTunnel } from './nodes-step.js';
import { clockOf, type ServerOptions, type ServerStep } from './server-options.js';
import { restoreIfAsked, startSnapshots } from './snapshot-step.js';

/** A running server. */
export interface RunningServer {
  /** `https://127.0.0.1:PORT` (or the bind address when it is not a wildcard). */
  url: string;
  port: number;
  credentials: ServerCredentials;
  registry: Registry;
  store: ResourceStore;
  informers: Informers;
  /** Every VIP's holder, as this server follows the assignment keys. */
  holders: AssignmentIndex;
  metrics: MetricsServer | undefined;
  /** True while this server is the elected master. */
  isMaster(): boolean;
  /** Call `fn` on every change of the master role (at once with true if master already). */
  onMasterChange(fn: (master: boolean) => void): void;
  /** The master's controllers while master. */
  controllers(): Controllers | undefined;
  /** The embedded datastore's client URL (undefined with an external one). */
  datastoreUrl: string | undefined;
  tunnel: TunnelServer;
  /**
   * Run `close` first when the server closes, once the node lifecycle no longer acts on lost sessions: the
   * local agent's (same process) clean leave is then the server going away and does not mark its node
   * NotReady.
   */
  closeFirst(step: string, close: () => Promise<void>): void;
  close(): Promise<void>;
}

/**
 * `vipmesh server` without the local agent: the datastore (embedded, or `datastoreEndpoint`), the
 * credentials, one HTTPS port serving the API, `/v1/connect` (tunnel), `/cacerts`, `/healthz`, `/readyz`;
 * node lifecycle and the relay for the agents connected here; the master election, and the controllers
 * while master; the metrics server; the admin config.
 *
 * Each step is a function that pushes its own close on one shutdown stack: a failed start closes what
 * was started, in reverse order, and so does `close()`.
 */
export async function startServer(o: ServerOptions): Promise<RunningServer> {
  const log = o.logger.child({ module: 'server' });
  const registry = o.registry ?? createRegistry();
  registerProcessMetrics(registry);
  const stack = new ShutdownStack({ logger: log });
  const step: ServerStep = { o, log, registry, stack };
  return stack.start(async () => {
    await restoreIfAsked(step);
    const data = await openDatastore(step);
    const { etcd, kv, store } = openClient(step, data.endpoints, data.etcd?.tls, data.embedded?.backend);
    const creds = await loadCredentials(step, kv, data);
    const route =
      data.etcd === undefined
        ? undefined
        : joinRoute({
            joinToken: creds.joinToken,
            ca: creds,
            etcd,
            logger: log.child({ component: 'join' }),
          });
    const informers = await startInformers(step, store);
    const holders = await startHolders(step, kv);
    const tunnel = startTunnel(step, creds, informers, etcd);
    const relay = await startRelay(step, { informers, holders, kv, tunnel, store });
    // A verdict of lost moves the node's VIPs at once (while this server is master), not after its write.
    const lost = new LostNodes({ nodes: informers.nodes, ...clockOf(o) });
    stack.push('lost-nodes', () => lost.close());
    const lifecycle = startLifecycle(step, { store, kv, informers, tunnel, relay, holders, lost });
    const api = await listenApi(step, {
      store,
      creds,
      tunnel,
      holders,
      ...(route === undefined ? {} : { route }),
    });
    const masterGauge = registerServerGauges(registry, informers, holders);
    const masterWatchers = new Set<(master: boolean) => void>();
    const election = startElection(step, {
      etcd,
      store,
      kv,
      informers,
      holders,
      lifecycle,
      lost,
      masterGauge,
      onChange: (m) => {
        for (const w of masterWatchers) w(m);
      },
      ...reachableAt(o, api.port),
    });
    startSnapshots(step, { etcd, endpoint: data.endpoints, isMaster: election.isMaster });
    const metrics = await startMetrics(step);
    writeAdmin(step, apiUrlOf(o, api.url, api.port), creds);

    api.setReady(true);
    const { url, port } = api;
    log.info(
      { url, port, datastore: data.embedded === undefined ? data.endpoints : 'embedded' },
      'server ready',
    );
    return {
      url,
      port,
      credentials: creds,
      registry,
      store,
      informers,
      holders,
      metrics,
      datastoreUrl: data.embedded?.url,
      tunnel,
      isMaster: election.isMaster,
      onMasterChange: (fn) => {
        masterWatchers.add(fn);
        if (election.isMaster()) fn(true);
      },
      controllers: election.controllers,
      closeFirst: (name, close) => stack.push(name, close),
      close: async () => {
        api.setReady(false);
        lifecycle.serverStopping();
        await stack.close();
      },
    };
  });
}

/**
 * Where the other servers reach this one: its first node IP (IPv4 first), else the bind address when it is
 * not a wildcard; nothing when neither is known (a loopback address would be each prober's own host).
 */
function reachableAt(o: ServerOptions, port: number): { address?: { host: string; port: number } } {
  const ips = o.nodeIps ?? [];
  const host =
    ips.find((ip) => !ip.includes(':')) ??
    ips[0] ??
    (o.bindAddress === undefined || o.bindAddress === '0.0.0.0' || o.bindAddress === '::'
      ? undefined
      : o.bindAddress);
  return host === undefined ? {} : { address: { host, port } };
}

/** The URL clients are told: the API VIP when there is one, else the local URL. */
function apiUrlOf(o: ServerOptions, local: string, port: number): string {
  return o.apiVip === undefined ? local : `https://${joinHostPort(o.apiVip, port)}`;
}

/** Step: the Prometheus metrics server, when `metricsBindAddress` is set. */
async function startMetrics({ o, registry, stack }: ServerStep): Promise<MetricsServer | undefined> {
  if (o.metricsBindAddress === undefined || o.metricsBindAddress === '') return undefined;
  const metrics = await serveMetrics(o.metricsBindAddress, registry);
  stack.push('metrics', () => metrics.close());
  return metrics;
}

/** Step: the admin config, a kubeconfig (API URL, CA, admin token), when `adminConfigPath` is set. */
function writeAdmin({ o }: ServerStep, url: string, creds: ServerCredentials): void {
  if (o.adminConfigPath !== undefined && o.adminConfigPath !== '') {
    writeAdminConfig(o.adminConfigPath, { server: url, token: creds.adminToken, caCertPem: creds.caCertPem });
  }
}
