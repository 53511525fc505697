import { VipmeshError } from '../errors.js';
import { familyName, formatIp, type Ip, type IpFamily, parseIp } from '../util/ip.js';
import { Codes } from './codes.js';
import { type Held, Ledger } from './ledger.js';
import { PoolState, RangeIndex } from './pool-state.js';
import { compilePools, poolSetProblems } from './pools.js';
import { isBuggy } from './range.js';
import { anySelectorMatches } from './selector.js';
import type { AddressPool, NamespaceInfo, ProtocolPort, ServiceRequest } from './types.js';
import { serviceKey } from './types.js';

/** A Service's addresses as the allocator persists them (plain JSON). */
export interface Allocation {
  /** `namespace/name`. */
  service: string;
  pool: string;
  /** Canonical addresses, the first family first. */
  ips: string[];
  sharingKey?: string;
  /** See {@link ServiceRequest.backendKey}. */
  backendKey?: string;
  ports: ProtocolPort[];
}

/** What {@link Allocator.assign} gives a Service. */
export interface Assignment {
  ips: string[];
  pool: string;
}

/** Options for {@link Allocator}. */
interface AllocatorOptions {
  /** The allocations persisted before a restart; they are restored first. Default none. */
  allocations?: readonly Allocation[];
  /** Namespace labels, for serviceAllocation namespaceSelectors. Default none (only the name label). */
  namespaces?: readonly NamespaceInfo[];
}

/** A persisted allocation the current pools no longer admit (the Service must be assigned again). */
interface RejectedAllocation {
  allocation: Allocation;
  error: VipmeshError;
}

const FAMILIES: readonly IpFamily[] = [4, 6];

/**
 * The families a Service asks for, read as Kubernetes fills in a dual-stack cluster's Service (MetalLB
 * follows its cluster IPs): `ipFamilies` when it names one family; both for RequireDualStack, and for
 * PreferDualStack unless `ipFamilies` names one; a SingleStack Service without `ipFamilies` takes IPv4
 * when the pool has it, else IPv6.
 */
type Want =
  | { kind: 'one'; family: IpFamily }
  | { kind: 'either' }
  | { kind: 'both'; order: IpFamily[]; required: boolean };

function wanted(svc: ServiceRequest): Want {
  const [first] = svc.ipFamilies;
  if (
    svc.ipFamilyPolicy === 'SingleStack' ||
    (svc.ipFamilyPolicy === 'PreferDualStack' && svc.ipFamilies.length === 1)
  )
    return first === undefined ? { kind: 'either' } : { kind: 'one', family: first };
  const order = [...svc.ipFamilies, ...FAMILIES.filter((f) => !svc.ipFamilies.includes(f))];
  return { kind: 'both', order, required: svc.ipFamilyPolicy === 'RequireDualStack' };
}

/** What a Service holds once `ips` (from `pool`) are its. */
function held(key: string, pool: PoolState, ips: string[], values: Ip[], svc: ServiceRequest): Held {
  return {
    service: key,
    pool,
    ips,
    values,
    sharingKey: svc.sharingKey,
    backendKey: svc.backendKey,
    ports: svc.ports,
  };
}

function fail(code: string, message: string, details: Record<string, unknown> = {}): never {
  throw new VipmeshError(code, message, { details });
}

/**
 * The VIP allocator: pure, synchronous, no I/O, no timers. It takes the pools and the
 * allocations persisted so far and answers the same after a restart. Used addresses are kept as sorted
 * runs per range with a "lowest free" cursor, so a pool is never enumerated: an IPv6 /64 costs what a
 * /24 costs. Addresses are handed out lowest first, ranges in the order they are written.
 */
export class Allocator {
  private readonly pools: PoolState[];
  private readonly byName = new Map<string, PoolState>();
  private readonly index: RangeIndex;
  private readonly nsLabels = new Map<string, Readonly<Record<string, string>>>();
  private readonly ledger: Ledger;
  /** Persisted allocations that did not fit the current pools (see {@link RejectedAllocation}). */
  readonly rejected: RejectedAllocation[] = [];

  /** Throws VipmeshError (POOL_OVERLAP, POOL_DUPLICATE, BAD_ADDRESS, ...) when the pools are unusable. */
  constructor(pools: readonly AddressPool[], opts: AllocatorOptions = {}) {
    const problems = poolSetProblems(pools);
    if (problems.length > 0) {
      const p = problems[0]!;
      fail(p.code, `pool ${pools[p.pool]!.name}: ${p.message}`, { problems });
    }
    this.pools = compilePools(pools).compiled.map((c) => new PoolState(c.pool, c.ranges));
    for (const p of this.pools) this.byName.set(p.name, p);
    this.index = new RangeIndex(this.pools);
    this.ledger = new Ledger(this.index);
    for (const ns of opts.namespaces ?? []) this.nsLabels.set(ns.name, ns.labels);
    const restore = [...(opts.allocations ?? [])].sort((a, b) =>
      a.service < b.service ? -1 : a.service > b.service ? 1 : 0,
    );
    for (const a of restore) {
      try {
        this.restore(a);
      } catch (err) {
        if (!(err instanceof VipmeshError)) throw err;
        this.rejected.push({ allocation: a, error: err });
      }
    }
  }

  /**
   * Give `svc` its addresses: the requested ones, else from the requested pool, else from the autoAssign
   * pools that admit it (serviceAllocation priority, then name). A Service that already holds addresses
   * keeps them while they still fit. Atomic: on error nothing changes. Throws VipmeshError.
   */
  assign(svc: ServiceRequest): Assignment {
    const key = serviceKey(svc);
    const prev = this.ledger.get(key);
    if (prev !== undefined) this.ledger.drop(prev);
    try {
      const next = svc.requestedIPs.length > 0 ? this.planPinned(svc, key) : this.planAuto(svc, key, prev);
      this.ledger.take(next);
      return { ips: [...next.ips], pool: next.pool.name };
    } catch (err) {
      if (prev !== undefined) this.ledger.take(prev);
      throw err;
    }
  }

  /** Free a Service's addresses (shared ones stay with their other users). False when it held none. */
  release(key: string): boolean {
    const h = this.ledger.get(key);
    if (h === undefined) return false;
    this.ledger.drop(h);
    return true;
  }

  /** A Service's current addresses. */
  lookup(key: string): Assignment | undefined {
    const h = this.ledger.get(key);
    return h === undefined ? undefined : { ips: [...h.ips], pool: h.pool.name };
  }

  /** Every allocation, sorted by Service, to persist and pass to the next Allocator. */
  allocations(): Allocation[] {
    return [...this.ledger.all()]
      .sort((a, b) => (a.service < b.service ? -1 : 1))
      .map((h) => ({
        service: h.service,
        pool: h.pool.name,
        ips: [...h.ips],
        ...(h.sharingKey === undefined ? {} : { sharingKey: h.sharingKey }),
        ...(h.backendKey === undefined ? {} : { backendKey: h.backendKey }),
        ports: h.ports.map((p) => ({ ...p })),
      }));
  }

  /** Per pool: addresses it can hand out and addresses in use (bigint: IPv6 pools are huge). */
  usage(): Array<{ pool: string; size: bigint; used: bigint }> {
    return this.pools.map((p) => ({ pool: p.name, size: p.size(), used: p.used() }));
  }

  private restore(a: Allocation): void {
    const pool = this.byName.get(a.pool);
    if (pool === undefined) fail(Codes.POOL_NOT_FOUND, `${a.service}: pool ${a.pool} no longer exists`);
    if (this.ledger.get(a.service) !== undefined)
      fail(Codes.ALLOCATOR_INCONSISTENT, `${a.service} is listed twice`);
    const values: Ip[] = [];
    const ips = a.ips.map((text) => {
      const ip = parseIp(text);
      if (ip === undefined) fail(Codes.BAD_ADDRESS, `${a.service}: "${text}" is not an IP address`);
      const range = this.index.find(ip.family, ip.value);
      if (range?.pool !== pool) {
        fail(Codes.IP_OUTSIDE_POOLS, `${a.service}: ${text} is no longer in pool ${a.pool}`, { ip: text });
      }
      const canon = formatIp(ip);
      this.ledger.checkShare(canon, a.service, a);
      values.push(ip);
      return canon;
    });
    this.ledger.take({
      service: a.service,
      pool,
      ips,
      values,
      sharingKey: a.sharingKey,
      backendKey: a.backendKey,
      ports: a.ports.map((p) => ({ ...p })),
    });
  }

  private admits(pool: PoolState, svc: ServiceRequest): boolean {
    const sa = pool.pool.serviceAllocation;
    if (sa === undefined) return true;
    if (sa.namespaces.length > 0 || sa.namespaceSelectors.length > 0) {
      const labels = this.nsLabels.get(svc.namespace) ?? { 'kubernetes.io/metadata.name': svc.namespace };
      if (!sa.namespaces.includes(svc.namespace) && !anySelectorMatches(sa.namespaceSelectors, labels))
        return false;
    }
    return sa.serviceSelectors.length === 0 || anySelectorMatches(sa.serviceSelectors, svc.labels);
  }

  private planPinned(svc: ServiceRequest, key: string): Held {
    if (
      svc.ipFamilyPolicy !== 'SingleStack' &&
      svc.ipFamilies.length === 2 &&
      svc.requestedIPs.length === 1
    ) {
      fail(
        Codes.FAMILY_MISMATCH,
        `${key}: ${svc.requestedIPs[0]} is one address but the Service is dual-stack (spec.ipFamilies lists both); request one address of each family`,
        { service: key },
      );
    }
    let pool: PoolState | undefined;
    const ips: string[] = [];
    const values: Ip[] = [];
    for (const text of svc.requestedIPs) {
      const ip = parseIp(text);
      if (ip === undefined)
        fail(Codes.BAD_ADDRESS, `${key}: "${text}" is not an IP address`, { service: key });
      const canon = formatIp(ip);
      if (svc.ipFamilies.length > 0 && !svc.ipFamilies.includes(ip.family)) {
        fail(
          Codes.FAMILY_MISMATCH,
          `${key}: ${canon} is ${familyName(ip.family)} but spec.ipFamilies is ${svc.ipFamilies.map(familyName).join(', ')}`,
        );
      }
      const range = this.index.find(ip.family, ip.value);
      if (range === undefined) {
        fail(Codes.IP_OUTSIDE_POOLS, `${key}: ${canon} is outside every address pool`, {
          service: key,
          ip: canon,
        });
      }
      if (pool !== undefined && range.pool !== pool) {
        fail(
          Codes.IP_POOLS_DIFFER,
          `${key}: ${ips[0]} is in pool ${pool.name} but ${canon} is in pool ${range.pool.name}`,
        );
      }
      pool = range.pool;
      if (pool.pool.avoidBuggyIPs && isBuggy(ip.family, ip.value)) {
        fail(Codes.IP_AVOIDED, `${key}: ${canon} ends in .0 or .255 and pool ${pool.name} has avoidBuggyIPs`);
      }
      ips.push(canon);
      values.push(ip);
    }
    const p = pool!;
    if (svc.pool !== undefined && svc.pool !== p.name) {
      if (!this.byName.has(svc.pool))
        fail(Codes.POOL_NOT_FOUND, `${key}: there is no pool named ${svc.pool}`);
      fail(
        Codes.IP_WRONG_POOL,
        `${key}: ${ips[0]} is in pool ${p.name}, not in the requested pool ${svc.pool}`,
      );
    }
    if (!this.admits(p, svc))
      fail(Codes.POOL_NOT_ALLOWED, `${key}: pool ${p.name} does not serve this Service (serviceAllocation)`);
    for (const ip of ips) this.ledger.checkShare(ip, key, svc);
    return held(key, p, ips, values, svc);
  }

  private candidates(svc: ServiceRequest, key: string, prev: Held | undefined): PoolState[] {
    if (svc.pool !== undefined) {
      const p = this.byName.get(svc.pool);
      if (p === undefined)
        fail(Codes.POOL_NOT_FOUND, `${key}: there is no pool named ${svc.pool}`, { service: key });
      if (!this.admits(p, svc))
        fail(
          Codes.POOL_NOT_ALLOWED,
          `${key}: pool ${p.name} does not serve this Service (serviceAllocation)`,
        );
      return [p];
    }
    // As MetalLB orders them: pools with a serviceAllocation that admits the Service first, by
    // priority (lower first; 0 or none means last), then the pools without one; ties by name.
    const rank = (p: PoolState): [number, number] => {
      const sa = p.pool.serviceAllocation;
      return [sa === undefined ? 1 : 0, sa?.priority || Number.POSITIVE_INFINITY];
    };
    const list = this.pools
      .filter((p) => p.pool.autoAssign && this.admits(p, svc))
      .sort((a, b) => {
        const [ga, pa] = rank(a);
        const [gb, pb] = rank(b);
        if (ga !== gb) return ga - gb;
        if (pa !== pb) return pa < pb ? -1 : 1;
        return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
      });
    if (list.length === 0) {
      fail(
        Codes.NO_POOL,
        `${key}: no autoAssign pool serves this Service (name a pool with metallb.io/address-pool)`,
        { service: key },
      );
    }
    // A Service keeps its pool while that pool still admits it: a new higher-priority pool moves nobody.
    const i = prev === undefined ? -1 : list.indexOf(prev.pool);
    if (i > 0) list.unshift(...list.splice(i, 1));
    return list;
  }

  private families(want: Want, pool: PoolState): IpFamily[] | string {
    if (want.kind === 'one') {
      return pool.has(want.family)
        ? [want.family]
        : `pool ${pool.name} has no ${familyName(want.family)} range`;
    }
    if (want.kind === 'either') {
      const f = FAMILIES.find((x) => pool.has(x));
      return f === undefined ? `pool ${pool.name} has no addresses` : [f];
    }
    if (want.required) {
      const missing = want.order.find((f) => !pool.has(f));
      return missing === undefined
        ? want.order
        : `pool ${pool.name} has no ${familyName(missing)} range (RequireDualStack)`;
    }
    const have = want.order.filter((f) => pool.has(f));
    return have.length > 0 ? have : `pool ${pool.name} has no addresses`;
  }

  /**
   * The first candidate pool that gives every family the Service wants. PreferDualStack asking for two
   * families settles for one, as MetalLB does: the first pool with the first family, else the first pool
   * with the second, unless the pool the Service already uses still gives it something.
   */
  private planAuto(svc: ServiceRequest, key: string, prev: Held | undefined): Held {
    const want = wanted(svc);
    const prefer = want.kind === 'both' && !want.required;
    const reasons: Array<{ code: string; message: string }> = [];
    let firstFamily: Held | undefined;
    let secondFamily: Held | undefined;
    for (const pool of this.candidates(svc, key, prev)) {
      const fams = this.families(want, pool);
      if (typeof fams === 'string') {
        reasons.push({ code: Codes.FAMILY_UNAVAILABLE, message: fams });
        continue;
      }
      const ips: string[] = [];
      const values: Ip[] = [];
      let full: IpFamily | undefined;
      for (const f of fams) {
        const got = this.pick(pool, f, svc, key, prev);
        if (got !== undefined) {
          ips.push(got.ip);
          values.push(got.value);
        } else {
          full ??= f;
        }
      }
      if (full === undefined || (prefer && ips.length > 0)) {
        const h = held(key, pool, ips, values, svc);
        if (!prefer || ips.length === 2 || pool === prev?.pool) return h;
        if (want.kind === 'both' && values[0]!.family === want.order[0]) firstFamily ??= h;
        else secondFamily ??= h;
        continue;
      }
      const what = prefer || full === undefined ? 'address' : `${familyName(full)} address`;
      reasons.push({ code: Codes.POOL_EXHAUSTED, message: `pool ${pool.name} has no free ${what}` });
    }
    const partial = firstFamily ?? secondFamily;
    if (partial !== undefined) return partial;
    const code = reasons.every((r) => r.code === reasons[0]!.code) ? reasons[0]!.code : Codes.NO_POOL;
    return fail(code, `${key}: ${reasons.map((r) => r.message).join('; ')}`, { service: key });
  }

  /** An address of `family` in `pool` for the Service: its previous one, a shared one, or the lowest free. */
  private pick(
    pool: PoolState,
    family: IpFamily,
    svc: ServiceRequest,
    key: string,
    prev: Held | undefined,
  ): { ip: string; value: Ip } | undefined {
    const ok = (ip: string): boolean =>
      this.ledger.shareProblem(ip, key, svc.sharingKey, svc.ports, svc.backendKey) === undefined;
    if (prev?.pool === pool) {
      for (const [i, ip] of prev.ips.entries()) {
        const v = prev.values[i]!;
        if (v.family === family && !(pool.pool.avoidBuggyIPs && isBuggy(v.family, v.value)) && ok(ip))
          return { ip, value: v };
      }
    }
    // Ranges in the order written; in each, the lowest address that is free or that this Service may
    // share (its key's addresses are the only shareable ones), as MetalLB walks a pool.
    const shared =
      svc.sharingKey === undefined
        ? []
        : this.ledger.sharedIn(svc.sharingKey, pool, family).filter((c) => ok(c.ip));
    for (const r of pool.ranges) {
      if (r.range.family !== family) continue;
      const v = r.lowestFree();
      const s = shared.find((c) => c.range === r && (v === undefined || c.value.value < v));
      if (s !== undefined) return { ip: s.ip, value: s.value };
      if (v !== undefined) {
        const value: Ip = { family, value: v };
        return { ip: formatIp(value), value };
      }
    }
    return undefined;
  }
}
