import { anySelectorMatches } from './selector.js';
import type { AddressPool, AdvertisementRule } from './types.js';

/** A node as the announcer assignment sees it: its name and labels. */
export interface NodeInfo {
  name: string;
  labels: Readonly<Record<string, string>>;
}

/** The Service an address belongs to, as advertisement serviceSelectors see it. */
export interface AnnouncedService {
  labels: Readonly<Record<string, string>>;
  /** True when it carries an allow-shared-ip key. */
  shared: boolean;
}

/** A node that may announce a pool's addresses, and where. */
interface EligibleNode {
  node: string;
  /** Interfaces to announce on, sorted; undefined means every interface. */
  interfaces: string[] | undefined;
}

/**
 * True when `adv` covers `pool`: it names the pool, or one of its ipAddressPoolSelectors matches the
 * pool's labels, or it names no pool and has no selector (then it covers every pool, as in MetalLB).
 */
function advertisementCovers(adv: AdvertisementRule, pool: AddressPool): boolean {
  if (adv.ipAddressPools.length === 0 && adv.ipAddressPoolSelectors.length === 0) return true;
  return (
    adv.ipAddressPools.includes(pool.name) || anySelectorMatches(adv.ipAddressPoolSelectors, pool.labels)
  );
}

/** The names of the pools `adv` covers, in pool order. */
export function advertisedPools(adv: AdvertisementRule, pools: readonly AddressPool[]): string[] {
  return pools.filter((p) => advertisementCovers(adv, p)).map((p) => p.name);
}

/** The advertisements that cover `pool` (none: the pool's addresses are allocated but not announced). */
export function advertisementsFor(
  pool: AddressPool,
  advs: readonly AdvertisementRule[],
): AdvertisementRule[] {
  return advs.filter((a) => advertisementCovers(a, pool));
}

/** True when `adv` lets `node` announce: no nodeSelectors, or one of them matches the node's labels. */
export function nodeSelected(adv: AdvertisementRule, node: NodeInfo): boolean {
  return adv.nodeSelectors.length === 0 || anySelectorMatches(adv.nodeSelectors, node.labels);
}

/**
 * The advertisements that cover `pool` and select `svc` (no serviceSelectors, or one matching its
 * labels). None for a Service with an allow-shared-ip key when one of them has serviceSelectors: an
 * address shared by several Services cannot follow one Service's labels (MetalLB refuses it too).
 */
export function advertisementsForService(
  pool: AddressPool,
  advs: readonly AdvertisementRule[],
  svc: AnnouncedService,
): AdvertisementRule[] {
  const mine = advertisementsFor(pool, advs).filter(
    (a) => (a.serviceSelectors ?? []).length === 0 || anySelectorMatches(a.serviceSelectors!, svc.labels),
  );
  if (svc.shared && mine.some((a) => (a.serviceSelectors ?? []).length > 0)) return [];
  return mine;
}

/**
 * The nodes that may announce addresses of `pool` (for `svc`, when given: see
 * {@link advertisementsForService}), each with the interfaces to use (the union over the advertisements
 * that select it; any advertisement without `interfaces` means every interface). Nodes come back in the
 * order given; the assignment controller picks among them.
 */
export function announcersFor(
  pool: AddressPool,
  advs: readonly AdvertisementRule[],
  nodes: readonly NodeInfo[],
  svc?: AnnouncedService,
): EligibleNode[] {
  const covering =
    svc === undefined ? advertisementsFor(pool, advs) : advertisementsForService(pool, advs, svc);
  const out: EligibleNode[] = [];
  for (const node of nodes) {
    const selecting = covering.filter((a) => nodeSelected(a, node));
    if (selecting.length === 0) continue;
    const everywhere = selecting.some((a) => a.interfaces.length === 0);
    const interfaces = everywhere ? undefined : [...new Set(selecting.flatMap((a) => a.interfaces))].sort();
    out.push({ node: node.name, interfaces });
  }
  return out;
}
