import type { EtcdTuning } from '../api/etcd-kv.js';
import type { Clock } from '../clock.js';
import type { ShutdownStack } from '../daemon/shutdown-stack.js';
import type { Logger } from '../log.js';
import type { Registry } from '../metrics.js';
import type { ConnectionLimitOptions } from './connection-limits.js';

/** Options of `startServer`. Defaults in brackets. */
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
  /** Deadlines and connection caps of the HTTPS port (see `connectionLimitDefaults`). */
  connectionLimits?: Partial<ConnectionLimitOptions>;
  /** `--cluster-cidr`, one per family. */
  clusterCidr: string[];
  /** External etcd endpoints (`http://h:2379,...`); absent: the embedded datastore. */
  datastoreEndpoint?: string;
  /**
   * Where the embedded datastore listens [`unix://<dataDir>/server/db/kine.sock`]. A `host:port` opens a TCP
   * port with no authentication: any user who reaches it can write pools and Services past the API.
   */
  datastoreListenAddress?: string;
  /** Start an embedded etcd member as a new cluster (`--cluster-init`); a SQLite datastore is migrated once. */
  clusterInit?: boolean;
  /** Join the cluster of the server at `server` (`--server`, `--token`) as an embedded etcd member. */
  join?: { server: string; token: string };
  /** The etcd binary [/usr/bin/etcd]. */
  etcdBinary?: string;
  /** The API's virtual address, announced by the master's local agent and put in the serving certificate. */
  apiVip?: string;
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
  /** Datastore client tuning: keys per list page [500], largest gRPC answer [16 MiB]. */
  datastoreClient?: EtcdTuning;
  /** New node names accepted per minute; more wait (HTTP 429) [32; 0: no limit]. */
  maxNewNodesPerMinute?: number;
  /** Nodes the server takes at most (names with a node password); more wait (HTTP 429) [no limit]. */
  maxNodes?: number;
  /** The master deletes a Node NotReady this long, releasing its pod subnet [24 h; 0: never]. */
  nodeGcAfterMs?: number;
  /** Scheduled snapshots of the datastore, taken by the elected master; absent: none. */
  snapshots?: SnapshotOptions;
  /**
   * `--cluster-reset`: with `restorePath`, restore the datastore from a snapshot, then start; without it,
   * restart an embedded etcd member as a one-member cluster from its own data.
   */
  clusterReset?: boolean;
  /** `--restore-path`: the snapshot file `clusterReset` restores. */
  restorePath?: string;
  logger: Logger;
  registry?: Registry;
  clock?: Clock;
}

/** Scheduled snapshots (`--snapshot-*`). */
export interface SnapshotOptions {
  /** A five-field cron expression [DEFAULT_SCHEDULE of src/snapshot: every 12 hours, on the hour]. */
  schedule: string;
  /** Scheduled snapshots kept [5]. */
  retention: number;
  /** [`<dataDir>/server/db/snapshots`] */
  dir?: string;
}

/** What every start step of the server gets. */
export interface ServerStep {
  o: ServerOptions;
  /** The server's own logger (`module: server`); `o.logger` is the root the other modules hang off. */
  log: Logger;
  registry: Registry;
  /** Each step pushes its close here once it is up; stop (or a failed start) closes them in reverse. */
  stack: ShutdownStack;
}

/** `{ clock }` when the options carry one, else nothing (for spreading into constructor options). */
export function clockOf(o: ServerOptions): { clock?: Clock } {
  return o.clock === undefined ? {} : { clock: o.clock };
}

/** The names the serving certificate is made for: the node IPs and name, and the API VIP. */
export function servingSans(o: ServerOptions): string[] {
  return [...(o.nodeIps ?? []), o.nodeName, ...(o.apiVip === undefined ? [] : [o.apiVip])];
}
