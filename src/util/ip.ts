/**
 * The address model: one parser, one RFC 5952 formatter and one family type for every module, so the
 * canonical text each module keys its maps by is the same string.
 *
 * An address is an {@link Ip} (family and value as an unsigned bigint: the pools' and host-gw's arithmetic)
 * or, on the wire, an {@link IpAddr} (4 or 16 network-order bytes with their canonical text: the announcer).
 * The family is 4 or 6 everywhere; `'IPv4'`/`'IPv6'` ({@link IpFamilyName}) is only how Kubernetes objects
 * spell it (`spec.ipFamilies`), converted where they are read or messages about them written.
 *
 * Parsing accepts what `node:net` `isIP` accepts (dotted quad without leading zeros; any RFC 4291 IPv6
 * form, embedded IPv4 included), minus zones, which `isIPv6` lets through.
 */
import { isIP } from 'node:net';

/** Address family: 4 or 6. */
export type IpFamily = 4 | 6;

/** A family as Kubernetes spells it (`spec.ipFamilies`). */
type IpFamilyName = 'IPv4' | 'IPv6';

/** `'IPv4'` or `'IPv6'`: the Kubernetes spelling of `family`. */
export function familyName(family: IpFamily): IpFamilyName {
  return family === 4 ? 'IPv4' : 'IPv6';
}

/** The family Kubernetes spells `name` (`'IPv4'`, `'IPv6'`, exactly); undefined for anything else. */
export function familyFromName(name: string): IpFamily | undefined {
  return name === 'IPv4' ? 4 : name === 'IPv6' ? 6 : undefined;
}

/** An address: its family and its value as an unsigned integer. */
export interface Ip {
  readonly family: IpFamily;
  readonly value: bigint;
}

/** An address as the wire carries it: its 4 or 16 network-order bytes, its canonical text and family. */
export interface IpAddr {
  readonly text: string;
  readonly bytes: Buffer;
  readonly family: IpFamily;
}

/** Address width in bits. */
export function bitsOf(family: IpFamily): number {
  return family === 4 ? 32 : 128;
}

/**
 * The 4 octets (IPv4) or 8 16-bit words (IPv6) of `text`; undefined when it is not a bare address (no
 * prefix, no zone). Numbers, not BigInts: both value and byte forms are built from these.
 */
function parseParts(
  text: string,
): { family: 4; octets: number[] } | { family: 6; words: number[] } | undefined {
  // Hex and colons only (the usual IPv6 VIP): parsed and checked in one scan, without node's isIPv6 (one
  // large regular expression: ~20 ms to compile and first run in a new process) and the splits after it.
  if (/^[0-9a-fA-F:]+$/.test(text)) {
    const words = hexWords(text);
    return words === undefined ? undefined : { family: 6, words };
  }
  const kind = isIP(text);
  if (kind === 4) return { family: 4, octets: text.split('.').map(Number) };
  if (kind !== 6 || text.includes('%')) return undefined;
  let head = text;
  let tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    // Embedded IPv4 (::ffff:198.51.100.1): the dotted quad is the last two words.
    const o = text
      .slice(lastColon + 1)
      .split('.')
      .map(Number);
    tail = [(o[0]! << 8) | o[1]!, (o[2]! << 8) | o[3]!];
    head = text.slice(0, lastColon + 1);
    // `1:2:3:4:5:6:` before the quad, or `::` ending it: drop the trailing colon unless it closes a `::`.
    if (!head.endsWith('::')) head = head.slice(0, -1);
  }
  const words = (part: string): number[] => (part === '' ? [] : part.split(':').map((h) => parseInt(h, 16)));
  const gap = head.indexOf('::');
  if (gap < 0) return { family: 6, words: [...words(head), ...tail] };
  const left = words(head.slice(0, gap));
  const right = [...words(head.slice(gap + 2)), ...tail];
  return { family: 6, words: [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right] };
}

/**
 * The 8 words of an IPv6 address written in hex groups and colons only (no embedded IPv4, no zone), or
 * undefined when `isIPv6` would refuse it: groups of 1-4 hex digits, 8 of them, or at most 7 around one
 * `::`.
 */
function hexWords(text: string): number[] | undefined {
  const left: number[] = [];
  const right: number[] = [];
  let side = left;
  let gap = false;
  let i = 0;
  const n = text.length;
  if (text.startsWith('::')) {
    gap = true;
    side = right;
    i = 2;
    if (i === n) return [0, 0, 0, 0, 0, 0, 0, 0];
  }
  for (;;) {
    let value = 0;
    const start = i;
    while (i < n && text.charCodeAt(i) !== 58 /* : */) {
      value = value * 16 + parseInt(text[i]!, 16);
      i++;
    }
    const digits = i - start;
    if (digits === 0 || digits > 4) return undefined;
    side.push(value);
    if (i === n) break;
    i++; // the colon
    if (i === n) {
      // A trailing colon is only the end of a closing `::`.
      return undefined;
    }
    if (text.charCodeAt(i) === 58) {
      if (gap) return undefined;
      gap = true;
      side = right;
      i++;
      if (i === n) break;
    }
  }
  const count = left.length + right.length;
  if (!gap) return count === 8 ? left : undefined;
  if (count > 7) return undefined;
  return [...left, ...Array<number>(8 - count).fill(0), ...right];
}

const IP_CACHE_MAX = 16_384;
const ipCache = new Map<string, Ip>();

/**
 * Parse an address (`198.51.100.1`, `2001:db8::1`); undefined when it is not one (zones are refused).
 * The result is frozen and may be shared: the same strings come back on every pass over leases and
 * Services, and BigInt parsing is the costly part, so parsed values are kept (bounded).
 */
export function parseIp(text: string): Ip | undefined {
  const hit = ipCache.get(text);
  if (hit !== undefined) return hit;
  const p = parseParts(text);
  if (p === undefined) return undefined;
  let ip: Ip;
  if (p.family === 4) {
    const [a, b, c, d] = p.octets as [number, number, number, number];
    ip = Object.freeze({ family: 4, value: BigInt(((a << 24) >>> 0) + (b << 16) + (c << 8) + d) });
  } else {
    let value = 0n;
    for (const w of p.words) value = (value << 16n) | BigInt(w);
    ip = Object.freeze({ family: 6, value });
  }
  if (ipCache.size >= IP_CACHE_MAX) ipCache.clear();
  ipCache.set(text, ip);
  return ip;
}

/** The canonical text of `text` if it is an address, else undefined. */
export function canonicalIp(text: string): string | undefined {
  const ip = parseIp(text);
  return ip === undefined ? undefined : formatIp(ip);
}

/** Parse an address into its 4 or 16 network-order bytes; undefined when it is not one. */
export function parseIpBytes(text: string): Buffer | undefined {
  const p = parseParts(text);
  if (p === undefined) return undefined;
  if (p.family === 4) return Buffer.from(p.octets);
  const out = Buffer.alloc(16);
  p.words.forEach((w, i) => {
    out.writeUInt16BE(w, i * 2);
  });
  return out;
}

/** Canonical text of an address: dotted quad, or RFC 5952 IPv6 (lower case, longest zero run as `::`). */
export function formatIp({ family, value }: Ip): string {
  if (family === 4) {
    const v = Number(value);
    return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
  }
  const words: number[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) words.push(Number((value >> shift) & 0xffffn));
  return formatWords(words);
}

/** Canonical text of a 4- or 16-byte address (as {@link formatIp}, without going through a BigInt). */
export function formatIpBytes(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((b[i]! << 8) | b[i + 1]!);
  return formatWords(words);
}

/** RFC 5952 text of 8 words: lower-case hex, the longest run (2+) of zero words as `::`, first on ties (4.2.3). */
function formatWords(words: number[]): string {
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (ws: number[]) => ws.map((w) => w.toString(16)).join(':');
  if (bestAt < 0) return hex(words);
  return `${hex(words.slice(0, bestAt))}::${hex(words.slice(bestAt + bestLen))}`;
}

/** Network-order bytes of an address (4 or 16 of them). */
export function ipToBytes({ family, value }: Ip): Buffer {
  const n = bitsOf(family) / 8;
  const out = Buffer.alloc(n);
  let v = value;
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** The address in network-order bytes (4 or 16 of them); undefined for any other length. */
export function ipFromBytes(bytes: Uint8Array): Ip | undefined {
  if (bytes.length !== 4 && bytes.length !== 16) return undefined;
  let value = 0n;
  for (const b of bytes) value = (value << 8n) | BigInt(b);
  return { family: bytes.length === 4 ? 4 : 6, value };
}

/** Parse an address into its wire form (bytes, canonical text, family); undefined when it is not one. */
export function parseIpAddr(text: string): IpAddr | undefined {
  const bytes = parseIpBytes(text);
  if (bytes === undefined) return undefined;
  return { text: formatIpBytes(bytes), bytes, family: bytes.length === 4 ? 4 : 6 };
}

/** The wire form of 4 or 16 network-order bytes (copied); undefined for any other length. */
export function ipAddrFromBytes(bytes: Uint8Array): IpAddr | undefined {
  if (bytes.length !== 4 && bytes.length !== 16) return undefined;
  return { text: formatIpBytes(bytes), bytes: Buffer.from(bytes), family: bytes.length === 4 ? 4 : 6 };
}
