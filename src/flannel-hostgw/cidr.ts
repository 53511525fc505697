/**
 * IPv4/IPv6 addresses and prefixes as (family, bigint, length): enough arithmetic for subnet allocation,
 * on-link checks and netlink encoding, with one canonical text form (RFC 5952 for IPv6) so route keys
 * compare as strings.
 */
import { VipmeshError } from '../errors.js';
import {
  bitsOf,
  formatIp as formatIpValue,
  type IpFamily,
  ipToBytes as ipValueToBytes,
  parseIp as parseIpValue,
} from '../util/ip.js';

export { bitsOf, ipFromBytes } from '../util/ip.js';

/** Address family: 4 or 6. */
export type Family = IpFamily;

/** An address: family and value. */
export interface Ip {
  family: Family;
  value: bigint;
}

/** A prefix: family, network value and length. */
export interface Cidr extends Ip {
  len: number;
}

/** Parse an address (`198.51.100.1`, `2001:db8::1`); undefined when it is not one (zones are refused). */
export function parseIp(text: string): Ip | undefined {
  const hit = ipCache.get(text);
  if (hit !== undefined) return hit;
  const ip = parseIpValue(text);
  if (ip !== undefined) remember(ipCache, text, Object.freeze(ip));
  return ip;
}

// Leases repeat the same strings on every pass; BigInt parsing is the costliest part of planning
// 1,000 routes (measured with bench/hostgw.ts), so parsed values are kept (bounded, frozen).
const CACHE_MAX = 16_384;
const ipCache = new Map<string, Ip>();
const cidrCache = new Map<string, Cidr>();
function remember<T>(cache: Map<string, T>, key: string, value: T): void {
  if (cache.size >= CACHE_MAX) cache.clear();
  cache.set(key, value);
}

/** Canonical text of an address (dotted quad; RFC 5952 compressed lowercase IPv6). */
export function formatIp(ip: Ip): string {
  return formatIpValue(ip.family, ip.value);
}

const MASKS: Record<Family, bigint[]> = { 4: [], 6: [] };
for (const family of [4, 6] as const) {
  const bits = BigInt(bitsOf(family));
  for (let len = 0; len <= bitsOf(family); len++) {
    MASKS[family].push(((1n << bits) - 1n) ^ ((1n << (bits - BigInt(len))) - 1n));
  }
}

/** The netmask of a prefix length as a value (precomputed: BigInt shifts are slow on hot paths). */
export function maskOf(family: Family, len: number): bigint {
  return MASKS[family][len]!;
}

/**
 * A set of prefixes that answers "does this one overlap any member?" in time proportional to the number
 * of distinct prefix lengths (one, usually), not the number of members.
 */
export class PrefixSet<T> {
  readonly #byKey = new Map<string, { net: Cidr; value: T }>();
  readonly #lens: Record<Family, Set<number>> = { 4: new Set(), 6: new Set() };

  add(net: Cidr, value: T): void {
    this.#byKey.set(`${net.family}/${net.len}/${net.value}`, { net, value });
    this.#lens[net.family].add(net.len);
  }

  /** A member that shares any address with `net`, if there is one. */
  findOverlap(net: Cidr): { net: Cidr; value: T } | undefined {
    for (const len of this.#lens[net.family]) {
      if (len <= net.len) {
        const hit = this.#byKey.get(`${net.family}/${len}/${net.value & maskOf(net.family, len)}`);
        if (hit !== undefined) return hit;
      } else {
        // A longer member inside `net`: rare (mixed sizes), so a scan is fine.
        for (const m of this.#byKey.values()) if (m.net.len === len && overlaps(m.net, net)) return m;
      }
    }
    return undefined;
  }
}

/**
 * Parse `198.18.1.0/24` or `2001:db8::/64`. Throws `VIPMESH_HOSTGW_BAD_CIDR` (naming `what`) when the
 * text is not a prefix, or, with `strict` (the default), when host bits are set.
 */
export function parseCidr(text: string, what: string, strict = true): Cidr {
  // Only prefixes without host bits are cached, so `strict` needs no part in the key.
  const hit = cidrCache.get(text);
  if (hit !== undefined) return hit;
  const slash = text.indexOf('/');
  const ip = slash < 0 ? undefined : parseIp(text.slice(0, slash));
  const lenText = slash < 0 ? '' : text.slice(slash + 1);
  const len = /^\d{1,3}$/.test(lenText) ? Number(lenText) : Number.NaN;
  if (ip === undefined || !(len <= bitsOf(ip.family))) {
    throw new VipmeshError(
      'VIPMESH_HOSTGW_BAD_CIDR',
      `${what}: "${text}" is not an IP prefix (like 10.42.0.0/16)`,
      {
        details: { value: text },
      },
    );
  }
  const mask = maskOf(ip.family, len);
  if (strict && (ip.value & ~mask) !== 0n) {
    const net = formatCidr({ family: ip.family, value: ip.value & mask, len });
    throw new VipmeshError(
      'VIPMESH_HOSTGW_BAD_CIDR',
      `${what}: "${text}" has host bits set (did you mean ${net}?)`,
      {
        details: { value: text },
      },
    );
  }
  const c: Cidr = Object.freeze({ family: ip.family, value: ip.value & mask, len });
  if ((ip.value & ~mask) === 0n) remember(cidrCache, text, c);
  return c;
}

/** Canonical text of a prefix. */
export function formatCidr(c: Cidr): string {
  return `${formatIp(c)}/${c.len}`;
}

/** True when `ip` lies inside `net`. */
export function contains(net: Cidr, ip: Ip): boolean {
  return net.family === ip.family && (ip.value & maskOf(net.family, net.len)) === net.value;
}

/** True when two prefixes share any address. */
export function overlaps(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  const len = Math.min(a.len, b.len);
  const mask = maskOf(a.family, len);
  return (a.value & mask) === (b.value & mask);
}

/** Network-order bytes of an address (for netlink attributes). */
export function ipToBytes(ip: Ip): Buffer {
  return ipValueToBytes(ip.family, ip.value);
}
