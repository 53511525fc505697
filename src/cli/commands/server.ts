import { type Command, Option } from 'commander';
import { type Agent, createAgent } from '../../agent/index.js';
import { DEFAULT_ADMIN_CONFIG } from '../../api/index.js';
import { DEFAULT_METRICS_BIND_ADDRESS } from '../../daemon/metrics-http.js';
import { runDaemon } from '../../daemon/run-daemon.js';
import { VipmeshError } from '../../errors.js';
import { DEFAULT_CLUSTER_CIDR } from '../../flannel-hostgw/index.js';
import { createRegistry } from '../../metrics.js';
import {
  type ConnectionLimitOptions,
  type ServerOptions,
  type SnapshotOptions,
  startServer,
} from '../../server/index.js';
import { CronSchedule, DEFAULT_RETENTION, DEFAULT_SCHEDULE } from '../../snapshot/index.js';
import { parseDuration } from '../../util/duration.js';
import { canonicalIp } from '../../util/ip.js';
import { type CliContext, daemonCommand } from '../context.js';
import {
  addDataDirOption,
  addDataPlaneOptions,
  addHandoverOption,
  addNodeIdentityOptions,
  heartbeatMsOf,
  type NodeFlags,
  nodeAgentOptions,
  positiveInt,
  splitList,
} from './node-options.js';

interface ServerFlags extends NodeFlags {
  httpsListenPort: string;
  bindAddress: string;
  clusterCidr: string;
  datastoreEndpoint?: string;
  datastoreListenAddress?: string;
  disableAgent?: boolean;
  heartbeatInterval: string;
  nodeLostAfter: string;
  nodeStartupGrace: string;
  maxNewNodesPerMinute: string;
  maxNodes?: string;
  nodeGcAfter: string;
  electionTtl: string;
  metricsBindAddress: string;
  adminConfig: string;
  apiMaxConnections: string;
  apiMaxConnectionsPerSource: string;
  apiRequestTimeout: string;
  snapshotSchedule: string;
  snapshotRetention: string;
  snapshotDir?: string;
  disableSnapshots?: boolean;
  clusterReset?: boolean;
  restorePath?: string;
  clusterInit?: boolean;
  server?: string;
  token?: string;
  apiVip?: string;
}

export function register(program: Command, ctx: CliContext): void {
  const cmd = program
    .command('server')
    .description('run the server: datastore, API, tunnel and controllers (and the local agent)');
  addDataDirOption(cmd, 'state: the embedded datastore, CA, certificates and tokens')
    .option('--https-listen-port <port>', 'port of the HTTPS API and the agent tunnel', '6443')
    .option('--bind-address <ip>', 'address the HTTPS port listens on', '0.0.0.0')
    .option(
      '--cluster-cidr <cidr>',
      'pod subnets are carved from this (comma-separated: one per family)',
      DEFAULT_CLUSTER_CIDR,
    )
    .option(
      '--datastore-endpoint <urls>',
      'use this etcd cluster (http://h1:2379,http://h2:2379) instead of the embedded datastore; servers on one etcd elect a master',
    )
    .option(
      '--datastore-listen-address <addr>',
      'where the embedded datastore listens (default unix://<data-dir>/server/db/kine.sock, root only); a host:port has no authentication',
    )
    .option(
      '--cluster-init',
      'start an embedded etcd member as a new HA cluster (a SQLite datastore is copied into it once)',
    )
    .addOption(
      new Option(
        '--server <url>',
        'join the HA cluster of this running server (https://HOST:6443) as another etcd member',
      ).env('VIPMESH_URL'),
    )
    .addOption(
      new Option('--token <token>', 'with --server: the cluster join token (vipmesh token on a server)').env(
        'VIPMESH_TOKEN',
      ),
    )
    .option(
      '--cluster-reset',
      'restart the embedded etcd member as a one-member cluster from its own data (after losing quorum); or, given a snapshot in --restore-path, restore the datastore from it first',
    )
    .option(
      '--api-vip <ip>',
      'a virtual address for the API, announced by the elected master (needs the local agent)',
    )
    .option('--disable-agent', 'do not run the local agent (this node announces no VIPs, gets no routes)')
    .option(
      '--heartbeat-interval <duration>',
      'agent <-> server heartbeat period (liveness datagrams)',
      '50ms',
    )
    .option(
      '--node-lost-after <n>',
      'missed heartbeats after which a node is NotReady and its VIPs move',
      '3',
    )
    .option(
      '--node-startup-grace <duration>',
      'after a start, how long a node stays Ready while its agent reconnects',
      '5s',
    )
    .option(
      '--max-new-nodes-per-minute <n>',
      'node names joining for the first time per minute; more are told to retry (0 = no limit)',
      '32',
    )
    .option('--max-nodes <n>', 'most nodes the server takes; a new name beyond it is told to retry')
    .option(
      '--node-gc-after <duration>',
      'the master deletes a node NotReady this long, releasing its pod subnet (0 = never)',
      '24h',
    )
    .option(
      '--election-ttl <duration>',
      'master lease TTL (whole seconds): how long a dead master keeps the role',
      '5s',
    )
    .option(
      '--metrics-bind-address <host:port>',
      'serve Prometheus metrics here ("" = off)',
      DEFAULT_METRICS_BIND_ADDRESS,
    )
    .option(
      '--admin-config <file>',
      'write the admin config, a kubeconfig for kubectl and vipmesh (API URL, CA, admin token), here ("" = do not)',
      DEFAULT_ADMIN_CONFIG,
    )
    .option(
      '--api-max-connections <n>',
      'connections the HTTPS port holds in all ("auto": half the open-file limit, 64 to 8192)',
      'auto',
    )
    .option(
      '--api-max-connections-per-source <n>',
      'connections one address (an IPv6 /64) may hold on the HTTPS port before it shows a valid token',
      '64',
    )
    .option(
      '--api-request-timeout <duration>',
      'deadline for a whole request (headers and body) on the HTTPS port; responses and watches are not bounded',
      '10s',
    )
    .option(
      '--snapshot-schedule <cron>',
      'when the elected master snapshots the datastore (five-field cron, local time)',
      DEFAULT_SCHEDULE,
    )
    .option('--snapshot-retention <n>', 'scheduled snapshots kept', String(DEFAULT_RETENTION))
    .option('--snapshot-dir <dir>', 'where snapshots go (default <data-dir>/server/db/snapshots)')
    .option('--disable-snapshots', 'take no scheduled snapshots')
    .option('--restore-path <file>', 'the snapshot --cluster-reset restores');
  addNodeIdentityOptions(cmd);
  addDataPlaneOptions(cmd, 'local agent: ');
  addHandoverOption(cmd, 'local agent: ');
  cmd.action(async (flags: ServerFlags) => {
    const heartbeatMs = heartbeatMsOf(flags.heartbeatInterval);
    const misses = positiveInt(flags.nodeLostAfter, '--node-lost-after');
    const handoverTimeoutMs = parseDuration(flags.handoverTimeout, '--handover-timeout');
    const ttl = Math.max(1, Math.round(parseDuration(flags.electionTtl, '--election-ttl') / 1000));
    const port = Number(flags.httpsListenPort);
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new VipmeshError(
        'VIPMESH_CLUSTER_BAD_FLAG',
        `--https-listen-port: "${flags.httpsListenPort}" is not a port`,
      );
    }
    const connectionLimits = connectionLimitsOf(flags);
    const snapshots = snapshotsOf(flags);
    const nodeOptions = nodeAgentOptions(flags); // also the local agent's; parsed before anything starts
    const { nodeName } = nodeOptions;
    const nodeIps = nodeOptions.nodeIps ?? [];
    const clusterCidr = splitList([flags.clusterCidr]);
    const ha = haOptionsOf(flags);
    const log = ctx.logger().child({ module: 'server' });
    const registry = createRegistry();
    await runDaemon({
      start: async ({ stack }) => {
        const server = await startServer({
          dataDir: flags.dataDir,
          nodeName,
          nodeIps,
          httpsListenPort: port,
          bindAddress: flags.bindAddress,
          clusterCidr,
          ...(flags.datastoreEndpoint === undefined ? {} : { datastoreEndpoint: flags.datastoreEndpoint }),
          ...(flags.datastoreListenAddress === undefined
            ? {}
            : { datastoreListenAddress: flags.datastoreListenAddress }),
          ...ha,
          heartbeatMs,
          nodeLostAfter: misses,
          nodeGraceMs: parseDuration(flags.nodeStartupGrace, '--node-startup-grace'),
          maxNewNodesPerMinute:
            String(flags.maxNewNodesPerMinute).trim() === '0'
              ? 0
              : positiveInt(String(flags.maxNewNodesPerMinute), '--max-new-nodes-per-minute'),
          ...(flags.maxNodes === undefined
            ? {}
            : { maxNodes: positiveInt(String(flags.maxNodes), '--max-nodes') }),
          nodeGcAfterMs: parseDuration(flags.nodeGcAfter, '--node-gc-after'),
          electionTtlSeconds: ttl,
          metricsBindAddress: flags.metricsBindAddress,
          adminConfigPath: flags.adminConfig,
          connectionLimits,
          ...(snapshots === undefined ? {} : { snapshots }),
          ...(flags.restorePath === undefined ? {} : { restorePath: flags.restorePath }),
          logger: ctx.logger(),
          registry,
        });
        stack.push('server', () => server.close());
        let agent: Agent | undefined;
        if (flags.disableAgent !== true) {
          const local = await createAgent({
            servers: [server.url],
            token: server.credentials.joinToken,
            ...nodeOptions,
            heartbeatMs,
            misses,
            handoverTimeoutMs,
            // In this process, a stall stops the server's end too: no liveness thread for this session.
            liveness: false,
            logger: ctx.logger(),
            registry,
          });
          if (handoverTimeoutMs > 0) {
            // Stopped before the server, while its node lifecycle and (on the master) the controllers still
            // act: the local agent hands its VIPs over as `vipmesh agent` does, and its node is NotReady
            // (AgentStopping) until the server starts again.
            stack.push('local-agent', () => local.close());
          }
          // Otherwise closed by the server's close, after its node lifecycle stops acting on lost
          // sessions: the VIPs are released as the server goes, and the node stays Ready (the next start's
          // grace covers the reconnect). Idempotent when the agent has already stopped.
          server.closeFirst('local-agent', () => local.close());
          agent = local;
          const vip = ha.apiVip;
          if (vip !== undefined) server.onMasterChange((m) => local.setLocalVips(m ? [vip] : []));
        }
        return {
          readyStatus: 'serving',
          up: () => log.info({ url: server.url, agent: agent !== undefined }, 'vipmesh server is up'),
          stopping: (sig) => log.info({ signal: sig }, 'shutting down'),
        };
      },
    });
    exitOnceDrained(log);
  });
  daemonCommand(cmd);
}

/** Scheduled snapshots from `--snapshot-*` (checked before anything starts), or none with `--disable-snapshots`. */
function snapshotsOf(flags: ServerFlags): SnapshotOptions | undefined {
  if (flags.disableSnapshots === true) return undefined;
  const schedule = new CronSchedule(flags.snapshotSchedule).expression;
  const retention = positiveInt(String(flags.snapshotRetention), '--snapshot-retention');
  return { schedule, retention, ...(flags.snapshotDir === undefined ? {} : { dir: flags.snapshotDir }) };
}

/**
 * After a clean stop the process should end by itself; when something still holds the event loop (a call
 * to a datastore without quorum that never settles), say what and exit after 5 s instead of waiting for
 * systemd's SIGKILL.
 */
function exitOnceDrained(log: { warn(obj: object, msg: string): void }): void {
  const timer = setTimeout(() => {
    log.warn(
      { resources: process.getActiveResourcesInfo() },
      'stopped, but the event loop is still held; exiting',
    );
    process.exit(0);
  }, 5000);
  timer.unref();
}

/** `--cluster-init`, `--server`/`--token`, `--cluster-reset`, `--api-vip`, checked against each other. */
function haOptionsOf(
  flags: ServerFlags,
): Pick<ServerOptions, 'clusterInit' | 'join' | 'clusterReset' | 'apiVip'> {
  const bad = (msg: string) => new VipmeshError('VIPMESH_CLUSTER_BAD_FLAG', msg);
  const join = flags.server !== undefined && flags.server !== '';
  if (join && flags.clusterInit === true) throw bad('--cluster-init starts a new cluster: drop --server');
  if (join && (flags.token === undefined || flags.token === '')) {
    throw bad('--server: give the cluster join token with --token (or VIPMESH_TOKEN)');
  }
  if ((join || flags.clusterInit === true) && flags.datastoreEndpoint !== undefined) {
    throw bad('--datastore-endpoint names an external etcd: drop --cluster-init and --server');
  }
  let apiVip: string | undefined;
  if (flags.apiVip !== undefined) {
    apiVip = canonicalIp(flags.apiVip);
    if (apiVip === undefined) throw bad(`--api-vip: "${flags.apiVip}" is not an IP address`);
    if (flags.disableAgent === true)
      throw bad('--api-vip is announced by the local agent: drop --disable-agent');
  }
  return {
    ...(flags.clusterInit === true ? { clusterInit: true } : {}),
    ...(join ? { join: { server: flags.server!, token: flags.token! } } : {}),
    ...(flags.clusterReset === true ? { clusterReset: true } : {}),
    ...(apiVip === undefined ? {} : { apiVip }),
  };
}

/** The HTTPS port's limits from `--api-*` (the rest keep their defaults). */
function connectionLimitsOf(flags: ServerFlags): Partial<ConnectionLimitOptions> {
  const requestTimeoutMs = parseDuration(flags.apiRequestTimeout, '--api-request-timeout');
  if (requestTimeoutMs <= 0) {
    throw new VipmeshError('VIPMESH_CLUSTER_BAD_FLAG', '--api-request-timeout must be above 0');
  }
  return {
    requestTimeoutMs,
    maxPerSource: positiveInt(flags.apiMaxConnectionsPerSource, '--api-max-connections-per-source'),
    ...(flags.apiMaxConnections === 'auto'
      ? {}
      : { maxConnections: positiveInt(flags.apiMaxConnections, '--api-max-connections') }),
  };
}
