/**
 * Which interfaces the announcer serves, and the packet sockets of each ("ports").
 */
import { createSocket, type Socket } from 'node:dgram';
import { errnoOf } from '../errors.js';
import { encodeFilter, NDP_FILTER } from './bpf.js';
import type { LinkInfo } from './netlink.js';
import { type FrameHandler, type FrameSocket, PacketSocket } from './packet-socket.js';
import type { PortInfo } from './responder.js';

/**
 * The default eligibility rule: up, broadcast-capable, ARP enabled, not loopback, not enslaved to a bridge
 * or bond (the master announces for it), with an Ethernet MAC. With an explicit list, the named
 * interfaces are used whenever they are up, whatever their other flags.
 */
export function eligible(link: LinkInfo, explicit?: readonly string[]): boolean {
  if (explicit !== undefined && explicit.length > 0) return explicit.includes(link.name) && link.up;
  return link.up && link.broadcast && !link.noarp && !link.loopback && !link.member && link.mac.length === 6;
}

/** IPv6 multicast group membership of one interface (reference-counted per group). */
interface GroupJoiner {
  join(group: string): void;
  leave(group: string): void;
  close(): void;
}

/** The sockets of one port. */
export interface PortSockets {
  arp: FrameSocket;
  ndp: FrameSocket;
  /** Kernel-level joins of solicited-node groups, so MLD-snooping switches forward NSs to us. */
  mld?: GroupJoiner;
}

/**
 * Joins IPv6 groups on one interface through a UDP socket (IPV6_JOIN_GROUP): the kernel then sends the MLD
 * reports that make snooping switches forward the group to this port. The packet socket's own membership
 * only opens the NIC's filter; it sends no report.
 */
class MldGroups implements GroupJoiner {
  readonly #sock: Socket;
  readonly #ifname: string;
  readonly #count = new Map<string, number>();

  constructor(ifname: string) {
    this.#ifname = ifname;
    this.#sock = createSocket({ type: 'udp6' });
    this.#sock.unref();
  }

  join(group: string): void {
    const n = this.#count.get(group) ?? 0;
    this.#count.set(group, n + 1);
    if (n > 0) return;
    try {
      this.#sock.addMembership(group, `::%${this.#ifname}`);
    } catch (err) {
      if (errnoOf(err) !== 'EADDRINUSE') throw err;
    }
  }

  leave(group: string): void {
    const n = this.#count.get(group) ?? 0;
    if (n > 1) {
      this.#count.set(group, n - 1);
      return;
    }
    this.#count.delete(group);
    try {
      this.#sock.dropMembership(group, `::%${this.#ifname}`);
    } catch {
      // Not a member (the join had failed, or the link was re-created): already done.
    }
  }

  close(): void {
    this.#sock.close();
  }
}

/** Opens the sockets of a port (AF_PACKET in production, in-memory in tests). */
export type OpenPort = (port: PortInfo, onArp: FrameHandler, onNdp: FrameHandler) => PortSockets;

/** The production {@link OpenPort}: an ARP socket and an IPv6 socket filtered down to NS/NA. */
export const openPacketPort: OpenPort = (port, onArp, onNdp) => {
  const arp = new PacketSocket(port.name, 'arp', onArp);
  try {
    const ndp = new PacketSocket(port.name, 'ndp', onNdp, encodeFilter(NDP_FILTER));
    return { arp, ndp, mld: new MldGroups(port.name) };
  } catch (err) {
    arp.close();
    throw err;
  }
};
