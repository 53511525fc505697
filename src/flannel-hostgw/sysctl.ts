/**
 * IP forwarding: host-gw routes pod traffic through the node, so the node must forward. Turned on at
 * start (as flannel and k3s do) and left on at exit: pods keep being routed while the daemon restarts.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { VipmeshError } from '../errors.js';
import type { IpFamily } from '../util/ip.js';

/** The sysctl file for forwarding in each family, relative to /proc/sys. */
const FORWARDING_SYSCTL: Record<IpFamily, string> = {
  4: 'net/ipv4/ip_forward',
  6: 'net/ipv6/conf/all/forwarding',
};

/**
 * Set forwarding to 1 for each family and log it (`was` holds the previous value). `procRoot` is
 * injectable for tests (default `/proc/sys`). Throws `VIPMESH_HOSTGW_SYSCTL` with the errno kept.
 * Note: IPv6 forwarding makes the kernel ignore router advertisements on interfaces with accept_ra=1.
 */
export async function enableForwarding(
  families: Iterable<IpFamily>,
  log: Logger,
  procRoot = '/proc/sys',
): Promise<void> {
  for (const family of new Set(families)) {
    const path = join(procRoot, FORWARDING_SYSCTL[family]);
    const key = FORWARDING_SYSCTL[family].replaceAll('/', '.');
    try {
      const was = (await readFile(path, 'utf8')).trim();
      if (was !== '1') await writeFile(path, '1\n');
      log.info(
        { op: 'sysctl', key, was, now: '1' },
        `IPv${family} forwarding ${was === '1' ? 'already on' : 'enabled'} (${key}=1)`,
      );
    } catch (err) {
      throw new VipmeshError(
        'VIPMESH_HOSTGW_SYSCTL',
        `cannot enable IPv${family} forwarding (${key}): ${(err as Error).message}`,
        {
          cause: err,
          details: { key },
        },
      );
    }
  }
}
