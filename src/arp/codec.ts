/**
 * Pure codec for Ethernet II + ARP (RFC 826, RFC 5227 probes and announcements). Decoding never throws:
 * a frame that is not a well-formed Ethernet/IPv4 ARP packet yields a {@link DropReason}.
 */

/** Why a frame was not answered. Returned by the codec and the responder, counted in metrics. */
export type DropReason =
  | 'short-frame'
  | 'wrong-ethertype'
  | 'bad-hardware-type'
  | 'bad-protocol-type'
  | 'bad-opcode'
  | 'not-icmpv6'
  | 'bad-ip-length'
  | 'bad-hop-limit'
  | 'bad-checksum'
  | 'bad-icmp-code'
  | 'not-ndp'
  | 'bad-option'
  | 'bad-target'
  | 'bad-source'
  | 'own-frame'
  | 'not-for-us'
  | 'reply'
  | 'not-held';

const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV6 = 0x86dd;
/** Ethernet minimum frame without FCS; ARP frames are padded to it (802.3 minimum size). */
export const MIN_FRAME = 60;
const BROADCAST_MAC: Buffer = Buffer.alloc(6, 0xff);
const ZERO_MAC: Buffer = Buffer.alloc(6, 0);

/** ARP opcodes (RFC 826). */
export const ArpOp = { request: 1, reply: 2 } as const;

/** A decoded Ethernet/IPv4 ARP frame. Buffers are views into the received frame. */
interface ArpPacket {
  ethDst: Buffer;
  ethSrc: Buffer;
  op: 1 | 2;
  /** Sender hardware / protocol address. */
  sha: Buffer;
  spa: Buffer;
  /** Target hardware / protocol address. */
  tha: Buffer;
  tpa: Buffer;
}

/** True when `a` and `b` hold the same bytes (short buffers; no allocation). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Decode an Ethernet frame carrying ARP; a DropReason when it is not Ethernet/IPv4 ARP. */
export function decodeArp(frame: Buffer): ArpPacket | DropReason {
  if (frame.length < 14 + 28) return 'short-frame';
  if (frame.readUInt16BE(12) !== ETHERTYPE_ARP) return 'wrong-ethertype';
  if (frame.readUInt16BE(14) !== 1 || frame[18] !== 6) return 'bad-hardware-type';
  if (frame.readUInt16BE(16) !== 0x0800 || frame[19] !== 4) return 'bad-protocol-type';
  const op = frame.readUInt16BE(20);
  if (op !== 1 && op !== 2) return 'bad-opcode';
  return {
    ethDst: frame.subarray(0, 6),
    ethSrc: frame.subarray(6, 12),
    op,
    sha: frame.subarray(22, 28),
    spa: frame.subarray(28, 32),
    tha: frame.subarray(32, 38),
    tpa: frame.subarray(38, 42),
  };
}

/** Fields of an ARP frame to encode. */
interface ArpFields {
  ethDst: Uint8Array;
  ethSrc: Uint8Array;
  op: 1 | 2;
  sha: Uint8Array;
  spa: Uint8Array;
  tha: Uint8Array;
  tpa: Uint8Array;
}

/** Encode an Ethernet/IPv4 ARP frame, zero-padded to the 60-byte Ethernet minimum. */
export function encodeArp(f: ArpFields): Buffer {
  const b = Buffer.alloc(MIN_FRAME);
  b.set(f.ethDst, 0);
  b.set(f.ethSrc, 6);
  b.writeUInt16BE(ETHERTYPE_ARP, 12);
  b.writeUInt16BE(1, 14);
  b.writeUInt16BE(0x0800, 16);
  b[18] = 6;
  b[19] = 4;
  b.writeUInt16BE(f.op, 20);
  b.set(f.sha, 22);
  b.set(f.spa, 28);
  b.set(f.tha, 32);
  b.set(f.tpa, 38);
  return b;
}

/**
 * The gratuitous pair for `ip` from `mac`: a broadcast request and a broadcast reply, both with sender and
 * target IP set to the VIP. Some hosts update their cache only from one of the two forms (RFC 5227 3,
 * and the keepalived/MetalLB practice of sending both).
 */
export function gratuitousArp(mac: Uint8Array, ip: Uint8Array): [Buffer, Buffer] {
  const base = { ethDst: BROADCAST_MAC, ethSrc: mac, sha: mac, spa: ip, tpa: ip };
  return [
    encodeArp({ ...base, op: ArpOp.request, tha: ZERO_MAC }),
    encodeArp({ ...base, op: ArpOp.reply, tha: BROADCAST_MAC }),
  ];
}

/** An ARP probe for `ip` (RFC 5227 2.1.1): sender IP 0.0.0.0 so no cache learns anything from it. */
export function arpProbe(mac: Uint8Array, ip: Uint8Array): Buffer {
  return encodeArp({
    ethDst: BROADCAST_MAC,
    ethSrc: mac,
    op: ArpOp.request,
    sha: mac,
    spa: Buffer.alloc(4),
    tha: ZERO_MAC,
    tpa: ip,
  });
}

/**
 * A plain broadcast request "who has `tpa`? tell `spa`", as the kernel sends one. The answer is a unicast
 * reply to `mac`, which the kernel takes into a neighbour entry it already has for `tpa`.
 */
export function arpRequest(mac: Uint8Array, spa: Uint8Array, tpa: Uint8Array): Buffer {
  return encodeArp({
    ethDst: BROADCAST_MAC,
    ethSrc: mac,
    op: ArpOp.request,
    sha: mac,
    spa,
    tha: ZERO_MAC,
    tpa,
  });
}

/** The unicast reply from `mac` saying `req.tpa` is at `mac`. */
export function arpReply(req: ArpPacket, mac: Uint8Array): Buffer {
  return encodeArp({
    ethDst: req.sha,
    ethSrc: mac,
    op: ArpOp.reply,
    sha: mac,
    spa: req.tpa,
    tha: req.sha,
    tpa: req.spa,
  });
}
