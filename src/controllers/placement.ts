import { createHash } from 'node:crypto';

/** One VIP to place: the nodes its L2Advertisements allow, and who holds it now (if anyone). */
export interface VipPlacement {
  vip: string;
  /** Nodes allowed by the VIP's L2Advertisements (node selectors already applied). */
  eligible: readonly string[];
  /** The node the datastore says holds it now. */
  current?: string | undefined;
  /**
   * With `externalTrafficPolicy: Local`: the nodes running one of the Service's ready endpoints. Only they
   * may hold the VIP (none of them Ready: unplaceable, as MetalLB then announces from nowhere).
   */
  local?: readonly string[] | undefined;
  /** Nodes whose holder report says they do not serve the VIP's Service: passed over while another can. */
  avoid?: readonly string[] | undefined;
}

/** Why a VIP ended up where it is: reported in events and `vipmesh describe`. */
export type PlacementReason = 'kept' | 'placed' | 'moved' | 'unplaceable';

/** The result for one VIP. */
interface PlacementResult {
  vip: string;
  node: string | undefined;
  reason: PlacementReason;
}

/**
 * The rendezvous (highest-random-weight) score of `node` for `vip`: every node computes the same order
 * without coordination, and removing a node only moves the VIPs it held (each to its own next-best node,
 * so a dead node's VIPs spread over the survivors instead of piling onto one).
 */
function rendezvousScore(vip: string, node: string): bigint {
  const digest = createHash('sha256').update(vip).update('\0').update(node).digest();
  return digest.readBigUInt64BE(0);
}

/** The eligible node with the highest score for `vip` (ties broken by name), or undefined. */
export function rendezvousPick(vip: string, nodes: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestScore = -1n;
  for (const node of nodes) {
    const score = rendezvousScore(vip, node);
    if (score > bestScore || (score === bestScore && best !== undefined && node < best)) {
      best = node;
      bestScore = score;
    }
  }
  return best;
}

/**
 * Annotation `vipmesh drain` sets on a Node (with `spec.unschedulable`): its VIPs go to other nodes, each
 * kept only while no other node may hold it; `vipmesh uncordon` removes it.
 */
export const DRAIN_ANNOTATION = 'vipmesh.io/drain';

/**
 * Place every VIP on one Ready node. `cordoned` nodes (`spec.unschedulable`, `vipmesh cordon`) keep the
 * VIPs they hold and take no new one. Sticky: a VIP stays on its current holder while that node is Ready
 * and still eligible, so a node joining (or the master restarting) moves nothing that is fine where it is;
 * otherwise it goes to the rendezvous pick among its Ready eligible nodes. `local` narrows the candidates
 * to the nodes with a local endpoint, `avoid` passes over nodes that said they do not serve the Service
 * (unless no other candidate is left). Pure and deterministic.
 */
export function placeVips(
  vips: readonly VipPlacement[],
  ready: ReadonlySet<string>,
  cordoned: ReadonlySet<string> = new Set(),
): PlacementResult[] {
  return vips.map(({ vip, eligible, current, local, avoid }) => {
    let candidates = eligible.filter((n) => ready.has(n) && (local === undefined || local.includes(n)));
    if (avoid !== undefined && avoid.length > 0) {
      const serving = candidates.filter((n) => !avoid.includes(n));
      if (serving.length > 0) candidates = serving;
    }
    if (current !== undefined && candidates.includes(current)) return { vip, node: current, reason: 'kept' };
    // A cordoned node keeps what it holds (above) but is given nothing new.
    const node = rendezvousPick(
      vip,
      candidates.filter((n) => !cordoned.has(n)),
    );
    if (node === undefined) return { vip, node: undefined, reason: 'unplaceable' };
    return { vip, node, reason: current === undefined ? 'placed' : 'moved' };
  });
}
