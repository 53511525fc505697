/**
 * The node of a backend the Endpoints/EndpointSlice object does not name: the node that has the address
 * itself (a process on a node), or the node whose pod subnet (the host-gw lease, as the Node's
 * `spec.podCIDRs`) holds it. Used by the server's backend index and by `vipmesh describe service`, so both
 * name the same node.
 */

import { type Cidr, contains, networkOf, splitCidr } from '../util/cidr.js';
import { parseIp } from '../util/ip.js';
import type { Node } from './types.js';

/** Where the nodes' addresses and pod subnets are. */
export interface NodePlaces {
  subnets: Array<{ net: Cidr; node: string }>;
  addresses: Map<string, string>;
}

/** The places of `nodes`: their `InternalIP`s and pod subnets. */
export function placesOf(nodes: Iterable<Node>): NodePlaces {
  const out: NodePlaces = { subnets: [], addresses: new Map() };
  for (const n of nodes) {
    const name = n.metadata.name;
    const cidrs = n.spec?.podCIDRs ?? (n.spec?.podCIDR === undefined ? [] : [n.spec.podCIDR]);
    for (const c of cidrs) {
      const { ip, len } = splitCidr(c);
      if (ip !== undefined && len !== undefined) out.subnets.push({ net: networkOf(ip, len), node: name });
    }
    for (const a of n.status?.addresses ?? []) {
      const ip = parseIp(a.address);
      if (a.type === 'InternalIP' && ip !== undefined) out.addresses.set(a.address, name);
    }
  }
  return out;
}

/** The node of `ip` by the places (its own address first, then the pod subnet holding it). */
export function nodeOf(places: NodePlaces, ip: string): string | undefined {
  const own = places.addresses.get(ip);
  if (own !== undefined) return own;
  const addr = parseIp(ip);
  if (addr === undefined) return undefined;
  return places.subnets.find((s) => contains(s.net, addr))?.node;
}

/** `backends` with `nodeName` filled in from the places where the object gave none. */
export function withNodes<B extends { ip: string; nodeName?: string }>(
  backends: readonly B[],
  places: NodePlaces,
): B[] {
  return backends.map((b) => {
    const node = b.nodeName ?? nodeOf(places, b.ip);
    return node === undefined ? b : { ...b, nodeName: node };
  });
}
