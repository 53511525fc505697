/**
 * Which interfaces the announcer serves, and the packet sockets of each ("ports").
 */
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

/** The two sockets of one port. */
export interface PortSockets {
  arp: FrameSocket;
  ndp: FrameSocket;
}

/** Opens the sockets of a port (AF_PACKET in production, in-memory in tests). */
export type OpenPort = (port: PortInfo, onArp: FrameHandler, onNdp: FrameHandler) => PortSockets;

/** The production {@link OpenPort}: an ARP socket and an IPv6 socket filtered down to NS/NA. */
export const openPacketPort: OpenPort = (port, onArp, onNdp) => {
  const arp = new PacketSocket(port.name, 'arp', onArp);
  try {
    return { arp, ndp: new PacketSocket(port.name, 'ndp', onNdp, encodeFilter(NDP_FILTER)) };
  } catch (err) {
    arp.close();
    throw err;
  }
};
