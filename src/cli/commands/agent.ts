import { hostname } from 'node:os';
import { type Command, Option } from 'commander';
import {
  type CreateAgentOptions,
  createAgent,
  registerProcessMetrics,
  serveMetrics,
} from '../../agent/index.js';
import { VipmeshError } from '../../errors.js';
import { createRegistry } from '../../metrics.js';
import { parseDuration } from '../../util/duration.js';
import { notifyReady } from '../../util/sd-notify.js';
import { collect } from '../config.js';
import { type CliContext, daemonCommand } from '../context.js';
import { untilSignal } from '../signals.js';
import { addDataPlaneOptions, addNodeIdentityOptions } from './node-options.js';

/** `--node-ip a,b --node-ip c` -> `['a', 'b', 'c']`. */
export function splitList(values: string[] | undefined): string[] {
  return (values ?? [])
    .flatMap((v) => v.split(','))
    .map((s) => s.trim())
    .filter(Boolean);
}

/** `k=v` labels (repeatable `--node-label`). */
export function parseLabels(values: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of splitList(values)) {
    const i = v.indexOf('=');
    if (i <= 0) throw new VipmeshError('VIPMESH_CLUSTER_BAD_FLAG', `--node-label: "${v}" is not key=value`);
    out[v.slice(0, i)] = v.slice(i + 1);
  }
  return out;
}

/** A positive integer flag. */
export function positiveInt(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) {
    throw new VipmeshError('VIPMESH_CLUSTER_BAD_FLAG', `${flag}: "${text}" is not a positive whole number`);
  }
  return n;
}

/** The node name: the flag, else the host name (lowercased, as Kubernetes does). */
export function nodeNameOf(flag: string | undefined): string {
  return (flag ?? hostname()).toLowerCase();
}

/** The flags {@link addNodeIdentityOptions} and {@link addDataPlaneOptions} declare. */
export interface NodeFlags {
  nodeIp?: string[];
  nodeName?: string;
  nodeLabel?: string[];
  dataDir: string;
  flannelIface?: string;
  flannelBackend: string;
  flannelSubnetEnv: string;
  stateDir: string;
}

/** Those flags as createAgent takes them (the agent command and the server's local agent alike). */
export function nodeAgentOptions(
  flags: NodeFlags,
): Pick<
  CreateAgentOptions,
  | 'nodeName'
  | 'nodeIps'
  | 'labels'
  | 'dataDir'
  | 'stateDir'
  | 'flannelBackend'
  | 'subnetEnvPath'
  | 'flannelIface'
> {
  const nodeIps = splitList(flags.nodeIp);
  return {
    nodeName: nodeNameOf(flags.nodeName),
    ...(nodeIps.length > 0 ? { nodeIps } : {}),
    labels: parseLabels(flags.nodeLabel),
    dataDir: flags.dataDir,
    stateDir: flags.stateDir,
    flannelBackend: flags.flannelBackend,
    subnetEnvPath: flags.flannelSubnetEnv,
    ...(flags.flannelIface === undefined ? {} : { flannelIface: flags.flannelIface }),
  };
}

interface AgentFlags {
  server?: string[];
  token?: string;
  nodeIp?: string[];
  nodeName?: string;
  nodeLabel?: string[];
  dataDir: string;
  heartbeatInterval: string;
  nodeLostAfter: string;
  probeInterval: string;
  metricsBindAddress: string;
  flannelIface?: string;
  flannelBackend: string;
  flannelSubnetEnv: string;
  stateDir: string;
}

export function register(program: Command, ctx: CliContext): void {
  const cmd = program
    .command('agent')
    .description('run an agent: join the server, announce assigned VIPs, program host-gw routes')
    .addOption(
      new Option(
        '--server <url>',
        'server URL https://HOST:6443 (repeatable or comma-separated: tried in order)',
      )
        .env('VIPMESH_URL')
        .argParser(collect),
    )
    .addOption(
      new Option('--token <token>', 'the join token (vipmesh token on the server)').env('VIPMESH_TOKEN'),
    )
    .option('--data-dir <dir>', 'state: the node password and the pinned server CA', '/var/lib/vipmesh')
    .option('--heartbeat-interval <duration>', 'tunnel heartbeat period (as the server)', '100ms')
    .option('--node-lost-after <n>', 'missed heartbeats after which the server is lost (as the server)', '3')
    .option(
      '--probe-interval <duration>',
      'while the server is lost, probe the held VIPs this often',
      '500ms',
    )
    .option(
      '--metrics-bind-address <host:port>',
      'serve Prometheus metrics here ("" = off)',
      '127.0.0.1:7472',
    );
  addNodeIdentityOptions(cmd);
  addDataPlaneOptions(cmd);
  cmd.action(async (flags: AgentFlags) => {
    const servers = splitList(flags.server);
    if (servers.length === 0) {
      throw new VipmeshError(
        'VIPMESH_CLUSTER_BAD_FLAG',
        'give the server with --server URL (or VIPMESH_URL)',
      );
    }
    if (flags.token === undefined || flags.token === '') {
      throw new VipmeshError(
        'VIPMESH_CLUSTER_BAD_FLAG',
        'give the join token with --token (or VIPMESH_TOKEN)',
      );
    }
    const heartbeatMs = parseDuration(flags.heartbeatInterval, '--heartbeat-interval');
    if (heartbeatMs <= 0)
      throw new VipmeshError('VIPMESH_CLUSTER_BAD_FLAG', '--heartbeat-interval must be above 0');
    const misses = positiveInt(flags.nodeLostAfter, '--node-lost-after');
    const nodeOptions = nodeAgentOptions(flags); // parsed (and refused) before anything starts
    const probeIntervalMs = parseDuration(flags.probeInterval, '--probe-interval');
    const log = ctx.logger().child({ module: 'agent' });
    const registry = createRegistry();
    registerProcessMetrics(registry);
    const { signal, dispose } = untilSignal();
    // Process keep-alive (the daemon's own timers are unref'd): a real interval, no clock decides anything.
    const keepAlive = setInterval(() => undefined, 1 << 30);
    try {
      const metrics =
        flags.metricsBindAddress === '' ? undefined : await serveMetrics(flags.metricsBindAddress, registry);
      try {
        const agent = await createAgent({
          servers,
          token: flags.token,
          ...nodeOptions,
          heartbeatMs,
          misses,
          probeIntervalMs,
          logger: log,
          registry,
          start: false,
        });
        try {
          // A signal while the server is still unreachable ends the wait (and the agent) at once.
          const started = agent.start().then(() => 'connected');
          started.catch(() => undefined); // raced below; a failure after a signal is moot
          const first = await Promise.race([started, signal]);
          if (first !== 'connected') {
            log.info({ signal: first }, 'shutting down before the first connection');
            return;
          }
          await notifyReady('connected');
          log.info({ servers }, 'vipmesh agent is up');
          const sig = await signal;
          log.info({ signal: sig }, 'shutting down: releasing every VIP');
        } finally {
          await agent.close();
        }
      } finally {
        await metrics?.close();
      }
    } finally {
      clearInterval(keepAlive);
      dispose();
    }
  });
  daemonCommand(cmd);
}
