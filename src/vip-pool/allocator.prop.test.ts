import fc from 'fast-check';
import t from 'tap';
import { isVipmeshError } from '../errors.js';
import { pool, svc } from '../testing/vip-pool.js';
import { parseIp } from '../util/ip.js';
import { Allocator } from './allocator.js';
import { isBuggy, isEntryError, parseAddressEntry, rangeContains } from './range.js';
import type { AddressPool, ProtocolPort, ServiceRequest } from './types.js';

const POOLS: AddressPool[] = [
  pool('a', ['198.51.100.252-198.51.101.3'], { avoidBuggyIPs: true }),
  pool('b', ['2001:db8::/125', '198.51.100.40/31']),
  pool('c', ['198.51.100.16/30'], { autoAssign: false }),
];
const PINS = [
  '198.51.100.254',
  '198.51.100.255',
  '198.51.101.1',
  '2001:db8::3',
  '198.51.100.17',
  '203.0.113.5',
];
const PORTS: ProtocolPort[] = [
  { protocol: 'TCP', port: 53 },
  { protocol: 'UDP', port: 53 },
  { protocol: 'TCP', port: 80 },
];

const request = fc.record({
  n: fc.integer({ min: 0, max: 11 }),
  pin: fc.option(fc.constantFrom(...PINS), { nil: undefined }),
  key: fc.option(fc.constantFrom('k1', 'k2'), { nil: undefined }),
  ports: fc.subarray(PORTS, { minLength: 1 }),
  fam: fc.constantFrom<Partial<ServiceRequest>>(
    {},
    { ipFamilies: [6] },
    { ipFamilyPolicy: 'PreferDualStack' },
    { ipFamilyPolicy: 'RequireDualStack' },
  ),
  pool: fc.option(fc.constantFrom('a', 'b', 'c', 'zz'), { nil: undefined }),
});
type Req = typeof request extends fc.Arbitrary<infer R> ? R : never;
type Op = { op: 'assign'; r: Req } | { op: 'release'; n: number };
const op: fc.Arbitrary<Op> = fc.oneof(
  request.map((r) => ({ op: 'assign' as const, r })),
  fc.integer({ min: 0, max: 11 }).map((n) => ({ op: 'release' as const, n })),
);

function toService(r: Req): ServiceRequest {
  return svc(`s${r.n}`, {
    ...r.fam,
    ports: r.ports,
    ...(r.pin === undefined ? {} : { requestedIPs: [r.pin] }),
    ...(r.key === undefined ? {} : { sharingKey: r.key }),
    ...(r.pool === undefined ? {} : { pool: r.pool }),
  });
}

function inPool(p: AddressPool, ip: string): boolean {
  const v = parseIp(ip)!;
  if (p.avoidBuggyIPs && isBuggy(v.family, v.value)) return false;
  return p.addresses.some((text) => {
    const e = parseAddressEntry(text);
    return !isEntryError(e) && rangeContains(e.range, v.family, v.value);
  });
}

function run(a: Allocator, o: Op): string {
  if (o.op === 'release') return String(a.release(`default/s${o.n}`));
  const s = toService(o.r);
  const before = a.lookup(`default/s${o.r.n}`);
  try {
    return a.assign(s).ips.join(',');
  } catch (err) {
    if (!isVipmeshError(err)) throw err;
    if (JSON.stringify(a.lookup(`default/s${o.r.n}`)) !== JSON.stringify(before))
      throw new Error('assign was not atomic');
    return err.code;
  }
}

t.test('no address is allocated twice outside sharing, and every address is inside its pool', async (t) => {
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const a = new Allocator(POOLS);
      for (const o of ops) {
        run(a, o);
        const holders = new Map<string, Array<{ key?: string; ports: ProtocolPort[] }>>();
        for (const al of a.allocations()) {
          const p = POOLS.find((x) => x.name === al.pool)!;
          for (const ip of al.ips) {
            if (!inPool(p, ip)) return false;
            const list = holders.get(ip) ?? [];
            list.push({ ...(al.sharingKey === undefined ? {} : { key: al.sharingKey }), ports: al.ports });
            holders.set(ip, list);
          }
        }
        for (const list of holders.values()) {
          if (list.length === 1) continue;
          if (list.some((h) => h.key === undefined || h.key !== list[0]!.key)) return false;
          const seen = new Set<string>();
          for (const h of list) {
            for (const p of h.ports) {
              const k = `${p.protocol}/${p.port}`;
              if (seen.has(k)) return false;
              seen.add(k);
            }
          }
        }
        const used = a.usage().reduce((n, u) => n + u.used, 0n);
        if (used !== BigInt(holders.size)) return false;
      }
      return true;
    }),
    { numRuns: 300 },
  );
  t.pass('checked 300 random operation sequences');
});

t.test('release-then-allocate never fails on a pool that had room', async (t) => {
  const shape = fc.record({
    base: fc.integer({ min: 0, max: 0xffff_ff00 }),
    len: fc.integer({ min: 1, max: 40 }),
    avoid: fc.boolean(),
    v6: fc.boolean(),
    ops: fc.array(fc.oneof(fc.constant(-1), fc.nat(60)), { maxLength: 120 }),
  });
  fc.assert(
    fc.property(shape, ({ base, len, avoid, v6, ops }) => {
      const fmt = (n: number) =>
        v6 ? `2001:db8::${n.toString(16)}` : `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
      const start = v6 ? base % 0xffc0 : base; // keep the IPv6 range inside one 16-bit group
      const p = pool('p', [`${fmt(start)}-${fmt(start + len - 1)}`], { avoidBuggyIPs: avoid });
      const a = new Allocator([p]);
      const size = a.usage()[0]!.size;
      let next = 0;
      const held: string[] = [];
      for (const o of ops) {
        if (o >= 0 && held.length > 0) {
          const [key] = held.splice(o % held.length, 1);
          if (!a.release(key!)) return false;
          continue;
        }
        const room = a.usage()[0]!.used < size;
        const s = svc(`n${next++}`, v6 ? { ipFamilies: [6] } : {});
        try {
          a.assign(s);
          if (!room) return false;
          held.push(`default/${s.name}`);
        } catch (err) {
          if (room || !isVipmeshError(err, 'VIPMESH_POOL_EXHAUSTED')) return false;
        }
      }
      return true;
    }),
    { numRuns: 300 },
  );
  t.pass('checked 300 random pools and sequences');
});

t.test('a restart from the persisted allocations answers as the running allocator does', async (t) => {
  fc.assert(
    fc.property(fc.array(op, { maxLength: 40 }), fc.array(op, { maxLength: 40 }), (before, after) => {
      const a = new Allocator(POOLS);
      for (const o of before) run(a, o);
      const b = new Allocator(POOLS, { allocations: JSON.parse(JSON.stringify(a.allocations())) });
      if (b.rejected.length > 0) return false;
      return after.every((o) => run(a, o) === run(b, o));
    }),
    { numRuns: 200 },
  );
  t.pass('checked 200 random histories');
});
