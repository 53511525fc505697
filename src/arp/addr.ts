/**
 * Address rules and MAC helpers of the announcer. IP addresses themselves are src/util/ip.ts's
 * ({@link IpAddr}: bytes on the wire, canonical text in maps, logs and metrics).
 */
import { VipmeshError } from '../errors.js';
import { type IpAddr, parseIpAddr } from '../util/ip.js';

/** Parse a VIP; throws VIPMESH_ARP_BAD_VIP naming it when it is not a unicast IPv4/IPv6 address. */
export function parseVip(text: string): IpAddr {
  const ip = parseIpAddr(text.trim());
  const bad = (why: string) =>
    new VipmeshError('VIPMESH_ARP_BAD_VIP', `"${text}" is not a usable VIP: ${why}`, {
      details: { vip: text },
    });
  if (ip === undefined) throw bad('not an IPv4 or IPv6 address (no prefix length, no zone)');
  const b = ip.bytes;
  if (ip.family === 4 && (b[0] === 0 || b[0] === 127 || b[0]! >= 224)) {
    throw bad('unspecified, loopback, multicast or broadcast');
  }
  const v6Special =
    b[0] === 0xff || (b[0] === 0xfe && (b[1]! & 0xc0) === 0x80) || b.subarray(0, 15).every((x) => x === 0);
  if (ip.family === 6 && v6Special) {
    throw bad('multicast, link-local, loopback or unspecified');
  }
  return ip;
}

/** `aa:bb:cc:dd:ee:ff` from 6 bytes. */
export function formatMac(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < 6; i++) s += (i === 0 ? '' : ':') + b[i]!.toString(16).padStart(2, '0');
  return s;
}

/** 6 bytes from `aa:bb:cc:dd:ee:ff` (or `-` separated); undefined when malformed. */
export function parseMac(text: string): Buffer | undefined {
  const m =
    /^([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})$/i.exec(
      text,
    );
  if (m === null) return undefined;
  return Buffer.from(m.slice(1).map((h) => parseInt(h, 16)));
}

/** The solicited-node multicast address ff02::1:ffXX:XXXX of an IPv6 address (RFC 4291 2.7.1). */
export function solicitedNode(ip: Uint8Array): Buffer {
  const out = Buffer.from('ff0200000000000000000001ff000000', 'hex');
  out[13] = ip[13]!;
  out[14] = ip[14]!;
  out[15] = ip[15]!;
  return out;
}

/** The Ethernet multicast MAC 33:33:xx:xx:xx:xx of an IPv6 multicast address (RFC 2464 7). */
export function multicastMac(ip: Uint8Array): Buffer {
  return Buffer.from([0x33, 0x33, ip[12]!, ip[13]!, ip[14]!, ip[15]!]);
}
