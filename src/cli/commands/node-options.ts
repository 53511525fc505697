import { type Command, Option } from 'commander';
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
    .option('--flannel-subnet-env <file>', `${prefix}where subnet.env is written`, '/run/flannel/subnet.env')
    .option('--state-dir <dir>', `${prefix}runtime state (sysctl originals to restore)`, '/run/vipmesh');
}
