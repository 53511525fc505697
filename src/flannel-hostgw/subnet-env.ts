/**
 * /run/flannel/subnet.env: what the standard flannel CNI plugin reads to configure each pod's bridge
 * (FLANNEL_NETWORK, FLANNEL_SUBNET, FLANNEL_MTU, FLANNEL_IPMASQ and the IPv6 pair in dual stack).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { VipmeshError } from '../errors.js';
import { formatCidr } from '../util/cidr.js';
import { formatIp } from '../util/ip.js';
import { parseCidr } from './cidr.js';

/** flannel's default path, which its CNI plugin reads unless told otherwise. */
export const DEFAULT_SUBNET_ENV_PATH = '/run/flannel/subnet.env';

/** The contents of subnet.env. */
interface SubnetEnv {
  /** Cluster CIDRs (one per family), e.g. `['10.42.0.0/16']`. */
  networks: readonly string[];
  /** This node's pod subnets (one per family), e.g. `['10.42.1.0/24']`. */
  subnets: readonly string[];
  /** MTU of the pod network: the flannel interface's MTU (host-gw adds no header). */
  mtu: number;
  /**
   * FLANNEL_IPMASQ. flannel's CNI plugin masquerades pod traffic itself when this is false; vipmesh
   * installs no masquerade rules, so the default is false.
   */
  ipMasq?: boolean;
}

function pick(list: readonly string[], family: 4 | 6, what: string) {
  const found = list.map((s) => parseCidr(s, what)).filter((c) => c.family === family);
  if (found.length > 1)
    throw new VipmeshError('VIPMESH_HOSTGW_BAD_CIDR', `${what}: two IPv${family} prefixes`);
  return found[0];
}

/**
 * The text of subnet.env. FLANNEL_SUBNET is the subnet's first address with its length (`10.42.1.1/24`),
 * the address the CNI bridge takes, as flannel writes it. Throws `VIPMESH_HOSTGW_BAD_CIDR` on a subnet
 * whose family has no network, or that lies outside it.
 */
export function formatSubnetEnv(env: SubnetEnv): string {
  const lines: string[] = [];
  for (const family of [4, 6] as const) {
    const net = pick(env.networks, family, 'cluster CIDR');
    const sub = pick(env.subnets, family, 'pod subnet');
    if (sub === undefined) continue;
    if (
      net === undefined ||
      sub.len < net.len ||
      (sub.value & ~((1n << BigInt((family === 4 ? 32 : 128) - net.len)) - 1n)) !== net.value
    ) {
      throw new VipmeshError(
        'VIPMESH_HOSTGW_BAD_CIDR',
        `pod subnet ${formatCidr(sub)} is not inside the cluster CIDR`,
        {
          details: { value: formatCidr(sub) },
        },
      );
    }
    const first = formatIp({
      family,
      value: sub.len >= (family === 4 ? 32 : 128) ? sub.value : sub.value + 1n,
    });
    const tag = family === 4 ? '' : 'IPV6_';
    lines.push(`FLANNEL_${tag}NETWORK=${formatCidr(net)}`, `FLANNEL_${tag}SUBNET=${first}/${sub.len}`);
  }
  if (lines.length === 0)
    throw new VipmeshError('VIPMESH_HOSTGW_BAD_CIDR', 'subnet.env needs at least one pod subnet');
  if (!Number.isInteger(env.mtu) || env.mtu < 68 || env.mtu > 65535) {
    throw new VipmeshError('VIPMESH_HOSTGW_BAD_CIDR', `MTU ${env.mtu} is out of range`, {
      details: { value: env.mtu },
    });
  }
  // flannel's order: networks and subnets first, then MTU and IPMASQ.
  const v4 = lines.filter((l) => !l.startsWith('FLANNEL_IPV6_'));
  const v6 = lines.filter((l) => l.startsWith('FLANNEL_IPV6_'));
  return [...v4, ...v6, `FLANNEL_MTU=${env.mtu}`, `FLANNEL_IPMASQ=${env.ipMasq === true}`, ''].join('\n');
}

/** Parse subnet.env text into its KEY=value pairs (blank lines and `#` comments skipped). */
export function parseSubnetEnv(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0)
      throw new VipmeshError('VIPMESH_HOSTGW_SUBNET_ENV', `subnet.env: "${line}" is not KEY=value`);
    out.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return out;
}

/**
 * Write subnet.env at `path` atomically: a temporary file in the same directory, fsynced, then renamed
 * over the old one, so the CNI plugin never reads half a file. Creates the directory. Mode 0644.
 * Throws `VIPMESH_HOSTGW_SUBNET_ENV` (errno kept in `cause`).
 */
export async function writeSubnetEnv(path: string, env: SubnetEnv): Promise<void> {
  const text = formatSubnetEnv(env);
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await mkdir(dir, { recursive: true, mode: 0o755 });
    const fh = await open(tmp, 'w', 0o644);
    try {
      await fh.writeFile(text);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw new VipmeshError('VIPMESH_HOSTGW_SUBNET_ENV', `writing ${path} failed: ${(err as Error).message}`, {
      cause: err,
      details: { path },
    });
  }
}
