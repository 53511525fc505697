import { formatCidr, maskOf, networkOf, splitCidr } from '../util/cidr.js';
import { bitsOf, formatIp, type IpFamily, parseIp } from '../util/ip.js';
import { Codes } from './codes.js';

/** A contiguous block of addresses of one family, both ends included. */
export interface IpRange {
  family: IpFamily;
  start: bigint;
  end: bigint;
}

/** A pool `spec.addresses` entry, parsed: its range and its canonical text. */
interface AddressEntry {
  range: IpRange;
  /** Canonical text in the form the user wrote: `198.51.100.0/24`, `a-b`, or one address. */
  text: string;
}

/** Why an entry did not parse: a code from {@link Codes} and a message. */
interface EntryError {
  code: string;
  message: string;
}

/**
 * Parse an address-pool entry: a CIDR (`198.51.100.0/24`, `2001:db8::/64`), a range
 * (`198.51.100.10-198.51.100.20`, spaces around the dash allowed) or a single address. A CIDR with host
 * bits set is rejected (it is almost always a typo for the network). Never throws.
 */
export function parseAddressEntry(text: string): AddressEntry | EntryError {
  const s = text.trim();
  if (s.length === 0) return { code: Codes.BAD_ADDRESS, message: 'empty address entry' };
  const slash = s.indexOf('/');
  if (slash >= 0) return parseCidr(s, slash);
  const dash = s.indexOf('-');
  if (dash >= 0) {
    const a = s.slice(0, dash).trim();
    const b = s.slice(dash + 1).trim();
    const start = parseIp(a);
    const end = parseIp(b);
    if (start === undefined || end === undefined) {
      return {
        code: Codes.BAD_ADDRESS,
        message: `invalid range ${s}: ${start === undefined ? a : b} is not an IP address`,
      };
    }
    if (start.family !== end.family) {
      return { code: Codes.RANGE_MIXED_FAMILY, message: `range ${s} mixes IPv4 and IPv6` };
    }
    const first = formatIp(start);
    const last = formatIp(end);
    if (start.value > end.value) {
      return { code: Codes.RANGE_REVERSED, message: `range start ${first} is after end ${last}` };
    }
    return { range: { family: start.family, start: start.value, end: end.value }, text: `${first}-${last}` };
  }
  const ip = parseIp(s);
  if (ip === undefined)
    return { code: Codes.BAD_ADDRESS, message: `${s} is not an IP address, CIDR or range` };
  return {
    range: { family: ip.family, start: ip.value, end: ip.value },
    text: formatIp(ip),
  };
}

function parseCidr(s: string, slash: number): AddressEntry | EntryError {
  const { ip, len } = splitCidr(s);
  if (ip === undefined)
    return {
      code: Codes.BAD_ADDRESS,
      message: `invalid CIDR ${s}: ${s.slice(0, slash)} is not an IP address`,
    };
  const max = bitsOf(ip.family);
  if (len === undefined) {
    return { code: Codes.BAD_ADDRESS, message: `invalid CIDR ${s}: prefix length must be 0-${max}` };
  }
  const net = networkOf(ip, len);
  const text = formatCidr(net);
  if (net.value !== ip.value) {
    return {
      code: Codes.BAD_ADDRESS,
      message: `invalid CIDR ${s}: host bits are set (the network is ${text})`,
    };
  }
  const hostMask = maskOf(ip.family, max) ^ maskOf(ip.family, len);
  return { range: { family: ip.family, start: net.value, end: net.value | hostMask }, text };
}

/** True when `x` is an {@link EntryError}. */
export function isEntryError(x: AddressEntry | EntryError): x is EntryError {
  return 'code' in x;
}

/** Number of addresses in `r`. */
export function rangeSize(r: IpRange): bigint {
  return r.end - r.start + 1n;
}

/** `a-b` text of a range (one address when start = end). */
export function formatRange(r: IpRange): string {
  const a = formatIp({ family: r.family, value: r.start });
  return r.start === r.end ? a : `${a}-${formatIp({ family: r.family, value: r.end })}`;
}

/** True when the two ranges share an address. */
export function rangesOverlap(a: IpRange, b: IpRange): boolean {
  return a.family === b.family && a.start <= b.end && b.start <= a.end;
}

/** True when `value` of `family` lies in `r`. */
export function rangeContains(r: IpRange, family: IpFamily, value: bigint): boolean {
  return r.family === family && r.start <= value && value <= r.end;
}

// floor division for bigint (the built-in `/` truncates toward zero).
function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && a < 0n !== b < 0n ? q - 1n : q;
}

/** How many addresses of `r` end in .0 or .255 (IPv4 only; 0 for IPv6). Computed, not counted. */
export function buggyCount(r: IpRange): bigint {
  if (r.family !== 4) return 0n;
  let n = 0n;
  for (const rem of [0n, 255n]) n += floorDiv(r.end - rem, 256n) - floorDiv(r.start - 1n - rem, 256n);
  return n;
}

/** Usable addresses of `r`: all, or all but .0/.255 when `avoidBuggyIPs`. */
export function usableSize(r: IpRange, avoidBuggyIPs: boolean): bigint {
  return rangeSize(r) - (avoidBuggyIPs ? buggyCount(r) : 0n);
}

/** True when `value` may be handed out from a pool with the given avoidBuggyIPs flag. */
export function usable(family: IpFamily, value: bigint, avoidBuggyIPs: boolean): boolean {
  return !(avoidBuggyIPs && isBuggy(family, value));
}

/** True for IPv4 addresses ending in .0 or .255 (skipped by avoidBuggyIPs pools). */
export function isBuggy(family: IpFamily, value: bigint): boolean {
  if (family !== 4) return false;
  const last = value & 0xffn;
  return last === 0n || last === 0xffn;
}
