import { formatIp as formatIpValue, parseIp as parseIpValue } from '../util/ip.js';

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
  const ip = parseIpValue(text);
  return ip === undefined ? undefined : { family: ip.family === 4 ? 'IPv4' : 'IPv6', value: ip.value };
}

/** The canonical text of an address (IPv6 compressed, lower case, as RFC 5952). */
export function formatIp(family: Family, value: bigint): string {
  return formatIpValue(family === 'IPv4' ? 4 : 6, value);
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
