/**
 * The pod-subnet allocator: pure and synchronous (no I/O, no timers). It holds only its configuration; the
 * current allocations (and the subnets released so far) come in as arguments, so the control plane keeps
 * the state in its datastore and replays it here.
 */
import { VipmeshError } from '../errors.js';
import { type Cidr, formatCidr, overlaps } from '../util/cidr.js';
import { bitsOf, type IpFamily } from '../util/ip.js';
import { parseCidr } from './cidr.js';

/** Options of {@link SubnetAllocator}. */
interface SubnetAllocatorOptions {
  /**
   * The cluster CIDR, or one per family for dual stack (`['10.42.0.0/16', 'fd00:42::/56']`).
   * Default `10.42.0.0/16` (k3s's default).
   */
  clusterCidr?: string | readonly string[];
  /** Prefix length of each node's IPv4 subnet; default 24 (`--node-cidr-mask-size`). */
  nodeCidrMaskSize?: number;
  /** Prefix length of each node's IPv6 subnet; default 64. */
  nodeCidrMaskSizeV6?: number;
}

/** A released subnet, in release order (oldest first). `node` is who held it, when known. */
interface ReleasedSubnet {
  cidr: string;
  node?: string;
}

/** The allocator's input: who holds what now, and what was given back. */
export interface AllocatorState {
  /** Node name -> its pod CIDRs (one per family). */
  allocations: ReadonlyMap<string, readonly string[]> | Readonly<Record<string, readonly string[]>>;
  /** Subnets given back, oldest first; they are handed out again only when nothing unused is left. */
  released?: readonly ReleasedSubnet[];
}

/** The default cluster CIDR (k3s). */
export const DEFAULT_CLUSTER_CIDR = '10.42.0.0/16';

interface Pool {
  net: Cidr;
  size: number;
}

/**
 * Hands each node a stable pod subnet out of the cluster CIDR (one per family in dual stack).
 *
 * - a node that already holds a subnet keeps it;
 * - a node coming back gets the subnet it last released, when nobody took it since;
 * - otherwise the lowest never-used subnet; released subnets are reused last, oldest release first;
 * - nothing left: `VIPMESH_HOSTGW_SUBNETS_EXHAUSTED`.
 *
 * Throws `VIPMESH_HOSTGW_ALLOCATOR_INCONSISTENT` when the given state is impossible (a subnet held twice,
 * outside the cluster CIDR, or of the wrong size).
 */
export class SubnetAllocator {
  readonly #pools: Pool[];

  constructor(opts: SubnetAllocatorOptions = {}) {
    const cidrs = opts.clusterCidr ?? DEFAULT_CLUSTER_CIDR;
    const list = typeof cidrs === 'string' ? cidrs.split(',').map((s) => s.trim()) : [...cidrs];
    const seen = new Set<IpFamily>();
    this.#pools = list.map((text) => {
      const net = parseCidr(text, '--cluster-cidr');
      if (seen.has(net.family)) {
        throw new VipmeshError(
          'VIPMESH_HOSTGW_BAD_CIDR',
          `--cluster-cidr: two IPv${net.family} ranges given`,
        );
      }
      seen.add(net.family);
      const size = net.family === 4 ? (opts.nodeCidrMaskSize ?? 24) : (opts.nodeCidrMaskSizeV6 ?? 64);
      if (!Number.isInteger(size) || size < net.len || size > bitsOf(net.family)) {
        throw new VipmeshError(
          'VIPMESH_HOSTGW_BAD_CIDR',
          `--node-cidr-mask-size: /${size} does not fit in ${formatCidr(net)}`,
          { details: { value: size } },
        );
      }
      return { net, size };
    });
    if (this.#pools.length === 0 || this.#pools.length > 2) {
      throw new VipmeshError('VIPMESH_HOSTGW_BAD_CIDR', '--cluster-cidr: give one range, or one per family');
    }
  }

  /** The cluster CIDRs, canonical, in the order given. */
  get clusterCidrs(): string[] {
    return this.#pools.map((p) => formatCidr(p.net));
  }

  /** How many node subnets each family holds. */
  capacity(family: IpFamily): bigint {
    const pool = this.#pools.find((p) => p.net.family === family);
    return pool === undefined ? 0n : 1n << BigInt(pool.size - pool.net.len);
  }

  /** The pod CIDRs for `node` (one per configured family, in the order of `clusterCidr`). */
  allocate(node: string, state: AllocatorState): string[] {
    const allocations = toMap(state.allocations);
    const used = this.#check(allocations);
    const current = allocations.get(node);
    if (current !== undefined && current.length > 0) {
      const have = current.map((c) => parseCidr(c, `allocation of ${node}`));
      if (this.#pools.every((p) => have.some((c) => c.family === p.net.family))) {
        return this.#pools.map((p) => formatCidr(have.find((c) => c.family === p.net.family)!));
      }
    }
    return this.#pools.map((pool) => {
      const mine = current
        ?.map((c) => parseCidr(c, `allocation of ${node}`))
        .find((c) => c.family === pool.net.family);
      if (mine !== undefined) return formatCidr(mine);
      return this.#pick(pool, node, used, state.released ?? []);
    });
  }

  /** The state after `node` gives its subnets back (appended to `released`). Pure: returns a new state. */
  release(
    node: string,
    state: AllocatorState,
  ): { allocations: Map<string, string[]>; released: ReleasedSubnet[] } {
    const allocations = new Map([...toMap(state.allocations)].map(([k, v]) => [k, [...v]]));
    const released = [...(state.released ?? [])];
    for (const cidr of allocations.get(node) ?? []) released.push({ cidr, node });
    allocations.delete(node);
    return { allocations, released };
  }

  #pick(pool: Pool, node: string, used: Set<string>, released: readonly ReleasedSubnet[]): string {
    const releasedSet = new Set<string>();
    for (const r of released) {
      const c = tryCidr(r.cidr);
      if (c !== undefined && c.family === pool.net.family && c.len === pool.size)
        releasedSet.add(formatCidr(c));
    }
    // A node that comes back gets its old subnet if it is still free (its pods' addresses stay valid).
    for (let i = released.length - 1; i >= 0; i--) {
      const r = released[i]!;
      const c = tryCidr(r.cidr);
      if (r.node !== node || c === undefined || c.family !== pool.net.family || c.len !== pool.size) continue;
      if (!used.has(formatCidr(c)) && overlaps(c, pool.net) && c.len >= pool.net.len) return formatCidr(c);
    }
    // The lowest never-used subnet: at most |used| + |released| candidates are skipped.
    const step = 1n << BigInt(bitsOf(pool.net.family) - pool.size);
    const count = 1n << BigInt(pool.size - pool.net.len);
    for (let i = 0n; i < count; i++) {
      const text = formatCidr({ family: pool.net.family, value: pool.net.value + i * step, len: pool.size });
      if (!used.has(text) && !releasedSet.has(text)) return text;
    }
    // Then released ones, oldest release first.
    for (const r of released) {
      const c = tryCidr(r.cidr);
      if (c === undefined || c.family !== pool.net.family || c.len !== pool.size) continue;
      const text = formatCidr(c);
      if (!used.has(text) && overlaps(c, pool.net)) return text;
    }
    throw new VipmeshError(
      'VIPMESH_HOSTGW_SUBNETS_EXHAUSTED',
      `no free /${pool.size} left in ${formatCidr(pool.net)} for node ${node} (${count} subnets, all held); ` +
        'widen --cluster-cidr or raise --node-cidr-mask-size',
      { details: { node, clusterCidr: formatCidr(pool.net) } },
    );
  }

  #check(allocations: Map<string, readonly string[]>): Set<string> {
    const used = new Map<string, string>();
    for (const [node, cidrs] of allocations) {
      for (const text of cidrs) {
        const c = tryCidr(text);
        const pool = c === undefined ? undefined : this.#pools.find((p) => p.net.family === c.family);
        if (c === undefined || pool === undefined || c.len !== pool.size || !overlaps(c, pool.net)) {
          throw new VipmeshError(
            'VIPMESH_HOSTGW_ALLOCATOR_INCONSISTENT',
            `node ${node} holds ${text}, which is not a /${pool?.size ?? '?'} of ${this.clusterCidrs.join(',')}`,
            { details: { node, cidr: text } },
          );
        }
        const key = formatCidr(c);
        const other = used.get(key);
        if (other !== undefined) {
          throw new VipmeshError(
            'VIPMESH_HOSTGW_ALLOCATOR_INCONSISTENT',
            `${key} is held by both ${other} and ${node}`,
            { details: { node, other, cidr: key } },
          );
        }
        used.set(key, node);
      }
    }
    return new Set(used.keys());
  }
}

function toMap(
  a: ReadonlyMap<string, readonly string[]> | Readonly<Record<string, readonly string[]>>,
): Map<string, readonly string[]> {
  return a instanceof Map ? new Map(a) : new Map(Object.entries(a));
}

function tryCidr(text: string): Cidr | undefined {
  try {
    return parseCidr(text, 'subnet');
  } catch {
    return undefined;
  }
}
