import fc from 'fast-check';
import t from 'tap';
import { type AllocatorState, SubnetAllocator } from './allocator.js';

t.test('allocation cases', async (t) => {
  const cases: Array<{
    name: string;
    opts?: ConstructorParameters<typeof SubnetAllocator>[0];
    node: string;
    state: AllocatorState;
    want?: string[];
    wantErr?: string;
  }> = [
    {
      name: 'first node gets the first /24 of the k3s default',
      node: 'a',
      state: { allocations: {} },
      want: ['10.42.0.0/24'],
    },
    {
      name: 'a node keeps what it holds',
      opts: { clusterCidr: '198.18.0.0/16' },
      node: 'b',
      state: { allocations: { a: ['198.18.0.0/24'], b: ['198.18.7.0/24'] } },
      want: ['198.18.7.0/24'],
    },
    {
      name: 'lowest free subnet',
      opts: { clusterCidr: '198.18.0.0/16' },
      node: 'c',
      state: {
        allocations: new Map([
          ['a', ['198.18.0.0/24']],
          ['b', ['198.18.2.0/24']],
        ]),
      },
      want: ['198.18.1.0/24'],
    },
    {
      name: 'released subnets are reused last',
      opts: { clusterCidr: '198.18.0.0/16' },
      node: 'c',
      state: { allocations: { a: ['198.18.0.0/24'] }, released: [{ cidr: '198.18.1.0/24', node: 'b' }] },
      want: ['198.18.2.0/24'],
    },
    {
      name: 'a returning node gets its old subnet back',
      opts: { clusterCidr: '198.18.0.0/16' },
      node: 'b',
      state: { allocations: { a: ['198.18.0.0/24'] }, released: [{ cidr: '198.18.1.0/24', node: 'b' }] },
      want: ['198.18.1.0/24'],
    },
    {
      name: 'when nothing unused is left, the oldest release',
      opts: { clusterCidr: '198.18.0.0/22' },
      node: 'e',
      state: {
        allocations: { a: ['198.18.0.0/24'], d: ['198.18.3.0/24'] },
        released: [
          { cidr: '198.18.2.0/24', node: 'c' },
          { cidr: '198.18.1.0/24', node: 'b' },
        ],
      },
      want: ['198.18.2.0/24'],
    },
    {
      name: 'exhaustion is a clear error',
      opts: { clusterCidr: '198.18.0.0/23' },
      node: 'c',
      state: { allocations: { a: ['198.18.0.0/24'], b: ['198.18.1.0/24'] } },
      wantErr: 'VIPMESH_HOSTGW_SUBNETS_EXHAUSTED',
    },
    {
      name: 'node-cidr-mask-size',
      opts: { clusterCidr: '198.18.0.0/16', nodeCidrMaskSize: 26 },
      node: 'b',
      state: { allocations: { a: ['198.18.0.0/26'] } },
      want: ['198.18.0.64/26'],
    },
    {
      name: 'dual stack gives one per family, in the order given',
      opts: { clusterCidr: ['198.18.0.0/16', '2001:db8:42::/56'] },
      node: 'b',
      state: { allocations: { a: ['198.18.0.0/24', '2001:db8:42::/64'] } },
      want: ['198.18.1.0/24', '2001:db8:42:1::/64'],
    },
    {
      name: 'dual stack added later keeps the IPv4 subnet',
      opts: { clusterCidr: '198.18.0.0/16,2001:db8:42::/56' },
      node: 'a',
      state: { allocations: { a: ['198.18.5.0/24'] } },
      want: ['198.18.5.0/24', '2001:db8:42::/64'],
    },
    {
      name: 'a subnet held twice is inconsistent',
      opts: { clusterCidr: '198.18.0.0/16' },
      node: 'c',
      state: { allocations: { a: ['198.18.0.0/24'], b: ['198.18.0.0/24'] } },
      wantErr: 'VIPMESH_HOSTGW_ALLOCATOR_INCONSISTENT',
    },
    {
      name: 'a subnet outside the cluster CIDR is inconsistent',
      opts: { clusterCidr: '198.18.0.0/16' },
      node: 'c',
      state: { allocations: { a: ['10.42.0.0/24'] } },
      wantErr: 'VIPMESH_HOSTGW_ALLOCATOR_INCONSISTENT',
    },
    {
      name: 'a subnet of the wrong size is inconsistent',
      opts: { clusterCidr: '198.18.0.0/16' },
      node: 'c',
      state: { allocations: { a: ['198.18.0.0/25'] } },
      wantErr: 'VIPMESH_HOSTGW_ALLOCATOR_INCONSISTENT',
    },
  ];
  for (const c of cases) {
    const alloc = new SubnetAllocator(c.opts);
    if (c.wantErr !== undefined) t.throws(() => alloc.allocate(c.node, c.state), { code: c.wantErr }, c.name);
    else t.same(alloc.allocate(c.node, c.state), c.want, c.name);
  }
});

t.test('bad configuration', async (t) => {
  for (const opts of [
    { clusterCidr: '198.18.0.1/16' },
    { clusterCidr: 'nope' },
    { clusterCidr: '198.18.0.0/16', nodeCidrMaskSize: 8 },
    { clusterCidr: '198.18.0.0/16', nodeCidrMaskSize: 33 },
    { clusterCidr: ['198.18.0.0/16', '198.19.0.0/16'] },
    { clusterCidr: [] as string[] },
  ]) {
    t.throws(() => new SubnetAllocator(opts), { code: 'VIPMESH_HOSTGW_BAD_CIDR' }, JSON.stringify(opts));
  }
  const a = new SubnetAllocator({ clusterCidr: '198.18.0.0/16' });
  t.equal(a.capacity(4), 256n);
  t.equal(a.capacity(6), 0n);
});

t.test('release appends to released and frees the subnet', async (t) => {
  const a = new SubnetAllocator({ clusterCidr: '198.18.0.0/16' });
  const s0 = { allocations: { a: ['198.18.0.0/24'], b: ['198.18.1.0/24'] } };
  const s1 = a.release('a', s0);
  t.same([...s1.allocations.keys()], ['b']);
  t.same(s1.released, [{ cidr: '198.18.0.0/24', node: 'a' }]);
  t.same(s0.allocations.a, ['198.18.0.0/24'], 'input untouched');
  t.same(a.allocate('c', s1), ['198.18.2.0/24']);
});

t.test('property: allocating node after node never hands out a subnet twice, and is stable', async (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ node: fc.integer({ min: 0, max: 40 }), release: fc.boolean() }), {
        maxLength: 120,
      }),
      (steps) => {
        const alloc = new SubnetAllocator({ clusterCidr: ['198.18.0.0/20', '2001:db8:42::/60'] });
        let state: { allocations: Map<string, string[]>; released: { cidr: string; node?: string }[] } = {
          allocations: new Map(),
          released: [],
        };
        for (const s of steps) {
          const node = `n${s.node}`;
          if (s.release) {
            state = alloc.release(node, state);
            continue;
          }
          let got: string[];
          try {
            got = alloc.allocate(node, state);
          } catch (err) {
            if ((err as { code?: string }).code !== 'VIPMESH_HOSTGW_SUBNETS_EXHAUSTED') throw err;
            if (state.allocations.size < 16) return false;
            continue;
          }
          if (got.length !== 2) return false;
          const again = alloc.allocate(node, {
            ...state,
            allocations: new Map(state.allocations).set(node, got),
          });
          if (again.join() !== got.join()) return false;
          state.allocations.set(node, got);
        }
        const all = [...state.allocations.values()].flat();
        return new Set(all).size === all.length;
      },
    ),
  );
  t.pass('no duplicates');
});
