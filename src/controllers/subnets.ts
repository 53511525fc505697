import type { Kv } from '../api/kv.js';
import type { ResourceStore } from '../api/store.js';
import type { Node } from '../api/types.js';
import {
  decodeLease,
  encodeLeaseValue,
  LEASE_PREFIX,
  type Lease,
  leaseKey,
  SubnetAllocator,
} from '../flannel-hostgw/index.js';
import type { Logger } from '../log.js';
import { type Informer, Reconciler } from './informer.js';

/** Options of {@link SubnetController}. */
interface SubnetControllerOptions {
  store: ResourceStore;
  kv: Kv;
  nodes: Informer<'nodes'>;
  /** `--cluster-cidr` (one per family). */
  clusterCidr: string | readonly string[];
  logger: Logger;
}

/** A node's pod CIDRs from its spec. */
export function podCIDRsOf(n: Node): string[] {
  const s = n.spec ?? {};
  if (Array.isArray(s.podCIDRs) && s.podCIDRs.length > 0) return [...s.podCIDRs];
  return typeof s.podCIDR === 'string' ? [s.podCIDR] : [];
}

/** A node's lease (its pod CIDRs via its InternalIPs), or undefined when it has no CIDR or no address. */
export function leaseOf(n: Node): Lease | undefined {
  const podCIDRs = podCIDRsOf(n);
  const ips = (n.status?.addresses ?? []).filter((a) => a.type === 'InternalIP').map((a) => a.address);
  const nodeIPs = [ips.find((ip) => ip.includes('.')), ips.find((ip) => ip.includes(':'))].filter(
    (x): x is string => x !== undefined,
  );
  if (podCIDRs.length === 0 || nodeIPs.length === 0) return undefined;
  return { node: n.metadata.name, podCIDRs, nodeIPs };
}

/**
 * Subnets: gives every node a pod subnet out of `--cluster-cidr` (SubnetAllocator: stable, lowest free
 * first), writes it to the Node's `spec.podCIDR(s)`, and keeps one flannel-layout lease per node under
 * `/coreos.com/network/subnets/` (the agents' host-gw routes come from these). Leases of deleted nodes are
 * removed; leases vipmesh did not write (no node of that name) are left alone.
 */
export class SubnetController {
  readonly #o: SubnetControllerOptions;
  readonly #alloc: SubnetAllocator;
  readonly #reconciler: Reconciler;

  constructor(o: SubnetControllerOptions) {
    this.#o = o;
    this.#alloc = new SubnetAllocator({ clusterCidr: o.clusterCidr });
    this.#reconciler = new Reconciler(() => this.#reconcile(), { logger: o.logger });
  }

  /** Follow the Nodes and run a first pass. */
  start(): void {
    this.#reconciler.follow(this.#o.nodes);
    this.#reconciler.kick();
  }

  /** Resolves when no pass is running or queued (tests). */
  idle(): Promise<void> {
    return this.#reconciler.idle();
  }

  /** Stop: no more passes; waits for the one in progress. */
  close(): Promise<void> {
    return this.#reconciler.close();
  }

  async #reconcile(): Promise<void> {
    const nodes = [...this.#o.nodes.items.values()].sort((a, b) => {
      const ta = a.metadata.creationTimestamp ?? '';
      const tb = b.metadata.creationTimestamp ?? '';
      return ta !== tb ? (ta < tb ? -1 : 1) : a.metadata.name < b.metadata.name ? -1 : 1;
    });
    const allocations = new Map<string, string[]>();
    for (const n of nodes) {
      const c = podCIDRsOf(n);
      if (c.length > 0) allocations.set(n.metadata.name, c);
    }
    for (const n of nodes) {
      if (allocations.has(n.metadata.name)) continue;
      let cidrs: string[];
      try {
        cidrs = this.#alloc.allocate(n.metadata.name, { allocations });
      } catch (err) {
        this.#o.logger.error({ node: n.metadata.name, err }, 'cannot give the node a pod subnet');
        continue;
      }
      allocations.set(n.metadata.name, cidrs);
      const spec = { ...(n.spec ?? {}), podCIDR: cidrs[0]!, podCIDRs: cidrs };
      await this.#o.store.update('nodes', {
        ...n,
        spec,
        metadata: { ...n.metadata, resourceVersion: undefined },
      });
      this.#o.logger.info({ node: n.metadata.name, podCIDRs: cidrs }, 'node pod subnet');
    }
    const want = new Map<string, string>();
    const names = new Set(nodes.map((n) => n.metadata.name));
    for (const n of nodes) {
      const lease = leaseOf(n);
      if (lease !== undefined) want.set(leaseKey(lease.podCIDRs), encodeLeaseValue(lease));
    }
    const { pairs } = await this.#o.kv.list(LEASE_PREFIX);
    const have = new Map(pairs.map((p) => [p.key, p]));
    for (const [key, value] of want) {
      const cur = have.get(key);
      if (cur?.value.toString() === value) continue;
      await this.#o.kv.put(key, Buffer.from(value), cur?.modRevision ?? 0);
    }
    for (const p of pairs) {
      if (want.has(p.key)) continue;
      let owner: string;
      try {
        owner = decodeLease(p.key, p.value).node;
      } catch {
        continue;
      }
      // A lease of a node we know (its subnet changed) or of a deleted node we made it for.
      if (names.has(owner) || isOurs(p.value)) await this.#o.kv.delete(p.key, p.modRevision);
    }
  }
}

function isOurs(value: Buffer): boolean {
  try {
    return typeof (JSON.parse(value.toString()) as { VipmeshNode?: unknown }).VipmeshNode === 'string';
  } catch {
    return false;
  }
}
