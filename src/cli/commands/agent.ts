import { type Command, Option } from 'commander';
import { createAgent, registerProcessMetrics, serveMetrics } from '../../agent/index.js';
import { HEAP_CHURN_ENV, heapChurnFromEnv } from '../../daemon/heap-churn.js';
import { DEFAULT_METRICS_BIND_ADDRESS } from '../../daemon/metrics-http.js';
import { runDaemon } from '../../daemon/run-daemon.js';
import { VipmeshError } from '../../errors.js';
import { createRegistry } from '../../metrics.js';
import { parseDuration } from '../../util/duration.js';
import { collect } from '../config.js';
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

interface AgentFlags extends NodeFlags {
  server?: string[];
  token?: string;
  heartbeatInterval: string;
  nodeLostAfter: string;
  probeInterval: string;
  metricsBindAddress: string;
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
    );
  addDataDirOption(cmd, 'state: the node password and the pinned server CA')
    .option('--heartbeat-interval <duration>', 'tunnel heartbeat period (as the server)', '50ms')
    .option('--node-lost-after <n>', 'missed heartbeats after which the server is lost (as the server)', '3')
    .option(
      '--probe-interval <duration>',
      'while the server is lost, probe the held VIPs this often',
      '500ms',
    )
    .option(
      '--metrics-bind-address <host:port>',
      'serve Prometheus metrics here ("" = off)',
      DEFAULT_METRICS_BIND_ADDRESS,
    );
  addNodeIdentityOptions(cmd);
  addDataPlaneOptions(cmd);
  addHandoverOption(cmd);
  cmd.action(async (flags: AgentFlags) => {
    const servers = splitList(flags.server);
    if (servers.length === 0) {
      throw new VipmeshError(
        'VIPMESH_CLUSTER_BAD_FLAG',
        'give the server with --server URL (or VIPMESH_URL)',
      );
    }
    const token = flags.token;
    if (token === undefined || token === '') {
      throw new VipmeshError(
        'VIPMESH_CLUSTER_BAD_FLAG',
        'give the join token with --token (or VIPMESH_TOKEN)',
      );
    }
    const heartbeatMs = heartbeatMsOf(flags.heartbeatInterval);
    const misses = positiveInt(flags.nodeLostAfter, '--node-lost-after');
    const nodeOptions = nodeAgentOptions(flags); // parsed (and refused) before anything starts
    const probeIntervalMs = parseDuration(flags.probeInterval, '--probe-interval');
    const handoverTimeoutMs = parseDuration(flags.handoverTimeout, '--handover-timeout');
    const log = ctx.logger().child({ module: 'agent' });
    const registry = createRegistry();
    registerProcessMetrics(registry);
    await runDaemon({
      start: async ({ signal, stack }) => {
        const churn = heapChurnFromEnv(process.env);
        if (churn !== undefined) {
          log.warn({ [HEAP_CHURN_ENV]: process.env[HEAP_CHURN_ENV] }, 'debug: churning the heap');
          stack.push('heap-churn', () => churn.stop());
        }
        if (flags.metricsBindAddress !== '') {
          const metrics = await serveMetrics(flags.metricsBindAddress, registry);
          stack.push('metrics', () => metrics.close());
        }
        const agent = await createAgent({
          servers,
          token,
          ...nodeOptions,
          heartbeatMs,
          misses,
          probeIntervalMs,
          handoverTimeoutMs,
          logger: ctx.logger(),
          registry,
          start: false,
        });
        stack.push('agent', () => agent.close());
        // A signal while the server is still unreachable ends the wait (and the agent) at once.
        const started = agent.start().then(() => 'connected');
        started.catch(() => undefined); // raced below; a failure after a signal is moot
        const first = await Promise.race([started, signal]);
        if (first !== 'connected') {
          log.info({ signal: first }, 'shutting down before the first connection');
          return { stoppedBy: first };
        }
        return {
          readyStatus: 'connected',
          up: () => log.info({ servers }, 'vipmesh agent is up'),
          stopping: (sig) =>
            log.info({ signal: sig }, 'shutting down: handing the VIPs over, then releasing them'),
        };
      },
    });
  });
  daemonCommand(cmd);
}
