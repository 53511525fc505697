import t from 'tap';
import { parseCidr } from './cidr.js';
import type { Lease } from './lease.js';
import type { KernelRoute } from './netlink.js';
import { diffRoutes, type PlanContext, planRoutes } from './plan.js';

const ctx: PlanContext = {
  nodeName: 'n1',
  iface: 'eth0',
  ifindex: 2,
  connected: [parseCidr('198.51.100.0/24', 'c'), parseCidr('2001:db8::/64', 'c')],
  protocol: 86,
};
const lease = (node: string, podCIDRs: string[], nodeIPs: string[]): Lease => ({ node, podCIDRs, nodeIPs });

t.test('plan cases', async (t) => {
  const cases: Array<{
    name: string;
    leases: Lease[];
    want: Record<string, string>;
    refused?: Array<[string, string]>;
  }> = [
    {
      name: 'one route per other node, none for itself',
      leases: [
        lease('n1', ['198.18.1.0/24'], ['198.51.100.11']),
        lease('n2', ['198.18.2.0/24'], ['198.51.100.12']),
        lease('n3', ['198.18.3.0/24'], ['198.51.100.13']),
      ],
      want: { '198.18.2.0/24': '198.51.100.12', '198.18.3.0/24': '198.51.100.13' },
    },
    {
      name: 'dual stack routes each family via that family',
      leases: [lease('n2', ['198.18.2.0/24', '2001:db8:42:2::/64'], ['198.51.100.12', '2001:db8::12'])],
      want: { '198.18.2.0/24': '198.51.100.12', '2001:db8:42:2::/64': '2001:db8::12' },
    },
    {
      name: 'off-link node IP is refused, naming the node',
      leases: [
        lease('n2', ['198.18.2.0/24'], ['203.0.113.12']),
        lease('n3', ['198.18.3.0/24'], ['198.51.100.13']),
      ],
      want: { '198.18.3.0/24': '198.51.100.13' },
      refused: [['n2', 'VIPMESH_HOSTGW_NEXTHOP_OFFLINK']],
    },
    {
      name: 'no node IP of the family',
      leases: [lease('n2', ['198.18.2.0/24', '2001:db8:42:2::/64'], ['198.51.100.12'])],
      want: { '198.18.2.0/24': '198.51.100.12' },
      refused: [['n2', 'VIPMESH_HOSTGW_NO_NODE_IP']],
    },
    {
      name: 'overlapping subnets: the later node name loses, whatever the order given',
      leases: [
        lease('n9', ['198.18.2.0/24'], ['198.51.100.19']),
        lease('n2', ['198.18.2.0/24'], ['198.51.100.12']),
        lease('n1', ['198.18.1.0/24'], ['198.51.100.11']),
        lease('n5', ['198.18.1.0/25'], ['198.51.100.15']),
      ],
      want: { '198.18.2.0/24': '198.51.100.12' },
      refused: [
        ['n5', 'VIPMESH_HOSTGW_LEASE_CONFLICT'],
        ['n9', 'VIPMESH_HOSTGW_LEASE_CONFLICT'],
      ],
    },
    {
      name: 'malformed lease is refused alone',
      leases: [lease('n2', ['nope'], ['198.51.100.12']), lease('n3', ['198.18.3.0/24'], ['198.51.100.13'])],
      want: { '198.18.3.0/24': '198.51.100.13' },
      refused: [['n2', 'VIPMESH_HOSTGW_BAD_LEASE']],
    },
    {
      name: 'a next hop equal to a /32 address is not on-link',
      leases: [lease('n2', ['198.18.2.0/24'], ['192.0.2.1'])],
      want: {},
      refused: [['n2', 'VIPMESH_HOSTGW_NEXTHOP_OFFLINK']],
    },
  ];
  const withHost = { ...ctx, connected: [...ctx.connected, parseCidr('192.0.2.1/32', 'c')] };
  for (const c of cases) {
    const plan = planRoutes(c.leases, withHost);
    t.same(Object.fromEntries([...plan.routes].map(([k, v]) => [k, v.gateway])), c.want, c.name);
    t.same(
      plan.refused.map((r) => [r.node, r.error.code]),
      c.refused ?? [],
      `${c.name}: refusals`,
    );
  }
  const offlink = planRoutes([lease('n2', ['198.18.2.0/24'], ['203.0.113.12'])], ctx).refused[0]!.error;
  t.match(offlink.message, /node n2.*203\.0\.113\.12.*eth0.*198\.51\.100\.0\/24/);
});

t.test('diff: only vipmesh routes, replace in place, delete the unwanted', async (t) => {
  const r = (dst: string, gateway: string, extra: Partial<KernelRoute> = {}): KernelRoute => ({
    family: dst.includes(':') ? 6 : 4,
    dst,
    gateway,
    ifindex: 2,
    protocol: 86,
    table: 254,
    ...extra,
  });
  const wanted = planRoutes(
    [
      lease('n2', ['198.18.2.0/24'], ['198.51.100.12']),
      lease('n3', ['198.18.3.0/24', '2001:db8:42:3::/64'], ['198.51.100.13', '2001:db8::13']),
      lease('n4', ['198.18.4.0/24'], ['198.51.100.14']),
    ],
    ctx,
  ).routes;
  const d = diffRoutes(wanted, [
    r('198.18.2.0/24', '198.51.100.12'),
    r('198.18.3.0/24', '198.51.100.99'),
    r('2001:db8:42:3::/64', '2001:db8::13', { priority: 1024 }),
    r('198.18.4.0/24', '198.51.100.14', { priority: 50 }),
    r('198.18.9.0/24', '198.51.100.19'),
  ]);
  t.same(d.replace.map((s) => s.dst).sort(), ['198.18.3.0/24', '198.18.4.0/24']);
  t.same(d.delete.map((s) => s.dst).sort(), ['198.18.4.0/24', '198.18.9.0/24']);
  t.equal(d.unchanged, 2);
  const dup = diffRoutes(wanted, [
    r('198.18.2.0/24', '198.51.100.12'),
    r('198.18.2.0/24', '198.51.100.12', { priority: 7 }),
  ]);
  t.same(
    dup.delete.map((x) => x.priority),
    [7],
  );
});
