import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { writeAdminConfig } from '../api/admin-config.js';
import type { NodeRegistration } from '../api/agent-protocol.js';
import { tokenAuthenticator } from '../api/auth.js';
import { EtcdKv } from '../api/etcd-kv.js';
import { ApiHandler } from '../api/handler.js';
import type { Kv } from '../api/kv.js';
import { ResourceStore } from '../api/store.js';
import { nodeReady } from '../api/types.js';
import type { Clock } from '../clock.js';
import {
  type Controllers,
  createInformers,
  type Informers,
  NodeLifecycle,
  startControllers,
} from '../controllers/index.js';
import { type MetricsServer, serveMetrics } from '../daemon/metrics-http.js';
import { registerProcessMetrics } from '../daemon/process-metrics.js';
import { errnoOf, VipmeshError } from '../errors.js';
import { type Datastore, startDatastore } from '../kine/index.js';
import type { Logger } from '../log.js';
import { createRegistry, Gauge, type Registry } from '../metrics.js';
import {
  ensureServerCredentials,
  FileNodePasswordStore,
  type ServerCredentials,
  TunnelServer,
} from '../tunnel/index.js';
import { joinHostPort } from '../util/host-port.js';
import { validateObject } from '../vip-pool/index.js';
import { sharedCredentials } from './bootstrap.js';
import { MasterElection, SERVERS_PREFIX } from './election.js';
import { Relay } from './relay.js';

/** Options of {@link startServer}. Defaults in brackets. */
export interface ServerOptions {
  /** [/var/lib/vipmesh] */
  dataDir: string;
  /** This server's name (also its node name). */
  nodeName: string;
  /** Addresses put in the serving certificate. */
  nodeIps?: string[];
  /** HTTPS port of the API and the tunnel [6443]; 0 picks a free one. */
  httpsListenPort: number;
  /** Address the HTTPS port binds [0.0.0.0]. */
  bindAddress?: string;
  /** `--cluster-cidr`, one per family. */
  clusterCidr: string[];
  /** External etcd endpoints (`http://h:2379,...`); absent: the embedded datastore. */
  datastoreEndpoint?: string;
  /** [100 ms] */
  heartbeatMs: number;
  /** Missed beats before a node is lost [3]. */
  nodeLostAfter: number;
  /** `host:port` of the metrics server; empty: none. */
  metricsBindAddress?: string;
  /** Where the admin config is written; empty: not written. */
  adminConfigPath?: string;
  /** Master lease TTL in seconds [5]. */
  electionTtlSeconds?: number;
  /** How long a Node keeps Ready without a session after a start [5 s]. */
  nodeGraceMs?: number;
  logger: Logger;
  registry?: Registry;
  clock?: Clock;
}

/** A running server. */
export interface RunningServer {
  /** `https://127.0.0.1:PORT` (or the bind address when it is not a wildcard). */
  url: string;
  port: number;
  credentials: ServerCredentials;
  registry: Registry;
  store: ResourceStore;
  informers: Informers;
  metrics: MetricsServer | undefined;
  /** True while this server is the elected master. */
  isMaster(): boolean;
  /** The master's controllers while master. */
  controllers(): Controllers | undefined;
  /** The embedded datastore's client URL (undefined with an external one). */
  datastoreUrl: string | undefined;
  tunnel: TunnelServer;
  close(): Promise<void>;
}

/**
 * `vipmesh server` without the local agent: the datastore (embedded, or `datastoreEndpoint`), the
 * credentials, one HTTPS port serving the API, `/v1/connect` (tunnel), `/cacerts`, `/healthz`, `/readyz`;
 * node lifecycle and the relay for the agents connected here; the master election, and the controllers
 * while master; the metrics server; the admin config.
 */
export async function startServer(o: ServerOptions): Promise<RunningServer> {
  const root = o.logger;
  const log = root.child({ module: 'server' });
  const registry = o.registry ?? createRegistry();
  registerProcessMetrics(registry);
  const cleanup: Array<[string, () => Promise<void> | void]> = [];
  const closeAll = async () => {
    for (const [what, fn] of cleanup.splice(0).reverse()) {
      log.debug({ step: what }, 'closing');
      try {
        await fn();
      } catch (err) {
        log.warn({ err, step: what }, 'error during shutdown');
      }
    }
  };
  try {
    let ds: Datastore | undefined;
    let endpoints: string;
    if (o.datastoreEndpoint !== undefined && o.datastoreEndpoint !== '') {
      endpoints = o.datastoreEndpoint;
    } else {
      ds = await startDatastore({
        dataDir: join(o.dataDir, 'server', 'db'),
        listenAddress: '127.0.0.1:0',
        logger: root.child({ module: 'kine' }),
        registry,
        ...(o.clock === undefined ? {} : { clock: o.clock }),
      });
      cleanup.push(['datastore', () => ds!.close()]);
      endpoints = ds.url;
    }
    const hosts = endpoints
      .split(',')
      .map((h) => h.trim())
      .filter(Boolean);
    // One etcd client (one gRPC channel) for the store, the raw keys and the election.
    const etcd = new Etcd3({ hosts });
    cleanup.push(['etcd', () => etcd.close()]);
    const kv = sharedKv(new EtcdKv(etcd));
    const store = new ResourceStore({
      kv,
      validate: validateObject,
      registry,
      ...(o.clock === undefined ? {} : { clock: o.clock }),
    });
    cleanup.push(['store', () => store.close()]);
    const sans = [...(o.nodeIps ?? []), o.nodeName];
    const creds =
      ds === undefined
        ? await sharedCredentials(kv, o.dataDir, sans)
        : await ensureServerCredentials(o.dataDir, { sans });

    const informers = createInformers(store, log.child({ component: 'informer' }), o.clock);
    for (const inf of Object.values(informers) as Array<Informers['nodes']>) {
      await inf.start();
      cleanup.push(['informer', () => inf.close()]);
    }

    const tunnel = new TunnelServer({
      joinToken: creds.joinToken,
      caCertPem: creds.caCertPem,
      passwords: new FileNodePasswordStore(join(o.dataDir, 'server', 'node-passwords.json')),
      heartbeatMs: o.heartbeatMs,
      misses: o.nodeLostAfter,
      logger: root.child({ module: 'tunnel' }),
      registry,
      ...(o.clock === undefined ? {} : { clock: o.clock }),
    });
    cleanup.push(['tunnel', () => tunnel.close()]);

    const relay = new Relay({
      nodes: informers.nodes,
      kv,
      target: tunnel,
      clusterCidr: o.clusterCidr,
      logger: log.child({ component: 'relay' }),
    });
    await relay.start();
    cleanup.push(['relay', () => relay.close()]);

    const lifecycle = new NodeLifecycle({
      store,
      server: o.nodeName,
      hasSession: (n) => tunnel.sessions.has(n),
      nodes: () => informers.nodes.items.values(),
      serverAlive: async (name) => (await kv.get(`${SERVERS_PREFIX}${name}`)) !== undefined,
      graceMs: o.nodeGraceMs ?? 5000,
      logger: log.child({ controller: 'nodes' }),
      ...(o.clock === undefined ? {} : { clock: o.clock }),
    });
    lifecycle.start();
    cleanup.push(['lifecycle', () => lifecycle.close()]);
    tunnel.on('session', (session, reg) => {
      void lifecycle.seen(reg.node, (reg.info ?? {}) as NodeRegistration).then(() => {
        if (tunnel.sessions.get(reg.node) === session) relay.sessionUp(reg.node);
      });
      // Push what is known at once: the node's assignment does not wait for the registration write.
      relay.sessionUp(reg.node);
    });
    tunnel.on('node-lost', ({ node, reason }) => void lifecycle.lost(node, reason));

    let ready = false;
    const handler = new ApiHandler({
      store,
      authenticate: tokenAuthenticator({ adminToken: creds.adminToken, joinToken: creds.joinToken }),
      logger: root.child({ module: 'api' }),
      caCertPem: creds.caCertPem,
      ready: () => ready,
      registry,
    });
    cleanup.push(['api', () => handler.close()]);
    const https: Server = createServer({ cert: creds.certPem, key: creds.keyPem }, handler.handle);
    https.on('upgrade', (req, socket, head) => {
      if (!tunnel.handleUpgrade(req, socket, head)) {
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      }
    });
    const bind = o.bindAddress ?? '0.0.0.0';
    await new Promise<void>((resolve, reject) => {
      https.once('error', (err) =>
        reject(
          new VipmeshError(
            'VIPMESH_CLUSTER_LISTEN',
            `cannot listen on ${bind}:${o.httpsListenPort}: ${err.message}`,
            {
              cause: err,
              details: { errno: errnoOf(err) },
            },
          ),
        ),
      );
      https.listen(o.httpsListenPort, bind, () => resolve());
    });
    cleanup.push([
      'https',
      async () => {
        // Upgraded (tunnel) sockets are not HTTP connections: end the sessions first or close() waits forever.
        tunnel.close();
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 2000);
          https.close(() => {
            clearTimeout(timer);
            resolve();
          });
          https.closeAllConnections();
        });
      },
    ]);
    const port = (https.address() as AddressInfo).port;
    // Loopback when listening on every address; else the address itself (the local agent and the admin
    // config use this URL).
    const host = bind === '0.0.0.0' || bind === '::' || bind === '' ? '127.0.0.1' : bind;
    const url = `https://${joinHostPort(host, port)}`;

    // The election: the controllers run while this server is master.
    let controllers: Controllers | undefined;
    let switching: Promise<void> = Promise.resolve();
    const masterGauge = new Gauge({
      name: 'vipmesh_controlplane_master',
      help: '1 while this server is the elected master (runs the controllers), else 0',
      registers: [registry],
    });
    masterGauge.set(0);
    new Gauge({
      name: 'vipmesh_controlplane_nodes',
      help: 'Nodes in the datastore by Ready condition (True, False, Unknown)',
      labelNames: ['ready'],
      registers: [registry],
      collect() {
        const counts: Record<string, number> = { True: 0, False: 0, Unknown: 0 };
        for (const n of informers.nodes.items.values()) counts[nodeReady(n)]! += 1;
        for (const [ready, v] of Object.entries(counts)) this.set({ ready }, v);
      },
    });
    new Gauge({
      name: 'vipmesh_controlplane_vips_assigned',
      help: 'VIPs assigned to a node (the sum of the Nodes status.vips)',
      registers: [registry],
      collect() {
        let n = 0;
        for (const node of informers.nodes.items.values()) n += node.status?.vips?.length ?? 0;
        this.set(n);
      },
    });
    const election = new MasterElection({
      etcd,
      name: o.nodeName,
      ttlSeconds: o.electionTtlSeconds ?? 5,
      logger: log.child({ component: 'election' }),
      onChange: (master) => {
        masterGauge.set(master ? 1 : 0);
        lifecycle.setMaster(master);
        switching = switching
          .then(async () => {
            if (master && controllers === undefined && election.master) {
              controllers = await startControllers({
                store,
                kv,
                informers,
                clusterCidr: o.clusterCidr,
                logger: root.child({ module: 'controllers' }),
                registry,
                host: o.nodeName,
                ...(o.clock === undefined ? {} : { clock: o.clock }),
              });
            } else if (!master && controllers !== undefined) {
              const c = controllers;
              controllers = undefined;
              await c.close();
            }
          })
          .catch((err: unknown) => log.error({ err }, 'starting or stopping the controllers failed'));
      },
    });
    election.start();
    cleanup.push([
      'election',
      async () => {
        await election.close();
        await switching;
      },
    ]);

    let metrics: MetricsServer | undefined;
    if (o.metricsBindAddress !== undefined && o.metricsBindAddress !== '') {
      metrics = await serveMetrics(o.metricsBindAddress, registry);
      cleanup.push(['metrics', () => metrics!.close()]);
    }
    if (o.adminConfigPath !== undefined && o.adminConfigPath !== '') {
      writeAdminConfig(o.adminConfigPath, { server: url, token: creds.adminToken });
    }
    ready = true;
    log.info({ url, port, datastore: ds === undefined ? endpoints : 'embedded' }, 'server ready');
    return {
      url,
      port,
      credentials: creds,
      registry,
      store,
      informers,
      metrics,
      datastoreUrl: ds?.url,
      tunnel,
      isMaster: () => election.master,
      controllers: () => controllers,
      close: async () => {
        ready = false;
        await closeAll();
      },
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/** `inner` with a no-op close(): several users share one client, closed once by its owner. */
function sharedKv(inner: Kv): Kv {
  return {
    get: (key) => inner.get(key),
    list: (prefix) => inner.list(prefix),
    put: (key, value, expect) => inner.put(key, value, expect),
    delete: (key, expect) => inner.delete(key, expect),
    watch: (prefix, from, handlers) => inner.watch(prefix, from, handlers),
    revision: () => inner.revision(),
    close: async () => undefined,
  };
}
