/**
 * IP and MAC address helpers for the announcer. Addresses travel as Buffers on the wire and as canonical
 * strings (dotted quad, RFC 5952 IPv6) in maps, logs and metrics, so the two must round-trip exactly.
 */
import { isIP } from 'node:net';
import { VipmeshError } from '../errors.js';

/** A parsed IP address: its canonical text, its 4 or 16 bytes and its family. */
export interface IpAddr {
  readonly text: string;
  readonly bytes: Buffer;
  readonly family: 4 | 6;
}

/** Canonical text of a 4- or 16-byte address (RFC 5952 for IPv6: lower case, longest zero run as ::). */
export function formatIp(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((b[i]! << 8) | b[i + 1]!);
  // Longest run of two or more zero words; the first one wins a tie (RFC 5952 4.2.3).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

function parseV4(s: string): Buffer {
  return Buffer.from(s.split('.').map(Number));
}

function parseV6(s: string): Buffer {
  let text = s;
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    // Embedded IPv4 (::ffff:1.2.3.4): rewrite the dotted quad as two hex words.
    const v4 = parseV4(text.slice(lastColon + 1));
    text = `${text.slice(0, lastColon + 1)}${v4.readUInt16BE(0).toString(16)}:${v4.readUInt16BE(2).toString(16)}`;
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const words = (part: string): number[] => (part === '' ? [] : part.split(':').map((h) => parseInt(h, 16)));
  const left = words(head);
  const right = rest === undefined ? [] : words(rest);
  const fill = 8 - left.length - right.length;
  const all = rest === undefined ? left : [...left, ...new Array<number>(fill).fill(0), ...right];
  const out = Buffer.alloc(16);
  all.forEach((w, i) => {
    out.writeUInt16BE(w, i * 2);
  });
  return out;
}

/** Parse an IPv4 or IPv6 address (no prefix, no zone); undefined when `text` is not one. */
export function tryParseIp(text: string): IpAddr | undefined {
  const kind = isIP(text);
  if (kind === 4) {
    const bytes = parseV4(text);
    return { text: formatIp(bytes), bytes, family: 4 };
  }
  if (kind === 6 && !text.includes('%')) {
    const bytes = parseV6(text);
    return { text: formatIp(bytes), bytes, family: 6 };
  }
  return undefined;
}

/** Parse a VIP; throws VIPMESH_ARP_BAD_VIP naming it when it is not a unicast IPv4/IPv6 address. */
export function parseVip(text: string): IpAddr {
  const ip = tryParseIp(text.trim());
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
