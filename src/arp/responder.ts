/**
 * The responder for one interface: answers ARP requests and Neighbor Solicitations for the VIPs this node
 * holds there, and reports every address another station claims. It holds no VIP state of its own: it asks
 * {@link ResponderHooks.shouldAnnounce}. The hot path returns a reason and never throws.
 */
import { formatIpBytes } from '../util/ip.js';
import { ArpOp, arpReply, type DropReason, decodeArp, sameBytes } from './codec.js';
import { decodeNdp, NDP_NA, naReply } from './ndp.js';
import { PacketType } from './packet-socket.js';

/** The interface a responder serves; its fields change in place when the link changes (new MAC). */
export interface PortInfo {
  readonly name: string;
  mac: Buffer;
}

/** Decisions and observations, provided by the owner of the VIP state. */
interface ResponderHooks {
  /** True when this node announces `ip` (canonical text) on interface `ifname`. */
  shouldAnnounce(ip: string, ifname: string): boolean;
  /** Another station (`mac`) claimed `ip`: an ARP reply, a gratuitous ARP, any ARP sender, or an NA. */
  claimed(ip: string, mac: Buffer, ifname: string): void;
  /** True when `mac` is one of this node's own interface MACs (our frames seen on another port). */
  isOwnMac(mac: Buffer): boolean;
}

/** What {@link Responder.handleArp} / {@link Responder.handleNdp} did with a frame. */
export type HandleResult = DropReason | 'answered' | 'gratuitous';

/** Results that mean "a request reached us" (the requests-received metric). */
export const REQUEST_RESULTS: ReadonlySet<HandleResult> = new Set(['answered', 'not-held', 'not-for-us']);

/** Sends frames out of the interface (a FrameSocket in production, an array in tests). */
interface FrameSink {
  send(frame: Buffer): void;
}

const ZERO_V4 = Buffer.alloc(4);

/** Answers ARP and NS frames received on one port. */
export class Responder {
  readonly #port: PortInfo;
  readonly #arpOut: FrameSink;
  readonly #ndpOut: FrameSink;
  readonly #hooks: ResponderHooks;

  constructor(port: PortInfo, arpOut: FrameSink, ndpOut: FrameSink, hooks: ResponderHooks) {
    this.#port = port;
    this.#arpOut = arpOut;
    this.#ndpOut = ndpOut;
    this.#hooks = hooks;
  }

  #own(mac: Buffer): boolean {
    return sameBytes(mac, this.#port.mac) || this.#hooks.isOwnMac(mac);
  }

  /** Handle one frame from the ARP socket. */
  handleArp(frame: Buffer, pkttype: number = PacketType.broadcast): HandleResult {
    const pkt = decodeArp(frame);
    if (typeof pkt === 'string') return pkt;
    if (pkttype === PacketType.outgoing || this.#own(pkt.ethSrc) || this.#own(pkt.sha)) return 'own-frame';
    const name = this.#port.name;
    if (!sameBytes(pkt.spa, ZERO_V4)) this.#hooks.claimed(formatIpBytes(pkt.spa), pkt.sha, name);
    if (pkt.op === ArpOp.reply) return 'reply';
    if (pkttype === PacketType.otherHost) return 'not-for-us';
    if (sameBytes(pkt.spa, pkt.tpa)) return 'gratuitous';
    if (!this.#hooks.shouldAnnounce(formatIpBytes(pkt.tpa), name)) return 'not-held';
    this.#arpOut.send(arpReply(pkt, this.#port.mac));
    return 'answered';
  }

  /** Handle one frame from the NDP socket. */
  handleNdp(frame: Buffer, pkttype: number = PacketType.multicast): HandleResult {
    const pkt = decodeNdp(frame);
    if (typeof pkt === 'string') return pkt;
    if (pkttype === PacketType.outgoing || this.#own(pkt.ethSrc)) return 'own-frame';
    const name = this.#port.name;
    const target = formatIpBytes(pkt.target);
    if (pkt.type === NDP_NA) {
      this.#hooks.claimed(target, pkt.lladdr ?? pkt.ethSrc, name);
      return 'reply';
    }
    if (pkttype === PacketType.otherHost) return 'not-for-us';
    if (!this.#hooks.shouldAnnounce(target, name)) return 'not-held';
    this.#ndpOut.send(naReply(pkt, this.#port.mac));
    return 'answered';
  }
}
