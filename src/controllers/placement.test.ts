import fc from 'fast-check';
import t from 'tap';
import { placeVips, rendezvousPick, type VipPlacement } from './placement.js';

const nodes = ['n1', 'n2', 'n3'];
const all = new Set(nodes);

t.test('case table', async (t) => {
  const cases: Array<{
    name: string;
    vips: VipPlacement[];
    ready: string[];
    cordoned?: string[];
    want: Array<[string | undefined, string]>;
  }> = [
    {
      name: 'a held VIP stays on its Ready holder',
      vips: [{ vip: '198.51.100.100', eligible: nodes, current: 'n3' }],
      ready: nodes,
      want: [['n3', 'kept']],
    },
    {
      name: 'a VIP whose holder is NotReady moves to a Ready node',
      vips: [{ vip: '198.51.100.100', eligible: nodes, current: 'n3' }],
      ready: ['n1', 'n2'],
      want: [[rendezvousPick('198.51.100.100', ['n1', 'n2']), 'moved']],
    },
    {
      name: 'a holder no longer allowed by the L2Advertisement loses the VIP',
      vips: [{ vip: '198.51.100.100', eligible: ['n1'], current: 'n2' }],
      ready: nodes,
      want: [['n1', 'moved']],
    },
    {
      name: 'no Ready eligible node: unplaceable',
      vips: [{ vip: '2001:db8::100', eligible: ['n2'] }],
      ready: ['n1'],
      want: [[undefined, 'unplaceable']],
    },
    {
      name: 'a new VIP goes to its rendezvous pick',
      vips: [{ vip: '198.51.100.101', eligible: nodes }],
      ready: nodes,
      want: [[rendezvousPick('198.51.100.101', nodes), 'placed']],
    },
    {
      name: 'Local: only a node with a local endpoint may hold the VIP; the holder without one loses it',
      vips: [{ vip: '198.51.100.100', eligible: nodes, current: 'n1', local: ['n3'] }],
      ready: nodes,
      want: [['n3', 'moved']],
    },
    {
      name: 'Local: the holder with a local endpoint keeps it',
      vips: [{ vip: '198.51.100.100', eligible: nodes, current: 'n2', local: ['n2', 'n3'] }],
      ready: nodes,
      want: [['n2', 'kept']],
    },
    {
      name: 'Local: the only node with an endpoint is NotReady: unplaceable',
      vips: [{ vip: '198.51.100.100', eligible: nodes, current: 'n3', local: ['n3'] }],
      ready: ['n1', 'n2'],
      want: [[undefined, 'unplaceable']],
    },
    {
      name: 'a holder that does not serve the Service is passed over',
      vips: [{ vip: '198.51.100.100', eligible: nodes, current: 'n1', avoid: ['n1', 'n2'] }],
      ready: nodes,
      want: [['n3', 'moved']],
    },
    {
      name: 'no node serves it: the holder keeps it (no one else would do better)',
      vips: [{ vip: '198.51.100.100', eligible: nodes, current: 'n1', avoid: nodes }],
      ready: nodes,
      want: [['n1', 'kept']],
    },
    {
      name: 'Local and not serving: the other local node',
      vips: [{ vip: '198.51.100.100', eligible: nodes, current: 'n2', local: ['n2', 'n3'], avoid: ['n2'] }],
      ready: nodes,
      want: [['n3', 'moved']],
    },
    {
      name: 'a cordoned holder keeps its VIP',
      vips: [{ vip: '198.51.100.100', eligible: nodes, current: 'n2' }],
      ready: nodes,
      cordoned: ['n2'],
      want: [['n2', 'kept']],
    },
    {
      name: 'a new VIP never goes to a cordoned node',
      vips: [{ vip: '198.51.100.101', eligible: nodes }],
      ready: nodes,
      cordoned: [rendezvousPick('198.51.100.101', nodes)!],
      want: [
        [
          rendezvousPick(
            '198.51.100.101',
            nodes.filter((n) => n !== rendezvousPick('198.51.100.101', nodes)),
          ),
          'placed',
        ],
      ],
    },
    {
      name: "a lost holder's VIP skips the cordoned nodes; only cordoned ones left: unplaceable",
      vips: [
        { vip: '198.51.100.100', eligible: nodes, current: 'n1' },
        { vip: '198.51.100.102', eligible: ['n1', 'n2'], current: 'n1' },
      ],
      ready: ['n2', 'n3'],
      cordoned: ['n2'],
      want: [
        ['n3', 'moved'],
        [undefined, 'unplaceable'],
      ],
    },
  ];
  for (const c of cases) {
    const got = placeVips(c.vips, new Set(c.ready), new Set(c.cordoned ?? [])).map((r) => [r.node, r.reason]);
    t.same(got, c.want, c.name);
  }
});

const vipArb = fc.uniqueArray(
  fc.integer({ min: 1, max: 254 }).map((i) => `198.51.100.${i}`),
  { minLength: 1, maxLength: 100 },
);

t.test('a node dying moves only its VIPs, and spreads them', async () => {
  fc.assert(
    fc.property(vipArb, fc.constantFrom(...nodes), (vips, dead) => {
      const before = placeVips(
        vips.map((vip) => ({ vip, eligible: nodes })),
        all,
      );
      const survivors = new Set(nodes.filter((n) => n !== dead));
      const after = placeVips(
        before.map((r) => ({ vip: r.vip, eligible: nodes, current: r.node })),
        survivors,
      );
      return after.every((r, i) => {
        const was = before[i]!.node;
        if (was === dead) return r.node !== dead && r.node !== undefined;
        return r.node === was && r.reason === 'kept';
      });
    }),
  );
  // Spread: 300 VIPs on 3 nodes, kill one: its VIPs land on both survivors.
  const vips = Array.from({ length: 250 }, (_, i) => `198.51.100.${i + 1}`);
  const before = placeVips(
    vips.map((vip) => ({ vip, eligible: nodes })),
    all,
  );
  const after = placeVips(
    before.map((r) => ({ vip: r.vip, eligible: nodes, current: r.node })),
    new Set(['n1', 'n2']),
  );
  const moved = after.filter((r) => r.reason === 'moved').map((r) => r.node);
  t.ok(moved.includes('n1') && moved.includes('n2'), 'the dead node’s VIPs went to both survivors');
});

t.test('a node joining moves nothing', async () => {
  fc.assert(
    fc.property(vipArb, (vips) => {
      const before = placeVips(
        vips.map((vip) => ({ vip, eligible: ['n1', 'n2'] })),
        new Set(['n1', 'n2']),
      );
      const after = placeVips(
        before.map((r) => ({ vip: r.vip, eligible: nodes, current: r.node })),
        all,
      );
      return after.every((r, i) => r.node === before[i]!.node);
    }),
  );
});

t.test('placement is deterministic and independent of node order', async () => {
  fc.assert(
    fc.property(vipArb, (vips) => {
      const a = placeVips(
        vips.map((vip) => ({ vip, eligible: nodes })),
        all,
      );
      const b = placeVips(
        vips.map((vip) => ({ vip, eligible: [...nodes].reverse() })),
        all,
      );
      return JSON.stringify(a) === JSON.stringify(b);
    }),
  );
});
