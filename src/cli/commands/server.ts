import type { Command } from 'commander';
import { type Agent, createAgent } from '../../agent/index.js';
import { DEFAULT_ADMIN_CONFIG } from '../../api/index.js';
import { VipmeshError } from '../../errors.js';
import { createRegistry } from '../../metrics.js';
import { startServer } from '../../server/index.js';
import { parseDuration } from '../../util/duration.js';
import { notifyReady } from '../../util/sd-notify.js';
import { type CliContext, daemonCommand } from '../context.js';
import { untilSignal } from '../signals.js';
import { nodeAgentOptions, positiveInt, splitList } from './agent.js';
import { addDataPlaneOptions, addNodeIdentityOptions } from './node-options.js';

interface ServerFlags {
  dataDir: string;
  nodeIp?: string[];
  nodeName?: string;
  nodeLabel?: string[];
  httpsListenPort: string;
  bindAddress: string;
  clusterCidr: string;
  datastoreEndpoint?: string;
  disableAgent?: boolean;
  heartbeatInterval: string;
  nodeLostAfter: string;
  nodeStartupGrace: string;
  electionTtl: string;
  metricsBindAddress: string;
  adminConfig: string;
  flannelIface?: string;
  flannelBackend: string;
  flannelSubnetEnv: string;
  stateDir: string;
}

export function register(program: Command, ctx: CliContext): void {
  const cmd = program
    .command('server')
    .description('run the server: datastore, API, tunnel and controllers (and the local agent)')
    .option(
      '--data-dir <dir>',
      'state: the embedded datastore, CA, certificates and tokens',
      '/var/lib/vipmesh',
    )
    .option('--https-listen-port <port>', 'port of the HTTPS API and the agent tunnel', '6443')
    .option('--bind-address <ip>', 'address the HTTPS port listens on', '0.0.0.0')
    .option(
      '--cluster-cidr <cidr>',
      'pod subnets are carved from this (comma-separated: one per family)',
      '10.42.0.0/16',
    )
    .option(
      '--datastore-endpoint <urls>',
      'use this etcd cluster (http://h1:2379,http://h2:2379) instead of the embedded datastore; servers on one etcd elect a master',
    )
    .option('--disable-agent', 'do not run the local agent (this node announces no VIPs, gets no routes)')
    .option('--heartbeat-interval <duration>', 'agent <-> server heartbeat period', '100ms')
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
      '--election-ttl <duration>',
      'master lease TTL (whole seconds): how long a dead master keeps the role',
      '5s',
    )
    .option(
      '--metrics-bind-address <host:port>',
      'serve Prometheus metrics here ("" = off)',
      '127.0.0.1:7472',
    )
    .option(
      '--admin-config <file>',
      'write the admin config (API URL + admin token) here ("" = do not)',
      DEFAULT_ADMIN_CONFIG,
    );
  addNodeIdentityOptions(cmd);
  addDataPlaneOptions(cmd, 'local agent: ');
  cmd.action(async (flags: ServerFlags) => {
    const heartbeatMs = parseDuration(flags.heartbeatInterval, '--heartbeat-interval');
    if (heartbeatMs <= 0)
      throw new VipmeshError('VIPMESH_CLUSTER_BAD_FLAG', '--heartbeat-interval must be above 0');
    const misses = positiveInt(flags.nodeLostAfter, '--node-lost-after');
    const ttl = Math.max(1, Math.round(parseDuration(flags.electionTtl, '--election-ttl') / 1000));
    const port = Number(flags.httpsListenPort);
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new VipmeshError(
        'VIPMESH_CLUSTER_BAD_FLAG',
        `--https-listen-port: "${flags.httpsListenPort}" is not a port`,
      );
    }
    const nodeOptions = nodeAgentOptions(flags); // also the local agent's; parsed before anything starts
    const { nodeName } = nodeOptions;
    const nodeIps = nodeOptions.nodeIps ?? [];
    const clusterCidr = splitList([flags.clusterCidr]);
    const log = ctx.logger().child({ module: 'server' });
    const registry = createRegistry();
    const { signal, dispose } = untilSignal();
    // Process keep-alive (the daemon's own timers are unref'd): a real interval, no clock decides anything.
    const keepAlive = setInterval(() => undefined, 1 << 30);
    try {
      const server = await startServer({
        dataDir: flags.dataDir,
        nodeName,
        nodeIps,
        httpsListenPort: port,
        bindAddress: flags.bindAddress,
        clusterCidr,
        ...(flags.datastoreEndpoint === undefined ? {} : { datastoreEndpoint: flags.datastoreEndpoint }),
        heartbeatMs,
        nodeLostAfter: misses,
        nodeGraceMs: parseDuration(flags.nodeStartupGrace, '--node-startup-grace'),
        electionTtlSeconds: ttl,
        metricsBindAddress: flags.metricsBindAddress,
        adminConfigPath: flags.adminConfig,
        logger: ctx.logger(),
        registry,
      });
      let agent: Agent | undefined;
      try {
        if (flags.disableAgent !== true) {
          agent = await createAgent({
            servers: [server.url],
            token: server.credentials.joinToken,
            ...nodeOptions,
            heartbeatMs,
            misses,
            logger: ctx.logger().child({ module: 'agent' }),
            registry,
          });
        }
        await notifyReady('serving');
        log.info({ url: server.url, agent: agent !== undefined }, 'vipmesh server is up');
        const sig = await signal;
        log.info({ signal: sig }, 'shutting down');
      } finally {
        await agent?.close();
        await server.close();
      }
    } finally {
      clearInterval(keepAlive);
      dispose();
    }
  });
  daemonCommand(cmd);
}
