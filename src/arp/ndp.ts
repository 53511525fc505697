/**
 * Pure codec for the NDP messages the announcer needs (RFC 4861): Neighbor Solicitation and Neighbor
 * Advertisement over IPv6 over Ethernet, with link-layer address options and the ICMPv6 checksum.
 * Decoding never throws; it applies the validity checks of RFC 4861 7.1 and returns a DropReason.
 */
import { multicastMac, solicitedNode } from './addr.js';
import { type DropReason, ETHERTYPE_IPV6 } from './codec.js';

const ICMPV6 = 58;
const NDP_NS = 135;
export const NDP_NA = 136;
const OPT_SLLA = 1;
const OPT_TLLA = 2;
/** ff02::1, all nodes. */
const ALL_NODES: Buffer = Buffer.from('ff020000000000000000000000000001', 'hex');
const UNSPECIFIED: Buffer = Buffer.alloc(16);

/** NA flags (RFC 4861 4.4). */
interface NaFlags {
  router: boolean;
  solicited: boolean;
  override: boolean;
}

/** A decoded NS or NA. Buffers are views into the received frame. */
interface NdpPacket {
  type: 135 | 136;
  ethDst: Buffer;
  ethSrc: Buffer;
  src: Buffer;
  dst: Buffer;
  target: Buffer;
  /** The source (NS) or target (NA) link-layer address option, when present. */
  lladdr?: Buffer;
  /** NA only. */
  flags?: NaFlags;
}

/** The ICMPv6 checksum over the pseudo-header (RFC 8200 8.1) and `icmp` (its checksum field zeroed or not). */
export function icmp6Checksum(src: Uint8Array, dst: Uint8Array, icmp: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < 16; i += 2) sum += ((src[i]! << 8) | src[i + 1]!) + ((dst[i]! << 8) | dst[i + 1]!);
  sum += (icmp.length >>> 16) + (icmp.length & 0xffff) + ICMPV6;
  for (let i = 0; i + 1 < icmp.length; i += 2) sum += (icmp[i]! << 8) | icmp[i + 1]!;
  if (icmp.length % 2 === 1) sum += icmp[icmp.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function isMulticast(ip: Uint8Array): boolean {
  return ip[0] === 0xff;
}

function isUnspecified(ip: Uint8Array): boolean {
  for (let i = 0; i < 16; i++) if (ip[i] !== 0) return false;
  return true;
}

/** Decode an Ethernet frame carrying an NS or NA; a DropReason for anything else or anything invalid. */
export function decodeNdp(frame: Buffer): NdpPacket | DropReason {
  if (frame.length < 14 + 40 + 24) return 'short-frame';
  if (frame.readUInt16BE(12) !== ETHERTYPE_IPV6) return 'wrong-ethertype';
  if (frame[14]! >> 4 !== 6 || frame[20] !== ICMPV6) return 'not-icmpv6';
  const payloadLen = frame.readUInt16BE(18);
  if (payloadLen < 24 || 54 + payloadLen > frame.length) return 'bad-ip-length';
  const icmp = frame.subarray(54, 54 + payloadLen);
  const type = icmp[0]!;
  if (type !== NDP_NS && type !== NDP_NA) return 'not-ndp';
  if (frame[21] !== 255) return 'bad-hop-limit';
  if (icmp[1] !== 0) return 'bad-icmp-code';
  const src = frame.subarray(22, 38);
  const dst = frame.subarray(38, 54);
  if (icmp6Checksum(src, dst, icmp) !== 0) return 'bad-checksum';
  const target = icmp.subarray(8, 24);
  if (isMulticast(target)) return 'bad-target';
  let lladdr: Buffer | undefined;
  for (let off = 24; off < icmp.length; ) {
    if (off + 2 > icmp.length) return 'bad-option';
    const len = icmp[off + 1]! * 8;
    if (len === 0 || off + len > icmp.length) return 'bad-option';
    const optType = icmp[off]!;
    if (len >= 8 && optType === (type === NDP_NS ? OPT_SLLA : OPT_TLLA))
      lladdr = icmp.subarray(off + 2, off + 8);
    off += len;
  }
  const pkt: NdpPacket = {
    type,
    ethDst: frame.subarray(0, 6),
    ethSrc: frame.subarray(6, 12),
    src,
    dst,
    target,
  };
  if (lladdr !== undefined) pkt.lladdr = lladdr;
  if (type === NDP_NS) {
    // A DAD probe (source ::) must go to a solicited-node group and carry no source link-layer option.
    if (isUnspecified(src) && (lladdr !== undefined || dst[11] !== 1 || dst[12] !== 0xff))
      return 'bad-source';
  } else {
    const f = icmp[4]!;
    pkt.flags = { router: (f & 0x80) !== 0, solicited: (f & 0x40) !== 0, override: (f & 0x20) !== 0 };
    if (pkt.flags.solicited && isMulticast(dst)) return 'bad-target';
  }
  return pkt;
}

/** Fields of an NS or NA to encode. */
interface NdpFields {
  type: 135 | 136;
  ethDst: Uint8Array;
  ethSrc: Uint8Array;
  src: Uint8Array;
  dst: Uint8Array;
  target: Uint8Array;
  /** Link-layer option to include (SLLA for NS, TLLA for NA); none when undefined. */
  lladdr?: Uint8Array;
  flags?: Partial<NaFlags>;
}

/** Encode an NS or NA frame (hop limit 255, checksum filled in). */
export function encodeNdp(f: NdpFields): Buffer {
  const icmpLen = 24 + (f.lladdr === undefined ? 0 : 8);
  const b = Buffer.alloc(54 + icmpLen);
  b.set(f.ethDst, 0);
  b.set(f.ethSrc, 6);
  b.writeUInt16BE(ETHERTYPE_IPV6, 12);
  b[14] = 0x60;
  b.writeUInt16BE(icmpLen, 18);
  b[20] = ICMPV6;
  b[21] = 255;
  b.set(f.src, 22);
  b.set(f.dst, 38);
  const icmp = b.subarray(54);
  icmp[0] = f.type;
  if (f.type === NDP_NA && f.flags !== undefined) {
    icmp[4] = (f.flags.router ? 0x80 : 0) | (f.flags.solicited ? 0x40 : 0) | (f.flags.override ? 0x20 : 0);
  }
  icmp.set(f.target, 8);
  if (f.lladdr !== undefined) {
    icmp[24] = f.type === NDP_NS ? OPT_SLLA : OPT_TLLA;
    icmp[25] = 1;
    icmp.set(f.lladdr, 26);
  }
  icmp.writeUInt16BE(icmp6Checksum(f.src, f.dst, icmp), 2);
  return b;
}

/**
 * The unsolicited NA (override set, to ff02::1) that tells every neighbour `ip` is now at `mac`. Like the
 * kernel's own, it comes from the address it advertises.
 */
export function unsolicitedNa(mac: Uint8Array, ip: Uint8Array): Buffer {
  return encodeNdp({
    type: NDP_NA,
    ethDst: multicastMac(ALL_NODES),
    ethSrc: mac,
    src: ip,
    dst: ALL_NODES,
    target: ip,
    lladdr: mac,
    flags: { override: true },
  });
}

/** A DAD-style NS for `ip` (source ::, to its solicited-node group): "does anyone hold this?" */
export function ndpProbe(mac: Uint8Array, ip: Uint8Array): Buffer {
  const dst = solicitedNode(ip);
  return encodeNdp({
    type: NDP_NS,
    ethDst: multicastMac(dst),
    ethSrc: mac,
    src: UNSPECIFIED,
    dst,
    target: ip,
  });
}

/**
 * A Neighbor Solicitation for `target` from `src` (an address of ours on that link) with our link-layer
 * address, to the target's solicited-node group: what the kernel sends to resolve a neighbour. The solicited
 * NA that answers it is taken into the kernel's entry for `target`.
 */
export function neighbourSolicitation(mac: Uint8Array, src: Uint8Array, target: Uint8Array): Buffer {
  const dst = solicitedNode(target);
  return encodeNdp({ type: NDP_NS, ethDst: multicastMac(dst), ethSrc: mac, src, dst, target, lladdr: mac });
}

/**
 * The solicited NA answering `ns` from `mac`, sent from the target address itself (as the kernel does, and
 * as tools like ndisc6 check). A DAD probe (source ::) is answered to ff02::1 without the solicited flag,
 * as RFC 4861 7.2.4 requires; anything else unicast to the asker.
 */
export function naReply(ns: NdpPacket, mac: Uint8Array): Buffer {
  const dad = isUnspecified(ns.src);
  return encodeNdp({
    type: NDP_NA,
    ethDst: dad ? multicastMac(ALL_NODES) : (ns.lladdr ?? ns.ethSrc),
    ethSrc: mac,
    src: ns.target,
    dst: dad ? ALL_NODES : ns.src,
    target: ns.target,
    lladdr: mac,
    flags: { solicited: !dad, override: true },
  });
}
