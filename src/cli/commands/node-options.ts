import { hostname } from 'node:os';
import { type Command, Option } from 'commander';
import type { CreateAgentOptions } from '../../agent/wire.js';
import { VipmeshError } from '../../errors.js';
import { DEFAULT_SUBNET_ENV_PATH } from '../../flannel-hostgw/subnet-env.js';
import { DEFAULT_DATA_DIR, DEFAULT_STATE_DIR } from '../../paths.js';
import { parseDuration } from '../../util/duration.js';
import { collect } from '../config.js';

/** `--node-ip`, `--node-name`, `--node-label`: how a node names itself, the same for server and agent. */
export function addNodeIdentityOptions(cmd: Command): Command {
  return cmd
    .option('--node-ip <ip>', "this node's address(es) on the LAN (repeatable or comma-separated)", collect)
    .option('--node-name <name>', "this node's name (default: the host name)")
    .option(
      '--node-label <key=value>',
      'a label of this node, for L2Advertisement nodeSelectors (repeatable)',
      collect,
    );
}

/**
 * The data-plane flags of an agent (`--flannel-iface`, `--flannel-backend`, `--flannel-subnet-env`,
 * `--state-dir`); on the server they configure its local agent, which `prefix` says in the help.
 */
export function addDataPlaneOptions(cmd: Command, prefix = ''): Command {
  return cmd
    .option(
      '--flannel-iface <name>',
      `${prefix}interface of the pod routes (default: the one holding --node-ip)`,
    )
    .addOption(
      new Option('--flannel-backend <backend>', `${prefix}host-gw pod routes, or none`)
        .choices(['host-gw', 'none'])
        .default('host-gw'),
    )
    .option('--flannel-subnet-env <file>', `${prefix}where subnet.env is written`, DEFAULT_SUBNET_ENV_PATH)
    .option('--state-dir <dir>', `${prefix}runtime state (sysctl originals to restore)`, DEFAULT_STATE_DIR);
}

/**
 * `--handover-timeout`: on SIGTERM the agent (the server's local agent, as `prefix` says) keeps answering
 * for each VIP until its new holder announces it, at most this long.
 */
export function addHandoverOption(cmd: Command, prefix = ''): Command {
  return cmd.option(
    '--handover-timeout <duration>',
    `${prefix}on SIGTERM, keep answering for each VIP until its new holder announces it, at most this long (0 = release at once)`,
    '5s',
  );
}

/** `--data-dir`, with what the command keeps there in the help. */
export function addDataDirOption(cmd: Command, what: string): Command {
  return cmd.option('--data-dir <dir>', what, DEFAULT_DATA_DIR);
}

/** The flags {@link addNodeIdentityOptions}, {@link addDataPlaneOptions} and {@link addDataDirOption} declare. */
export interface NodeFlags {
  nodeIp?: string[];
  nodeName?: string;
  nodeLabel?: string[];
  dataDir: string;
  flannelIface?: string;
  flannelBackend: string;
  flannelSubnetEnv: string;
  stateDir: string;
  handoverTimeout: string;
}

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

/** `--heartbeat-interval` in ms, refused unless above 0. */
export function heartbeatMsOf(text: string): number {
  const heartbeatMs = parseDuration(text, '--heartbeat-interval');
  if (heartbeatMs <= 0)
    throw new VipmeshError('VIPMESH_CLUSTER_BAD_FLAG', '--heartbeat-interval must be above 0');
  return heartbeatMs;
}

/** The node name: the flag, else the host name (lowercased, as Kubernetes does). */
export function nodeNameOf(flag: string | undefined): string {
  return (flag ?? hostname()).toLowerCase();
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
