import { LinkNeighbourProbe, serverTargets, startAnnouncer } from '../arp/index.js';
import { type Clock, systemClock } from '../clock.js';
import { createHostGw, DEFAULT_SUBNET_ENV_PATH } from '../flannel-hostgw/index.js';
import { type Logger, moduleLogger } from '../log.js';
import type { Registry } from '../metrics.js';
import { DEFAULT_STATE_DIR } from '../paths.js';
import { Agent, type AgentHostGw, localRegistration } from './agent.js';
import { createAgentLb } from './lb.js';

/** Options of {@link createAgent}. Defaults in brackets. */
export interface CreateAgentOptions {
  servers: string[];
  token: string;
  nodeName: string;
  /** `--node-ip`; default the first non-loopback address. */
  nodeIps?: string[];
  labels?: Record<string, string>;
  /** [/var/lib/vipmesh] */
  dataDir: string;
  /** Where the announcer remembers sysctl originals [/run/vipmesh]. */
  stateDir?: string;
  /** `--flannel-iface` (default: the interface holding the node IP). */
  flannelIface?: string;
  /** `host-gw` (default) or `none` (no pod routes). */
  flannelBackend?: string;
  /** [/run/flannel/subnet.env] */
  subnetEnvPath?: string;
  heartbeatMs?: number;
  misses?: number;
  probeIntervalMs?: number;
  /** On close, the longest hand-over of the VIPs to their new holders; 0: none [5000 ms]. */
  handoverTimeoutMs?: number;
  /**
   * Send liveness datagrams when the server grants them [true]. A server's own local agent does not: it
   * shares the server's process, so a stall stops both ends alike, and the datagrams would cost a thread and a
   * socket for nothing.
   */
  liveness?: boolean;
  /** The root logger (no `module`): the agent logs as module agent, the announcer as arp, host-gw as flannel-hostgw. */
  logger: Logger;
  registry?: Registry;
  clock?: Clock;
  /** `--disable-load-balancer`-style switch: no nftables table, Service pushes ignored [false]. */
  disableLoadBalancer?: boolean;
  /** How often the nftables table is compared with what was applied [10 s]. */
  lbVerifyIntervalMs?: number;
  /** Connect before resolving [true]; false: the caller runs `agent.start()` (and can close it meanwhile). */
  start?: boolean;
}

/**
 * The production agent: src/arp's announcer (AF_PACKET, netlink, sysctls) and src/flannel-hostgw's
 * route reconciler behind an {@link Agent}. Started (first session up) when the promise resolves, unless
 * `start: false`.
 */
export async function createAgent(o: CreateAgentOptions): Promise<Agent> {
  const log = moduleLogger(o.logger, 'agent');
  const registration = localRegistration({
    nodeName: o.nodeName,
    ...(o.nodeIps === undefined ? {} : { nodeIps: o.nodeIps }),
    ...(o.labels === undefined ? {} : { labels: o.labels }),
  });
  const nodeIp = registration.addresses?.find((a) => a.type === 'InternalIP')?.address;
  const announcer = await startAnnouncer({
    logger: moduleLogger(o.logger, 'arp'),
    stateDir: o.stateDir ?? DEFAULT_STATE_DIR,
    ...(o.registry === undefined ? {} : { registry: o.registry }),
    ...(o.clock === undefined ? {} : { clock: o.clock }),
  });
  const hostGw =
    o.flannelBackend === 'none'
      ? undefined
      : (clusterCidr: string[]): AgentHostGw =>
          createHostGw({
            nodeName: o.nodeName,
            clusterCidr,
            subnetEnvPath: o.subnetEnvPath ?? DEFAULT_SUBNET_ENV_PATH,
            logger: moduleLogger(o.logger, 'flannel-hostgw'),
            ...(o.flannelIface === undefined ? {} : { flannelIface: o.flannelIface }),
            ...(nodeIp === undefined ? {} : { nodeIp }),
            ...(o.registry === undefined ? {} : { registry: o.registry }),
            ...(o.clock === undefined ? {} : { clock: o.clock }),
          });
  const nodeIps = (registration.addresses ?? []).filter((a) => a.type === 'InternalIP').map((a) => a.address);
  const agent = new Agent({
    servers: o.servers,
    token: o.token,
    nodeName: o.nodeName,
    dataDir: o.dataDir,
    registration,
    announcer,
    logger: log,
    // While the server is unreachable, keep its link-layer address fresh (docs/tunnel.md, "Reconnect").
    tunnel: {
      ...(o.liveness === false ? { liveness: false } : {}),
      neighbourProbe: new LinkNeighbourProbe({
        targets: () => serverTargets(o.servers),
        clock: o.clock ?? systemClock,
        logger: moduleLogger(o.logger, 'tunnel'),
      }),
    },
    ...(hostGw === undefined ? {} : { hostGw }),
    ...(o.registry === undefined ? {} : { registry: o.registry }),
    ...(o.clock === undefined ? {} : { clock: o.clock }),
    ...(o.heartbeatMs === undefined ? {} : { heartbeatMs: o.heartbeatMs }),
    ...(o.misses === undefined ? {} : { misses: o.misses }),
    ...(o.probeIntervalMs === undefined ? {} : { probeIntervalMs: o.probeIntervalMs }),
    ...(o.handoverTimeoutMs === undefined ? {} : { handoverTimeoutMs: o.handoverTimeoutMs }),
    ...(o.disableLoadBalancer === true
      ? {}
      : {
          loadBalancer: (deps) =>
            createAgentLb({
              ...deps,
              nodeName: o.nodeName,
              nodeIps,
              clock: o.clock ?? systemClock,
              logger: moduleLogger(o.logger, 'lb'),
              ...(o.registry === undefined ? {} : { registry: o.registry }),
              ...(o.lbVerifyIntervalMs === undefined ? {} : { verifyIntervalMs: o.lbVerifyIntervalMs }),
            }),
        }),
  });
  if (o.start === false) return agent;
  try {
    await agent.start();
  } catch (err) {
    await agent.close().catch(() => undefined);
    throw err;
  }
  return agent;
}
