/**
 * The production wiring: netlink layer -> reconciler, plus subnet.env and IP forwarding. The agent (or
 * the fixture in test/netns) calls `createHostGw()`, `start()`, then `setLeases()` whenever the control
 * plane sends the lease set.
 */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Clock } from '../clock.js';
import { VipmeshError } from '../errors.js';
import { silentLogger } from '../log.js';
import { formatIp, type IpFamily, parseIp } from '../util/ip.js';
import { SubnetAllocator } from './allocator.js';
import { checkLease, type Lease } from './lease.js';
import { createRouteNetlink, type RouteNetlink } from './netlink.js';
import { type ReconcileResult, RouteReconciler, VIPMESH_RT_PROTOCOL } from './reconciler.js';
import { DEFAULT_SUBNET_ENV_PATH, writeSubnetEnv } from './subnet-env.js';
import { enableForwarding } from './sysctl.js';

/** Options of {@link createHostGw}. */
interface HostGwOptions {
  /** This node's name, as in its lease. */
  nodeName: string;
  /** `--flannel-iface`; default: the interface holding `nodeIp`, else the default route's interface. */
  flannelIface?: string;
  /** `--node-ip`: this node's address on the shared L2 (used to find the interface). */
  nodeIp?: string;
  /** `--cluster-cidr`, one per family for dual stack; default `10.42.0.0/16`. */
  clusterCidr?: string | readonly string[];
  /** subnet.env location; default `/run/flannel/subnet.env`. */
  subnetEnvPath?: string;
  /** FLANNEL_IPMASQ; default false (vipmesh installs no masquerade rules, so the CNI plugin should). */
  ipMasq?: boolean;
  /** FLANNEL_MTU; default the flannel interface's MTU. */
  mtu?: number;
  /** rtm_protocol; default 86 ({@link VIPMESH_RT_PROTOCOL}). */
  protocol?: number;
  /** Full resync period (ms); default 10,000. */
  resyncIntervalMs?: number;
  /** Turn on IPv4 (and in dual stack IPv6) forwarding at start; default true. */
  enableForwarding?: boolean;
  /** Root of the sysctl tree; default `/proc/sys` (tests point it elsewhere). */
  procRoot?: string;
  /** The netlink layer; default the real one ({@link createRouteNetlink}). */
  netlink?: RouteNetlink;
  logger?: Logger;
  clock?: Clock;
  registry?: Registry;
}

/** What start() found out about this node. */
interface HostGwInfo {
  iface: string;
  ifindex: number;
  mtu: number;
  /** This node's addresses on the flannel interface (the nodeIPs its own lease should carry). */
  nodeIPs: string[];
}

/** A running host-gw data plane. */
interface HostGw {
  /** Resolve the interface, enable forwarding, start the reconciler. */
  start(): Promise<HostGwInfo>;
  /**
   * Apply the lease set (all nodes, this one included): writes subnet.env when this node's own subnets
   * change, then converges the routes. Resolves with the pass's result (refusals included).
   */
  setLeases(leases: readonly Lease[]): Promise<ReconcileResult>;
  readonly reconciler: RouteReconciler;
  close(): Promise<void>;
}

/**
 * Find the flannel interface: `flannelIface` if given, else the one holding `nodeIp`, else the one of
 * the default route (IPv4 first). `VIPMESH_HOSTGW_NO_IFACE` when none is found.
 */
export async function resolveFlannelIface(
  nl: RouteNetlink,
  opts: { flannelIface?: string; nodeIp?: string },
): Promise<HostGwInfo> {
  const links = await nl.listLinks();
  const addrs = await nl.listAddresses();
  let link = opts.flannelIface === undefined ? undefined : links.find((l) => l.name === opts.flannelIface);
  if (opts.flannelIface !== undefined && link === undefined) {
    throw new VipmeshError('VIPMESH_HOSTGW_NO_IFACE', `--flannel-iface ${opts.flannelIface} does not exist`, {
      details: { iface: opts.flannelIface },
    });
  }
  if (link === undefined && opts.nodeIp !== undefined) {
    const ip = parseIp(opts.nodeIp);
    const want = ip === undefined ? opts.nodeIp : formatIp(ip);
    const holder = addrs.find((a) => a.address === want);
    if (holder === undefined) {
      throw new VipmeshError('VIPMESH_HOSTGW_NO_IFACE', `--node-ip ${opts.nodeIp} is not on any interface`, {
        details: { nodeIp: opts.nodeIp },
      });
    }
    link = links.find((l) => l.index === holder.ifindex);
  }
  if (link === undefined) {
    const routes = await nl.listRoutes();
    const def = [4, 6].map((f) =>
      routes.find((r) => r.family === f && r.dst.endsWith('/0') && r.ifindex !== undefined),
    );
    const index = (def[0] ?? def[1])?.ifindex;
    link = links.find((l) => l.index === index);
  }
  if (link === undefined) {
    throw new VipmeshError(
      'VIPMESH_HOSTGW_NO_IFACE',
      'no flannel interface: give --flannel-iface or --node-ip (there is no default route to take it from)',
    );
  }
  const index = link.index;
  return {
    iface: link.name,
    ifindex: index,
    mtu: link.mtu,
    nodeIPs: addrs.filter((a) => a.ifindex === index && !a.address.startsWith('fe80:')).map((a) => a.address),
  };
}

/** Wire the production host-gw stack (see {@link HostGwOptions} for defaults). */
export function createHostGw(opts: HostGwOptions): HostGw {
  const log = opts.logger ?? silentLogger();
  const allocator = new SubnetAllocator(
    opts.clusterCidr === undefined ? {} : { clusterCidr: opts.clusterCidr },
  );
  const networks = allocator.clusterCidrs;
  const families = networks.map((c) => (c.includes(':') ? 6 : 4) as IpFamily);
  const nl = opts.netlink ?? createRouteNetlink();
  const subnetEnvPath = opts.subnetEnvPath ?? DEFAULT_SUBNET_ENV_PATH;
  let info: HostGwInfo | undefined;
  let reconciler: RouteReconciler | undefined;
  let lastEnv = '';
  let envWrites: Promise<void> = Promise.resolve();

  const self = {
    async start() {
      info = await resolveFlannelIface(nl, opts);
      log.info(
        {
          op: 'start',
          iface: info.iface,
          nodeIPs: info.nodeIPs,
          protocol: opts.protocol ?? VIPMESH_RT_PROTOCOL,
        },
        `host-gw on ${info.iface}`,
      );
      if (opts.enableForwarding !== false) await enableForwarding(families, log, opts.procRoot);
      reconciler = new RouteReconciler(nl, {
        nodeName: opts.nodeName,
        iface: info.iface,
        protocol: opts.protocol ?? VIPMESH_RT_PROTOCOL,
        resyncIntervalMs: opts.resyncIntervalMs ?? 10_000,
        logger: log,
        ...(opts.clock === undefined ? {} : { clock: opts.clock }),
        ...(opts.registry === undefined ? {} : { registry: opts.registry }),
      });
      await reconciler.start();
      return info;
    },
    async setLeases(leases: readonly Lease[]) {
      if (reconciler === undefined || info === undefined) {
        throw new VipmeshError('VIPMESH_HOSTGW_NOT_STARTED', 'host-gw: setLeases() before start()');
      }
      const own = leases.find((l) => l?.node === opts.nodeName);
      if (own !== undefined) {
        const subnets = checkLease(own).podCIDRs;
        const mtu = opts.mtu ?? info.mtu;
        // Writes are chained so that concurrent calls land in call order (the last set wins on disk).
        const write = envWrites.then(async () => {
          const key = subnets.join(',');
          if (key === lastEnv) return;
          await writeSubnetEnv(subnetEnvPath, { networks, subnets, mtu, ipMasq: opts.ipMasq ?? false });
          lastEnv = key;
          log.info({ op: 'subnet.env', path: subnetEnvPath, subnets }, `wrote ${subnetEnvPath}`);
        });
        envWrites = write.catch(() => undefined);
        await write;
      }
      return reconciler.setLeases(leases);
    },
    get reconciler(): RouteReconciler {
      if (reconciler === undefined)
        throw new VipmeshError('VIPMESH_HOSTGW_NOT_STARTED', 'host-gw: not started');
      return reconciler;
    },
    async close() {
      if (reconciler !== undefined) await reconciler.close();
      else nl.close();
    },
  };
  return self;
}
