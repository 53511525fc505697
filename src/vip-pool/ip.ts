import { Address4, Address6 } from 'ip-address';

/** An address family, spelled as Kubernetes spells `spec.ipFamilies`. */
export type Family = 'IPv4' | 'IPv6';

/** A parsed address: its family and its value as an unsigned integer. */
export interface IpValue {
  family: Family;
  value: bigint;
}

/** Number of bits of an address of `family`. */
export function familyBits(family: Family): number {
  return family === 'IPv4' ? 32 : 128;
}

/** The largest address value of `family`. */
export function maxValue(family: Family): bigint {
  return family === 'IPv4' ? 0xffff_ffffn : (1n << 128n) - 1n;
}

/**
 * Parse one bare IP address (no prefix, no zone). IPv4 must be dotted quad without leading zeros;
 * IPv6 is any RFC 4291 text form. Returns undefined for anything else (never throws).
 */
export function parseIp(text: string): IpValue | undefined {
  if (text.length === 0 || text.length > 64 || text.includes('/') || text.includes('%')) return undefined;
  try {
    if (text.includes(':')) {
      if (!Address6.isValid(text)) return undefined;
      return { family: 'IPv6', value: new Address6(text).bigInt() };
    }
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(text) || !Address4.isValid(text)) return undefined;
    return { family: 'IPv4', value: new Address4(text).bigInt() };
  } catch {
    return undefined;
  }
}

/** The canonical text of an address (IPv6 compressed, lower case, as RFC 5952). */
export function formatIp(family: Family, value: bigint): string {
  if (family === 'IPv4') {
    const n = Number(value);
    return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
  return formatIpv6(value);
}

/** RFC 5952 text: lower-case hex groups, the longest run (2+) of zero groups as `::`, first on ties. */
function formatIpv6(value: bigint): string {
  const groups: number[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(Number((value >> shift) & 0xffffn));
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(':');
  if (bestAt < 0) return hex(groups);
  return `${hex(groups.slice(0, bestAt))}::${hex(groups.slice(bestAt + bestLen))}`;
}

/** The canonical text of `text` if it is an IP address, else undefined. */
export function canonicalIp(text: string): string | undefined {
  const ip = parseIp(text);
  return ip === undefined ? undefined : formatIp(ip.family, ip.value);
}

/** True for IPv4 addresses ending in .0 or .255 (skipped by avoidBuggyIPs pools). */
export function isBuggy(family: Family, value: bigint): boolean {
  if (family !== 'IPv4') return false;
  const last = value & 0xffn;
  return last === 0n || last === 0xffn;
}
