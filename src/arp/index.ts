/**
 * The layer-2 announcer: ARP and NDP for virtual IPs. Public surface of src/arp.
 */
import { join } from 'node:path';
import { type Clock, systemClock } from '../clock.js';
import type { Logger } from '../log.js';
import { createRegistry, type Registry } from '../metrics.js';
import { DEFAULT_STATE_DIR } from '../paths.js';
import { Announcer, type AnnouncerOptions } from './announcer.js';
import { NetlinkTables } from './netlink.js';
import { openPacketPort } from './ports.js';
import { ArpSysctl } from './sysctl.js';

export { LinkNeighbourProbe, type NeighbourProbeOptions, serverTargets } from './neighbour-probe.js';

/** Options of {@link startAnnouncer}: the announcer's own plus the production wiring. */
interface StartAnnouncerOptions extends AnnouncerOptions {
  logger: Logger;
  /** Metrics registry; default a fresh one. */
  registry?: Registry;
  clock?: Clock;
  /** Where sysctl originals survive a crash; default `/run/vipmesh`. */
  stateDir?: string;
}

/**
 * The production announcer: AF_PACKET ports, rtnetlink for links and lo addresses, /proc/sys for
 * arp_ignore/arp_announce. Started (stale VIPs removed, ports open) when the promise resolves.
 */
export async function startAnnouncer(opts: StartAnnouncerOptions): Promise<Announcer> {
  const tables = new NetlinkTables();
  const announcer = new Announcer(
    {
      links: tables,
      addresses: tables,
      sysctl: new ArpSysctl(undefined, join(opts.stateDir ?? DEFAULT_STATE_DIR, 'arp-sysctl.json')),
      openPort: openPacketPort,
      clock: opts.clock ?? systemClock,
      logger: opts.logger,
      registry: opts.registry ?? createRegistry(),
    },
    opts,
  );
  try {
    await announcer.start();
  } catch (err) {
    await announcer.close().catch(() => undefined);
    throw err;
  }
  return announcer;
}
