/**
 * host-gw's reading of prefix text (flags, leases, kernel routes): src/util/cidr.ts's prefixes, refused
 * with this module's error code. Everything else about addresses and prefixes is src/util's.
 */
import { VipmeshError } from '../errors.js';
import { type Cidr, formatCidr, networkOf, splitCidr } from '../util/cidr.js';

// Leases repeat the same strings on every pass and planning 1,000 routes parses each of them (measured
// with bench/hostgw.ts), so parsed prefixes are kept (bounded, frozen).
const CACHE_MAX = 16_384;
const cache = new Map<string, Cidr>();

/**
 * Parse `198.18.1.0/24` or `2001:db8::/64`. Throws `VIPMESH_HOSTGW_BAD_CIDR` (naming `what`) when the
 * text is not a prefix, or, with `strict` (the default), when host bits are set.
 */
export function parseCidr(text: string, what: string, strict = true): Cidr {
  // Only prefixes without host bits are cached, so `strict` needs no part in the key.
  const hit = cache.get(text);
  if (hit !== undefined) return hit;
  const { ip, len } = splitCidr(text);
  if (ip === undefined || len === undefined) {
    throw new VipmeshError(
      'VIPMESH_HOSTGW_BAD_CIDR',
      `${what}: "${text}" is not an IP prefix (like 10.42.0.0/16)`,
      {
        details: { value: text },
      },
    );
  }
  const c: Cidr = Object.freeze(networkOf(ip, len));
  const exact = c.value === ip.value;
  if (strict && !exact) {
    throw new VipmeshError(
      'VIPMESH_HOSTGW_BAD_CIDR',
      `${what}: "${text}" has host bits set (did you mean ${formatCidr(c)}?)`,
      {
        details: { value: text },
      },
    );
  }
  if (exact) {
    if (cache.size >= CACHE_MAX) cache.clear();
    cache.set(text, c);
  }
  return c;
}
