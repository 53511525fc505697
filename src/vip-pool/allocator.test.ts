import t from 'tap';
import { pool, svc } from '../testing/vip-pool.js';
import { type Allocation, Allocator } from './allocator.js';
import { Codes } from './codes.js';
import type { AddressPool, NamespaceInfo, ServiceRequest } from './types.js';

interface Case {
  name: string;
  pools: AddressPool[];
  namespaces?: NamespaceInfo[];
  /** Assigned in order. */
  services: ServiceRequest[];
  /** Per service: the addresses, or the error code. */
  want: Array<string[] | { code: string }>;
  /** The pool each successful assignment came from (same order as the successes). */
  wantPools?: string[];
}

const tcp = (port: number) => ({ protocol: 'TCP' as const, port });
const udp = (port: number) => ({ protocol: 'UDP' as const, port });
const err = (code: string) => ({ code });
const v4 = pool('v4', ['198.51.100.0/30']);
const dual = pool('dual', ['198.51.100.0/30', '2001:db8::/64']);

const cases: Case[] = [
  {
    name: 'lowest address first, then the next; a full pool is an error',
    pools: [v4],
    services: ['a', 'b', 'c', 'd', 'e'].map((n) => svc(n)),
    want: [['198.51.100.0'], ['198.51.100.1'], ['198.51.100.2'], ['198.51.100.3'], err(Codes.POOL_EXHAUSTED)],
  },
  {
    name: 'ranges are used in the order they are written',
    pools: [pool('p', ['198.51.100.10-198.51.100.11', '198.51.100.1'])],
    services: ['a', 'b', 'c', 'd'].map((n) => svc(n)),
    want: [['198.51.100.10'], ['198.51.100.11'], ['198.51.100.1'], err(Codes.POOL_EXHAUSTED)],
  },
  {
    name: 'avoidBuggyIPs skips .255 and .0',
    pools: [pool('p', ['198.51.100.254-198.51.101.1'], { avoidBuggyIPs: true })],
    services: ['a', 'b', 'c'].map((n) => svc(n)),
    want: [['198.51.100.254'], ['198.51.101.1'], err(Codes.POOL_EXHAUSTED)],
  },
  {
    name: 'pinning: the exact address, then a clear error for one outside every pool or avoided',
    pools: [pool('p', ['198.51.100.0/24'], { avoidBuggyIPs: true })],
    services: [
      svc('a', { requestedIPs: ['198.51.100.77'] }),
      svc('b', { requestedIPs: ['203.0.113.1'] }),
      svc('c', { requestedIPs: ['198.51.100.255'] }),
      svc('d'),
    ],
    want: [['198.51.100.77'], err(Codes.IP_OUTSIDE_POOLS), err(Codes.IP_AVOIDED), ['198.51.100.1']],
  },
  {
    name: 'pinning into a pool that is not autoAssign works; automatic assignment never uses it',
    pools: [pool('manual', ['198.51.100.0/30'], { autoAssign: false })],
    services: [svc('a', { requestedIPs: ['198.51.100.2'] }), svc('b'), svc('c', { pool: 'manual' })],
    want: [['198.51.100.2'], err(Codes.NO_POOL), ['198.51.100.0']],
  },
  {
    name: 'the requested pool must exist and hold the pinned address',
    pools: [v4, pool('other', ['198.51.100.8/30'])],
    services: [
      svc('a', { pool: 'nope' }),
      svc('b', { pool: 'other', requestedIPs: ['198.51.100.1'] }),
      svc('c', { pool: 'other' }),
      svc('d', { pool: 'nope', requestedIPs: ['198.51.100.1'] }),
    ],
    want: [err(Codes.POOL_NOT_FOUND), err(Codes.IP_WRONG_POOL), ['198.51.100.8'], err(Codes.POOL_NOT_FOUND)],
  },
  {
    name: 'serviceAllocation priority first (lower first), then pool name; full pools are skipped',
    pools: [
      pool('zz-prio', ['198.51.100.16/31'], {
        serviceAllocation: { priority: 5, namespaces: [], namespaceSelectors: [], serviceSelectors: [] },
      }),
      pool('b', ['198.51.100.32/32']),
      pool('a', ['198.51.100.48/32']),
    ],
    services: ['s1', 's2', 's3', 's4', 's5'].map((n) => svc(n)),
    want: [
      ['198.51.100.16'],
      ['198.51.100.17'],
      ['198.51.100.48'],
      ['198.51.100.32'],
      err(Codes.POOL_EXHAUSTED),
    ],
    wantPools: ['zz-prio', 'zz-prio', 'a', 'b'],
  },
  {
    name: 'pools with a serviceAllocation come before pools without one; priority 0 means none',
    pools: [
      pool('a', ['198.51.100.0/32']),
      pool('m-zero', ['198.51.100.8/32'], {
        serviceAllocation: { priority: 0, namespaces: [], namespaceSelectors: [], serviceSelectors: [] },
      }),
      pool('z-seven', ['198.51.100.16/32'], {
        serviceAllocation: { priority: 7, namespaces: [], namespaceSelectors: [], serviceSelectors: [] },
      }),
    ],
    services: ['s1', 's2', 's3'].map((n) => svc(n)),
    want: [['198.51.100.16'], ['198.51.100.8'], ['198.51.100.0']],
    wantPools: ['z-seven', 'm-zero', 'a'],
  },
  {
    name: 'namespaces, namespace selectors and service selectors restrict a pool',
    pools: [
      pool('prod', ['198.51.100.0/31'], {
        serviceAllocation: {
          namespaces: ['prod'],
          namespaceSelectors: [{ matchLabels: { tier: 'gold' } }],
          serviceSelectors: [{ matchExpressions: [{ key: 'app', operator: 'Exists' }] }],
        },
      }),
      pool('rest', ['198.51.100.8/31']),
    ],
    namespaces: [{ name: 'shop', labels: { tier: 'gold' } }],
    services: [
      svc('prod/web', { labels: { app: 'web' } }),
      svc('shop/cart', { labels: { app: 'cart' } }),
      svc('prod/nolabel'),
      svc('dev/web', { labels: { app: 'web' } }),
      svc('dev/pinned', { labels: { app: 'x' }, requestedIPs: ['198.51.100.1'] }),
      svc('dev/asks', { pool: 'prod', labels: { app: 'x' } }),
    ],
    want: [
      ['198.51.100.0'],
      ['198.51.100.1'],
      ['198.51.100.8'],
      ['198.51.100.9'],
      err(Codes.POOL_NOT_ALLOWED),
      err(Codes.POOL_NOT_ALLOWED),
    ],
  },
  {
    name: 'sharing: same key and disjoint ports share; TCP/53 and UDP/53 may share',
    pools: [v4],
    services: [
      svc('dns-tcp', { sharingKey: 'dns', ports: [tcp(53)], requestedIPs: ['198.51.100.2'] }),
      svc('dns-udp', { sharingKey: 'dns', ports: [udp(53)], requestedIPs: ['198.51.100.2'] }),
      svc('dns-again', { sharingKey: 'dns', ports: [udp(53)], requestedIPs: ['198.51.100.2'] }),
      svc('other-key', { sharingKey: 'web', ports: [tcp(80)], requestedIPs: ['198.51.100.2'] }),
      svc('no-key', { ports: [tcp(80)], requestedIPs: ['198.51.100.2'] }),
    ],
    want: [
      ['198.51.100.2'],
      ['198.51.100.2'],
      err(Codes.IP_IN_USE),
      err(Codes.IP_IN_USE),
      err(Codes.IP_IN_USE),
    ],
  },
  {
    name: "sharing: a keyed Service without a pinned address joins its key's address when ports allow",
    pools: [v4],
    services: [
      svc('web', { sharingKey: 'k', ports: [tcp(80)] }),
      svc('web-tls', { sharingKey: 'k', ports: [tcp(443)] }),
      svc('web-again', { sharingKey: 'k', ports: [tcp(80)] }),
      svc('plain'),
    ],
    want: [['198.51.100.0'], ['198.51.100.0'], ['198.51.100.1'], ['198.51.100.2']],
  },
  {
    name: 'a held address is not shared with a Service without the key, even unpinned',
    pools: [pool('one', ['198.51.100.9'])],
    services: [svc('a', { sharingKey: 'k' }), svc('b', { ports: [tcp(81)] })],
    want: [['198.51.100.9'], err(Codes.POOL_EXHAUSTED)],
  },
  {
    name: 'dual stack: RequireDualStack, PreferDualStack, family order and single IPv6',
    pools: [dual, pool('v4only', ['198.51.100.64/30'], { autoAssign: false })],
    services: [
      svc('req', { ipFamilyPolicy: 'RequireDualStack' }),
      svc('v6first', { ipFamilyPolicy: 'PreferDualStack', ipFamilies: [6, 4] }),
      svc('v6', { ipFamilies: [6] }),
      svc('prefer-v4only', { ipFamilyPolicy: 'PreferDualStack', pool: 'v4only' }),
      svc('require-v4only', { ipFamilyPolicy: 'RequireDualStack', pool: 'v4only' }),
      svc('v6-v4only', { ipFamilies: [6], pool: 'v4only' }),
    ],
    want: [
      ['198.51.100.0', '2001:db8::'],
      ['2001:db8::1', '198.51.100.1'],
      ['2001:db8::2'],
      ['198.51.100.64'],
      err(Codes.FAMILY_UNAVAILABLE),
      err(Codes.FAMILY_UNAVAILABLE),
    ],
  },
  {
    name: 'an IPv6-only pool serves a Service that names no family',
    pools: [pool('v6', ['2001:db8::ff-2001:db8::100'])],
    services: [svc('a'), svc('b'), svc('c')],
    want: [['2001:db8::ff'], ['2001:db8::100'], err(Codes.POOL_EXHAUSTED)],
  },
  {
    name: 'dual-stack pinning: both addresses from one pool',
    pools: [dual, pool('other6', ['2001:db8:1::/64'])],
    services: [
      svc('ok', { ipFamilyPolicy: 'RequireDualStack', requestedIPs: ['198.51.100.3', '2001:DB8::0:7'] }),
      svc('split', { ipFamilyPolicy: 'RequireDualStack', requestedIPs: ['198.51.100.2', '2001:db8:1::1'] }),
      svc('wrongfam', { ipFamilies: [6], requestedIPs: ['198.51.100.1'] }),
    ],
    want: [['198.51.100.3', '2001:db8::7'], err(Codes.IP_POOLS_DIFFER), err(Codes.FAMILY_MISMATCH)],
  },
  {
    name: 'PreferDualStack takes both families from the pool that has both, not the first by name',
    pools: [
      pool('a-v4', ['198.51.100.0/30']),
      pool('b-v6', ['2001:db8::/126']),
      pool('c-dual', ['198.51.100.64/30', '2001:db8:1::/126']),
    ],
    services: [
      svc('prefer', { ipFamilyPolicy: 'PreferDualStack' }),
      svc('prefer-v6-first', { ipFamilyPolicy: 'PreferDualStack', ipFamilies: [6, 4] }),
      svc('prefer-v4-only', { ipFamilyPolicy: 'PreferDualStack', ipFamilies: [4] }),
      svc('prefer-v6-only', { ipFamilyPolicy: 'PreferDualStack', ipFamilies: [6] }),
    ],
    want: [
      ['198.51.100.64', '2001:db8:1::'],
      ['2001:db8:1::1', '198.51.100.65'],
      ['198.51.100.0'],
      ['2001:db8::'],
    ],
    wantPools: ['c-dual', 'c-dual', 'a-v4', 'b-v6'],
  },
  {
    name: 'PreferDualStack without a dual-stack pool: the first pool with its first family',
    pools: [pool('a-v6', ['2001:db8::/126']), pool('b-v4', ['198.51.100.0/30'])],
    services: [
      svc('prefer', { ipFamilyPolicy: 'PreferDualStack' }),
      svc('prefer-v6-first', { ipFamilyPolicy: 'PreferDualStack', ipFamilies: [6, 4] }),
    ],
    want: [['198.51.100.0'], ['2001:db8::']],
    wantPools: ['b-v4', 'a-v6'],
  },
  {
    name: 'one pinned address on a dual-stack Service is refused; without ipFamilies it is taken',
    pools: [dual],
    services: [
      svc('prefer', {
        ipFamilyPolicy: 'PreferDualStack',
        ipFamilies: [4, 6],
        requestedIPs: ['198.51.100.1'],
      }),
      svc('require', {
        ipFamilyPolicy: 'RequireDualStack',
        ipFamilies: [4, 6],
        requestedIPs: ['198.51.100.1'],
      }),
      svc('prefer-unset', { ipFamilyPolicy: 'PreferDualStack', requestedIPs: ['198.51.100.1'] }),
    ],
    want: [err(Codes.FAMILY_MISMATCH), err(Codes.FAMILY_MISMATCH), ['198.51.100.1']],
  },
  {
    name: 'externalTrafficPolicy Local: an address is shared only by Services selecting the same pods',
    pools: [v4],
    services: [
      svc('web', {
        sharingKey: 'k',
        backendKey: 'app=web',
        ports: [tcp(80)],
        requestedIPs: ['198.51.100.0'],
      }),
      svc('web-tls', {
        sharingKey: 'k',
        backendKey: 'app=web',
        ports: [tcp(443)],
        requestedIPs: ['198.51.100.0'],
      }),
      svc('db', {
        sharingKey: 'k',
        backendKey: 'app=db',
        ports: [tcp(5432)],
        requestedIPs: ['198.51.100.0'],
      }),
      svc('cluster', { sharingKey: 'k', ports: [tcp(8080)], requestedIPs: ['198.51.100.0'] }),
      svc('web-auto', { sharingKey: 'k', backendKey: 'app=web', ports: [tcp(8443)] }),
      svc('db-auto', { sharingKey: 'k', backendKey: 'app=db', ports: [tcp(5432)] }),
    ],
    want: [
      ['198.51.100.0'],
      ['198.51.100.0'],
      err(Codes.IP_IN_USE),
      err(Codes.IP_IN_USE),
      ['198.51.100.0'],
      ['198.51.100.1'],
    ],
  },
];

t.test('allocator cases', async (t) => {
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const a = new Allocator(c.pools, { namespaces: c.namespaces ?? [] });
      const gotPools: string[] = [];
      c.services.forEach((s, i) => {
        const want = c.want[i]!;
        if (Array.isArray(want)) {
          const got = a.assign(s);
          t.same(got.ips, want, `${s.namespace}/${s.name} gets ${want.join(', ')}`);
          gotPools.push(got.pool);
        } else {
          t.throws(
            () => a.assign(s),
            { code: want.code },
            `${s.namespace}/${s.name} fails with ${want.code}`,
          );
        }
      });
      if (c.wantPools) t.same(gotPools, c.wantPools);
    });
  }
});

t.test('pools are checked when the allocator is made', async (t) => {
  t.throws(() => new Allocator([pool('a', ['198.51.100.0/24']), pool('b', ['198.51.100.128/25'])]), {
    code: Codes.POOL_OVERLAP,
  });
  t.throws(() => new Allocator([pool('a', ['198.51.100.0/25']), pool('a', ['198.51.100.128/25'])]), {
    code: Codes.POOL_DUPLICATE,
  });
  t.throws(() => new Allocator([pool('a', ['198.51.100.9-198.51.100.1'])]), { code: Codes.RANGE_REVERSED });
  t.throws(() => new Allocator([pool('a', ['198.51.100.0/40'])]), { code: Codes.BAD_ADDRESS });
  t.throws(() => new Allocator([pool('a', ['198.51.100.1-2001:db8::1'])]), {
    code: Codes.RANGE_MIXED_FAMILY,
  });
  t.doesNotThrow(() => new Allocator([pool('a', ['198.51.100.0/25']), pool('b', ['198.51.100.128/25'])]));
});

t.test('release frees the address and the next Service gets it back', async (t) => {
  const a = new Allocator([v4]);
  for (const n of ['a', 'b', 'c', 'd']) a.assign(svc(n));
  t.throws(() => a.assign(svc('e')), { code: Codes.POOL_EXHAUSTED });
  t.ok(a.release('default/b'));
  t.notOk(a.release('default/b'), 'releasing twice is a no-op');
  t.same(a.assign(svc('e')).ips, ['198.51.100.1']);
  t.equal(a.lookup('default/b'), undefined);
  t.same(a.usage(), [{ pool: 'v4', size: 4n, used: 4n }]);
});

t.test('a shared address stays while one of its Services holds it', async (t) => {
  const a = new Allocator([v4]);
  a.assign(svc('t', { sharingKey: 'dns', ports: [tcp(53)], requestedIPs: ['198.51.100.0'] }));
  a.assign(svc('u', { sharingKey: 'dns', ports: [udp(53)], requestedIPs: ['198.51.100.0'] }));
  a.release('default/t');
  t.throws(() => a.assign(svc('x', { requestedIPs: ['198.51.100.0'] })), { code: Codes.IP_IN_USE });
  a.release('default/u');
  t.same(a.assign(svc('x', { requestedIPs: ['198.51.100.0'] })).ips, ['198.51.100.0']);
});

t.test('IP_IN_USE names the Service that holds the address', async (t) => {
  const a = new Allocator([v4]);
  a.assign(svc('shop/web', { requestedIPs: ['198.51.100.1'] }));
  const e = t.throws(() => a.assign(svc('x', { requestedIPs: ['198.51.100.1'] })), { code: Codes.IP_IN_USE });
  t.match((e as Error).message, /shop\/web/);
});

t.test('assign again: same answer, keeps its address while it fits, atomic on error', async (t) => {
  const a = new Allocator([v4, pool('zz', ['198.51.100.64/30'])]);
  const first = a.assign(svc('a', { ports: [tcp(80)] }));
  a.assign(svc('b'));
  t.same(a.assign(svc('a', { ports: [tcp(8080)] })), first, 'a port change keeps the address');
  t.throws(() => a.assign(svc('a', { requestedIPs: ['203.0.113.1'] })), { code: Codes.IP_OUTSIDE_POOLS });
  t.same(a.lookup('default/a'), first, 'a failed re-assignment keeps the old addresses');
  t.same(a.assign(svc('a', { requestedIPs: ['198.51.100.3'] })).ips, ['198.51.100.3'], 'a new pin moves it');
  t.same(a.assign(svc('c')).ips, ['198.51.100.0'], 'the old address is free again');
  t.same(a.assign(svc('a', { pool: 'zz' })), { ips: ['198.51.100.64'], pool: 'zz' });
});

t.test('restart: same pools and persisted allocations give the same answers', async (t) => {
  const pools = [pool('p', ['198.51.100.0/28'], { avoidBuggyIPs: true }), pool('q', ['2001:db8::/64'])];
  const a = new Allocator(pools);
  for (let i = 0; i < 6; i++) a.assign(svc(`s${i}`, i % 2 ? { ipFamilies: [6] } : {}));
  a.release('default/s2');
  a.assign(svc('shared', { sharingKey: 'k', requestedIPs: ['198.51.100.9'], ports: [udp(53)] }));
  const saved: Allocation[] = JSON.parse(JSON.stringify(a.allocations()));
  const b = new Allocator(pools, { allocations: [...saved].reverse() });
  t.same(b.rejected, []);
  t.same(b.allocations(), a.allocations(), 'the restored allocations are the saved ones');
  for (const n of ['n1', 'n2', 'n3']) t.same(b.assign(svc(n)), a.assign(svc(n)), `${n} gets the same answer`);
  t.same(
    b.assign(svc('s2b', { sharingKey: 'k', ports: [tcp(53)] })),
    a.assign(svc('s2b', { sharingKey: 'k', ports: [tcp(53)] })),
  );
});

t.test('persisted allocations the pools no longer admit are rejected, not fatal', async (t) => {
  const allocations: Allocation[] = [
    { service: 'default/a', pool: 'gone', ips: ['198.51.100.1'], ports: [tcp(80)] },
    { service: 'default/b', pool: 'p', ips: ['203.0.113.1'], ports: [tcp(80)] },
    { service: 'default/c', pool: 'p', ips: ['198.51.100.2'], ports: [tcp(80)] },
    { service: 'default/d', pool: 'p', ips: ['198.51.100.2'], ports: [tcp(80)] },
    { service: 'default/e', pool: 'p', ips: ['not-an-ip'], ports: [tcp(80)] },
  ];
  const a = new Allocator([pool('p', ['198.51.100.0/24'])], { allocations });
  t.same(
    a.rejected.map((r) => [r.allocation.service, r.error.code]),
    [
      ['default/a', Codes.POOL_NOT_FOUND],
      ['default/b', Codes.IP_OUTSIDE_POOLS],
      ['default/d', Codes.IP_IN_USE],
      ['default/e', Codes.BAD_ADDRESS],
    ],
  );
  t.same(a.lookup('default/c'), { ips: ['198.51.100.2'], pool: 'p' });
});

t.test('a Service keeps its pool when a higher-priority pool appears', async (t) => {
  const low = pool('low', ['198.51.100.0/30']);
  const a = new Allocator([low]);
  a.assign(svc('a'));
  const high = pool('high', ['198.51.100.64/30'], {
    serviceAllocation: { priority: 1, namespaces: [], namespaceSelectors: [], serviceSelectors: [] },
  });
  const b = new Allocator([low, high], { allocations: a.allocations() });
  t.same(b.assign(svc('a')), { ips: ['198.51.100.0'], pool: 'low' });
  t.same(b.assign(svc('new')).pool, 'high');
});

t.test('huge pools are never enumerated: ::/0 and an IPv6 /64 cost no more than a /24', async (t) => {
  const a = new Allocator([pool('all6', ['::/0']), pool('v4', ['198.51.100.0/24'])]);
  for (let i = 0; i < 300; i++) a.assign(svc(`s${i}`, { ipFamilies: [6] }));
  t.same(a.lookup('default/s299'), { ips: ['::12b'], pool: 'all6' });
  const [all6] = a.usage();
  t.equal(all6!.size, 1n << 128n);
  t.equal(all6!.used, 300n);
  // Release every other one; the lowest freed is reused first.
  for (let i = 0; i < 300; i += 2) a.release(`default/s${i}`);
  t.same(a.assign(svc('again', { ipFamilies: [6] })).ips, ['::']);
  t.same(a.assign(svc('again2', { ipFamilies: [6] })).ips, ['::2']);
});

t.test('a pool that is full in one family', async (t) => {
  const a = new Allocator([pool('d', ['198.51.100.7', '2001:db8::/126'])]);
  a.assign(svc('x'));
  t.throws(() => a.assign(svc('y', { ipFamilyPolicy: 'RequireDualStack' })), { code: Codes.POOL_EXHAUSTED });
  t.same(
    a.assign(svc('z', { ipFamilyPolicy: 'PreferDualStack' })).ips,
    ['2001:db8::'],
    'PreferDualStack takes what is left',
  );
});

t.test('different failures across pools give NO_POOL with every reason', async (t) => {
  const a = new Allocator([pool('full', ['198.51.100.7']), pool('v6', ['2001:db8::/120'])]);
  a.assign(svc('x'));
  const e = t.throws(() => a.assign(svc('y', { ipFamilies: [4] })), { code: Codes.NO_POOL });
  t.match((e as Error).message, /pool full has no free IPv4 address; pool v6 has no IPv4 range/);
});

t.test(
  "a keyed Service takes the lowest address it may use: a free one below its key's comes first",
  async (t) => {
    const a = new Allocator([v4]);
    a.assign(svc('plain'));
    t.same(a.assign(svc('web', { sharingKey: 'k' })).ips, ['198.51.100.1']);
    a.release('default/plain');
    t.same(
      a.assign(svc('web-tls', { sharingKey: 'k', ports: [tcp(443)] })).ips,
      ['198.51.100.0'],
      'MetalLB walks the pool from its start and takes the first address that is free or shareable',
    );
    t.same(a.assign(svc('web-alt', { sharingKey: 'k', ports: [tcp(8080)] })).ips, ['198.51.100.0']);
  },
);

t.test('the Local backend key survives a restart', async (t) => {
  const a = new Allocator([v4]);
  a.assign(svc('web', { sharingKey: 'k', backendKey: 'app=web', requestedIPs: ['198.51.100.2'] }));
  const saved: Allocation[] = JSON.parse(JSON.stringify(a.allocations()));
  t.equal(saved[0]!.backendKey, 'app=web');
  const b = new Allocator([v4], { allocations: saved });
  const e = t.throws(() =>
    b.assign(
      svc('db', { sharingKey: 'k', backendKey: 'app=db', ports: [tcp(81)], requestedIPs: ['198.51.100.2'] }),
    ),
  );
  t.match(e, { code: Codes.IP_IN_USE, message: /Local selecting app=web.*Local selecting app=db/ });
});

t.test('PreferDualStack keeps its pool when that pool still gives it an address', async (t) => {
  const pools = [pool('a-v4', ['198.51.100.0/30']), pool('b-dual', ['198.51.100.64/30', '2001:db8::/126'])];
  const a = new Allocator(pools, {
    allocations: [{ service: 'default/p', pool: 'a-v4', ips: ['198.51.100.1'], ports: [tcp(80)] }],
  });
  t.same(a.assign(svc('p', { ipFamilyPolicy: 'PreferDualStack' })), { ips: ['198.51.100.1'], pool: 'a-v4' });
  t.same(a.assign(svc('q', { ipFamilyPolicy: 'PreferDualStack' })).pool, 'b-dual');
});
