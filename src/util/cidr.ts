/**
 * IP prefixes as (family, bigint network value, length): enough arithmetic for pool ranges, subnet
 * allocation, on-link checks and netlink encoding, with one canonical text form (`198.18.1.0/24`,
 * RFC 5952 `2001:db8::/64`) so prefixes compare as strings.
 */
import { bitsOf, formatIp, type Ip, type IpFamily, parseIp } from './ip.js';

/** A prefix: family, network value (no host bits) and length. */
export interface Cidr extends Ip {
  readonly len: number;
}

const MASKS: Record<IpFamily, bigint[]> = { 4: [], 6: [] };
for (const family of [4, 6] as const) {
  const bits = BigInt(bitsOf(family));
  for (let len = 0; len <= bitsOf(family); len++) {
    MASKS[family].push(((1n << bits) - 1n) ^ ((1n << (bits - BigInt(len))) - 1n));
  }
}

/** The netmask of a prefix length as a value (precomputed: BigInt shifts are slow on hot paths). */
export function maskOf(family: IpFamily, len: number): bigint {
  return MASKS[family][len]!;
}

/** `addr/len` taken apart; each part undefined when it does not parse. */
interface CidrParts {
  /** The address before the slash as written (host bits kept); undefined without a slash. */
  ip: Ip | undefined;
  /** The length: 1 to 3 digits, at most the address's width; undefined otherwise or without an address. */
  len: number | undefined;
}

/** Take `198.18.1.7/24` or `2001:db8::/64` apart (never throws; callers word their own errors). */
export function splitCidr(text: string): CidrParts {
  const slash = text.indexOf('/');
  if (slash < 0) return { ip: undefined, len: undefined };
  const ip = parseIp(text.slice(0, slash));
  const lenText = text.slice(slash + 1);
  const len = /^\d{1,3}$/.test(lenText) ? Number(lenText) : Number.NaN;
  return { ip, len: ip !== undefined && len <= bitsOf(ip.family) ? len : undefined };
}

/** The prefix of length `len` that holds `ip` (host bits cleared). */
export function networkOf(ip: Ip, len: number): Cidr {
  return { family: ip.family, value: ip.value & maskOf(ip.family, len), len };
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

/**
 * A set of prefixes that answers "does this one overlap any member?" in time proportional to the number
 * of distinct prefix lengths (one, usually), not the number of members.
 */
export class PrefixSet<T> {
  readonly #byKey = new Map<string, { net: Cidr; value: T }>();
  readonly #lens: Record<IpFamily, Set<number>> = { 4: new Set(), 6: new Set() };

  /** Add `net`, carrying `value`. */
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
