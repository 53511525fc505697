/**
 * A small codec for the rtnetlink route messages vipmesh sends and reads on its hot path (RTM_NEWROUTE /
 * RTM_DELROUTE requests, their acks, route notifications). The `netlink` package's request API sends one
 * message per sendmsg and waits for its ack; this codec lets a pass pack many requests into one datagram
 * (see requester.ts) and decodes notifications without the package's generic parser. Pure: no I/O.
 *
 * Layouts (include/uapi/linux/netlink.h, rtnetlink.h): nlmsghdr {u32 len, u16 type, u16 flags, u32 seq,
 * u32 pid}; rtmsg {u8 family, dst_len, src_len, tos, table, protocol, scope, type; u32 flags}; rtattr
 * {u16 len, u16 type} + data padded to 4; nlmsgerr {s32 error, nlmsghdr of the request}. Host byte order.
 */
import { endianness } from 'node:os';

/** nlmsg types and flags used here. */
export const NLMSG_ERROR = 2;
export const RTM_NEWROUTE = 24;
export const RTM_DELROUTE = 25;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_CREATE = 0x400;

const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_PRIORITY = 6;
const RTA_TABLE = 15;

const LE = endianness() === 'LE';

/** A route message's fields (addresses as network-order bytes). */
export interface RouteMsg {
  family: number;
  dstLen: number;
  table: number;
  protocol: number;
  scope: number;
  /** rtm_type: 1 = unicast. */
  type: number;
  dst?: Uint8Array;
  gateway?: Uint8Array;
  oif?: number;
  priority?: number;
}

/** One netlink message: header fields and payload. */
interface NlMsg {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  payload: Buffer;
}

const align4 = (n: number) => (n + 3) & ~3;

function u32(buf: Buffer, value: number, at: number): void {
  if (LE) buf.writeUInt32LE(value >>> 0, at);
  else buf.writeUInt32BE(value >>> 0, at);
}
function u16(buf: Buffer, value: number, at: number): void {
  if (LE) buf.writeUInt16LE(value, at);
  else buf.writeUInt16BE(value, at);
}
const r32 = (buf: Buffer, at: number) => (LE ? buf.readUInt32LE(at) : buf.readUInt32BE(at));
const r16 = (buf: Buffer, at: number) => (LE ? buf.readUInt16LE(at) : buf.readUInt16BE(at));

/** Encode one route request (nlmsghdr + rtmsg + attributes). */
export function encodeRouteMessage(nlType: number, flags: number, seq: number, m: RouteMsg): Buffer {
  const attrs: Array<[number, Uint8Array | number]> = [];
  if (m.dst !== undefined) attrs.push([RTA_DST, m.dst]);
  if (m.gateway !== undefined) attrs.push([RTA_GATEWAY, m.gateway]);
  if (m.oif !== undefined) attrs.push([RTA_OIF, m.oif]);
  if (m.priority !== undefined) attrs.push([RTA_PRIORITY, m.priority]);
  // Tables above 255 only fit in RTA_TABLE; always sending it is harmless.
  attrs.push([RTA_TABLE, m.table]);
  let len = 16 + 12;
  for (const [, v] of attrs) len += align4(4 + (typeof v === 'number' ? 4 : v.length));
  const buf = Buffer.alloc(len);
  u32(buf, len, 0);
  u16(buf, nlType, 4);
  u16(buf, flags, 6);
  u32(buf, seq, 8);
  u32(buf, 0, 12);
  buf[16] = m.family;
  buf[17] = m.dstLen;
  buf[20] = m.table < 256 ? m.table : 252; // RT_TABLE_COMPAT when only RTA_TABLE can hold it
  buf[21] = m.protocol;
  buf[22] = m.scope;
  buf[23] = m.type;
  let at = 28;
  for (const [type, v] of attrs) {
    const dataLen = typeof v === 'number' ? 4 : v.length;
    u16(buf, 4 + dataLen, at);
    u16(buf, type, at + 2);
    if (typeof v === 'number') u32(buf, v, at + 4);
    else buf.set(v, at + 4);
    at += align4(4 + dataLen);
  }
  return buf;
}

/** Rewrite the flags of an encoded message in place (nlmsg_flags: u16 at offset 6). */
export function setMessageFlags(msg: Buffer, flags: number): void {
  u16(msg, flags, 6);
}

/** Split a datagram into its netlink messages; stops at the first malformed header (never throws). */
export function decodeMessages(buf: Buffer): NlMsg[] {
  const out: NlMsg[] = [];
  let at = 0;
  while (at + 16 <= buf.length) {
    const len = r32(buf, at);
    if (len < 16 || at + len > buf.length) break;
    out.push({
      type: r16(buf, at + 4),
      flags: r16(buf, at + 6),
      seq: r32(buf, at + 8),
      pid: r32(buf, at + 12),
      payload: buf.subarray(at + 16, at + len),
    });
    at += align4(len);
  }
  return out;
}

/** The errno of an NLMSG_ERROR payload (0 = ack), as a positive number; undefined when too short. */
export function decodeError(payload: Buffer): { errno: number; seq: number | undefined } | undefined {
  if (payload.length < 4) return undefined;
  const err = LE ? payload.readInt32LE(0) : payload.readInt32BE(0);
  const seq = payload.length >= 4 + 16 ? r32(payload, 4 + 8) : undefined;
  return { errno: -err, seq };
}

/** Decode an RTM_NEWROUTE/RTM_DELROUTE payload; undefined when malformed. */
export function decodeRouteMessage(payload: Buffer): RouteMsg | undefined {
  if (payload.length < 12) return undefined;
  const m: RouteMsg = {
    family: payload[0]!,
    dstLen: payload[1]!,
    table: payload[4]!,
    protocol: payload[5]!,
    scope: payload[6]!,
    type: payload[7]!,
  };
  let at = 12;
  while (at + 4 <= payload.length) {
    const len = r16(payload, at);
    const type = r16(payload, at + 2) & 0x3fff; // drop NLA_F_NESTED / NLA_F_NET_BYTEORDER
    if (len < 4 || at + len > payload.length) return undefined;
    const data = payload.subarray(at + 4, at + len);
    if (type === RTA_DST) m.dst = Uint8Array.from(data);
    else if (type === RTA_GATEWAY) m.gateway = Uint8Array.from(data);
    else if (type === RTA_OIF && data.length === 4) m.oif = r32(data, 0);
    else if (type === RTA_PRIORITY && data.length === 4) m.priority = r32(data, 0);
    else if (type === RTA_TABLE && data.length === 4) m.table = r32(data, 0);
    at += align4(len);
  }
  return m;
}
