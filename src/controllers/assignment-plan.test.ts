import t from 'tap';
import { type LbEndpoint, VIP_INTERFACES } from '../api/agent-protocol.js';
import type { Node, Service } from '../api/types.js';
import { pool } from '../testing/vip-pool.js';
import type { AdvertisementRule, Allocation } from '../vip-pool/index.js';
import { type AssignmentInput, planAssignment } from './assignment-plan.js';
import { rendezvousPick } from './placement.js';

const VIP = '198.51.100.10';
const lan = pool('lan', ['198.51.100.0/24']);

interface NodeOpts {
  ready?: boolean;
  labels?: Record<string, string>;
  vips?: string[];
  ifs?: Record<string, string[]>;
}

function node(name: string, o: NodeOpts = {}): Node {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: o.labels ?? {} },
    status: {
      conditions: [{ type: 'Ready', status: o.ready === false ? 'False' : 'True' }],
      ...(o.vips === undefined ? {} : { vips: o.vips }),
      ...(o.ifs === undefined ? {} : { [VIP_INTERFACES]: o.ifs }),
    },
  };
}

function svc(name: string): Service {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' } };
}

function local(name: string): Service {
  return {
    ...svc(name),
    spec: { type: 'LoadBalancer', externalTrafficPolicy: 'Local', ports: [{ port: 80 }] },
  };
}

function be(ip: string, nodeName?: string, ready = true): LbEndpoint {
  return {
    ip,
    ports: [{ port: 8080, protocol: 'TCP' }],
    ready,
    ...(nodeName === undefined ? {} : { nodeName }),
  };
}

function alloc(name: string, ips: string[], poolName = 'lan'): Allocation {
  return { service: `default/${name}`, pool: poolName, ips, ports: [{ protocol: 'TCP', port: 80 }] };
}

function adv(name: string, extra: Partial<AdvertisementRule> = {}): AdvertisementRule {
  return {
    name,
    ipAddressPools: [],
    ipAddressPoolSelectors: [],
    nodeSelectors: [],
    interfaces: [],
    ...extra,
  };
}

/** A node's written VIPs, `vip%if1,if2` when announced on given interfaces only. */
function written(status: NonNullable<Node['status']>): string[] {
  const ifs = (status[VIP_INTERFACES] ?? {}) as Record<string, string[]>;
  return (status.vips ?? []).map((v) => (ifs[v] === undefined ? v : `${v}%${ifs[v].join(',')}`));
}

const everywhere = [adv('all')];

t.test('plan cases', async (t) => {
  const cases: Array<{
    name: string;
    nodes: Node[];
    services?: Service[];
    allocations?: Allocation[];
    advertisements?: AdvertisementRule[];
    last?: Record<string, string | undefined>;
    /** The backends of every Service. */
    backends?: LbEndpoint[];
    /** Node writes in order: the node and its new VIPs. */
    want: Array<[string, string[]]>;
    /** Events: the Service and the reason. */
    wantEvents: Array<[string, string]>;
  }> = [
    {
      name: 'a VIP stays on its Ready holder: no write, and no event on the first pass after a start',
      nodes: [node('n1'), node('n2', { vips: [VIP] }), node('n3')],
      want: [],
      wantEvents: [],
    },
    {
      name: 'a new VIP goes to its rendezvous pick',
      nodes: [node('n1'), node('n2'), node('n3')],
      want: [[rendezvousPick(VIP, ['n1', 'n2', 'n3'])!, [VIP]]],
      wantEvents: [['web', 'nodeAssigned']],
    },
    {
      name: "a NotReady holder's VIP moves to a Ready node, which is written first",
      nodes: [node('n1'), node('n2', { ready: false, vips: [VIP] }), node('n3')],
      last: { [VIP]: 'n2' },
      want: [
        [rendezvousPick(VIP, ['n1', 'n3'])!, [VIP]],
        ['n2', []],
      ],
      wantEvents: [['web', 'nodeAssigned']],
    },
    {
      name: 'no Ready node may announce: unplaceable, a Warning',
      nodes: [node('n1', { ready: false })],
      want: [],
      wantEvents: [['web', 'NoAnnouncer']],
    },
    {
      name: 'still unplaceable as on the last pass: no new event',
      nodes: [node('n1', { ready: false })],
      last: { [VIP]: undefined },
      want: [],
      wantEvents: [],
    },
    {
      name: 'L2Advertisement nodeSelectors: a holder no longer selected loses the VIP to one that is',
      nodes: [
        node('n1', { labels: { zone: 'left' }, vips: [VIP] }),
        node('n2', { labels: { zone: 'right' } }),
      ],
      advertisements: [adv('right', { nodeSelectors: [{ matchLabels: { zone: 'right' } }] })],
      last: { [VIP]: 'n1' },
      want: [
        ['n2', [VIP]],
        ['n1', []],
      ],
      wantEvents: [['web', 'nodeAssigned']],
    },
    {
      name: 'an advertisement for another pool does not let a node announce',
      nodes: [node('n1')],
      advertisements: [adv('other', { ipAddressPools: ['wan'] })],
      want: [],
      wantEvents: [['web', 'NoAnnouncer']],
    },
    {
      name: "interfaces: the VIP is announced on the advertisement's interfaces only",
      nodes: [node('n1')],
      advertisements: [adv('eth1', { interfaces: ['eth1'] })],
      want: [['n1', [`${VIP}%eth1`]]],
      wantEvents: [['web', 'nodeAssigned']],
    },
    {
      name: 'interfaces no longer restricted: vipInterfaces cleared, the VIP kept without an event',
      nodes: [node('n1', { vips: [VIP], ifs: { [VIP]: ['eth1'] } })],
      last: { [VIP]: 'n1' },
      want: [['n1', [VIP]]],
      wantEvents: [],
    },
    {
      name: 'an allocation of a Service that is gone, or of an unknown pool, is not announced',
      nodes: [node('n1', { vips: [VIP, '198.51.100.11'] })],
      allocations: [alloc('gone', [VIP]), alloc('web', ['198.51.100.11'], 'nopool')],
      last: { [VIP]: 'n1', '198.51.100.11': 'n1' },
      want: [['n1', []]],
      wantEvents: [],
    },
    {
      name: 'a shared VIP: placed once, one event per Service',
      nodes: [node('n1')],
      services: [svc('dns-tcp'), svc('dns-udp')],
      allocations: [alloc('dns-tcp', [VIP]), alloc('dns-udp', [VIP])],
      want: [['n1', [VIP]]],
      wantEvents: [
        ['dns-tcp', 'nodeAssigned'],
        ['dns-udp', 'nodeAssigned'],
      ],
    },
    {
      name: 'L2Advertisement serviceSelectors: a Service it does not select is not announced',
      nodes: [node('n1')],
      advertisements: [adv('public', { serviceSelectors: [{ matchLabels: { exposure: 'public' } }] })],
      want: [],
      wantEvents: [['web', 'NoAnnouncer']],
    },
    {
      name: 'serviceSelectors: of two Services in one pool, only the selected one is announced',
      nodes: [node('n1')],
      advertisements: [adv('public', { serviceSelectors: [{ matchLabels: { exposure: 'public' } }] })],
      services: [
        { ...svc('web'), metadata: { name: 'web', namespace: 'default', labels: { exposure: 'public' } } },
        svc('intranet'),
      ],
      allocations: [alloc('web', [VIP]), alloc('intranet', ['198.51.100.11'])],
      want: [['n1', [VIP]]],
      wantEvents: [
        ['web', 'nodeAssigned'],
        ['intranet', 'NoAnnouncer'],
      ],
    },
    {
      name: 'two nodes list one VIP (a crash between two writes): the Ready one keeps it',
      nodes: [node('n1', { ready: false, vips: [VIP] }), node('n2', { vips: [VIP] })],
      want: [['n1', []]],
      wantEvents: [],
    },
    {
      name: 'Local: the VIP goes to the node with a ready local endpoint',
      nodes: [node('n1', { vips: [VIP] }), node('n2'), node('n3')],
      services: [local('web')],
      backends: [be('198.51.100.22', 'n2'), be('198.51.100.23', 'n3', false), be('198.51.100.50')],
      last: { [VIP]: 'n1' },
      want: [
        ['n2', [VIP]],
        ['n1', []],
      ],
      wantEvents: [['web', 'nodeAssigned']],
    },
    {
      name: 'Local with endpoints on no node: placed as Cluster',
      nodes: [node('n1', { vips: [VIP] }), node('n2')],
      services: [local('web')],
      backends: [be('198.51.100.50')],
      last: { [VIP]: 'n1' },
      want: [],
      wantEvents: [],
    },
    {
      name: 'Cluster ignores where the endpoints run',
      nodes: [node('n1', { vips: [VIP] }), node('n2')],
      backends: [be('198.51.100.22', 'n2')],
      last: { [VIP]: 'n1' },
      want: [],
      wantEvents: [],
    },
    {
      name: 'the holder reported it does not serve the Service: another node takes it',
      nodes: [node('n1', { vips: [VIP] }), node('n2')],
      services: [{ ...svc('web'), status: { endpointHealth: { notServing: ['n1'] } } }],
      last: { [VIP]: 'n1' },
      want: [
        ['n2', [VIP]],
        ['n1', []],
      ],
      wantEvents: [['web', 'nodeAssigned']],
    },
  ];
  for (const c of cases) {
    const input: AssignmentInput = {
      nodes: c.nodes,
      services: c.services ?? [svc('web')],
      allocations: c.allocations ?? [alloc('web', [VIP])],
      pools: [lan],
      advertisements: c.advertisements ?? everywhere,
      last: new Map(Object.entries(c.last ?? {})),
      backends: () => c.backends ?? [],
    };
    const plan = planAssignment(input);
    t.same(
      plan.writes.map((w) => [w.node.metadata.name, written(w.status)]),
      c.want,
      `${c.name}: writes`,
    );
    t.same(
      plan.events.map((e) => [e.involved.metadata.name, e.reason]),
      c.wantEvents,
      `${c.name}: events`,
    );
  }
});

t.test('changes say where a VIP went and why; placed is the next pass', async (t) => {
  const base = {
    services: [svc('web')],
    allocations: [alloc('web', [VIP])],
    pools: [lan],
    advertisements: [adv('n1-only', { nodeSelectors: [{ matchLabels: { name: 'n1' } }] })],
  };
  const moved = planAssignment({
    ...base,
    nodes: [node('n1', { labels: { name: 'n1' } }), node('n2', { vips: [VIP] })],
    last: new Map([[VIP, 'n2']]),
  });
  t.same(moved.changes, [
    { vip: VIP, node: 'n1', reason: 'moved', message: `announcing ${VIP} from node n1 (moved from n2)` },
  ]);
  t.same(moved.events[0], {
    involved: svc('web'),
    reason: 'nodeAssigned',
    message: `announcing ${VIP} from node n1 (moved from n2)`,
    type: 'Normal',
  });
  t.same([...moved.placed], [[VIP, 'n1']]);
  t.same(moved.writes[0]!.status.conditions, node('n1').status!.conditions, 'the rest of the status kept');
  const none = planAssignment({ ...base, nodes: [node('n2')], last: moved.placed });
  t.same(none.events[0], {
    involved: svc('web'),
    reason: 'NoAnnouncer',
    message: `no Ready node may announce ${VIP} (check the L2Advertisements' nodeSelectors)`,
    type: 'Warning',
  });
  t.same([...none.placed], [[VIP, undefined]]);
  const gone = planAssignment({ ...base, allocations: [], nodes: [node('n1')], last: moved.placed });
  t.equal(gone.placed.size, 0, 'a VIP no longer allocated is forgotten');
});
