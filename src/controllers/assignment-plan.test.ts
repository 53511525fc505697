import t from 'tap';
import { type LbEndpoint, VIP_INTERFACES } from '../api/agent-protocol.js';
import type { VipHolder } from '../api/assignments.js';
import type { Node, Service } from '../api/types.js';
import { pool } from '../testing/vip-pool.js';
import type { AdvertisementRule, Allocation } from '../vip-pool/index.js';
import { type AssignmentInput, planAssignment } from './assignment-plan.js';
import { DRAIN_ANNOTATION, rendezvousPick } from './placement.js';

const VIP = '198.51.100.10';
const lan = pool('lan', ['198.51.100.0/24']);

interface NodeOpts {
  ready?: boolean;
  labels?: Record<string, string>;
  /** The VIP list of the layout before the assignment keys (`status.vips`). */
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

function drained(n: Node): Node {
  return { ...n, metadata: { ...n.metadata, annotations: { [DRAIN_ANNOTATION]: 'true' } } };
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

/** A key written: `vip@node`, `vip@node%if1,if2` with interfaces, `vip@-` deleted. */
function written(w: { vip: string; holder: VipHolder | undefined }): string {
  if (w.holder === undefined) return `${w.vip}@-`;
  const ifs = w.holder.interfaces === undefined ? '' : `%${w.holder.interfaces.join(',')}`;
  return `${w.vip}@${w.holder.node}${ifs}`;
}

/** Stored holders from `vip: 'node'` or `vip: 'node%if1,if2'`. */
function holdersOf(h: Record<string, string>): Map<string, VipHolder> {
  return new Map(
    Object.entries(h).map(([vip, text]) => {
      const [node, ifs] = text.split('%') as [string, string | undefined];
      return [vip, ifs === undefined ? { node } : { node, interfaces: ifs.split(',') }];
    }),
  );
}

const everywhere = [adv('all')];

t.test('plan cases', async (t) => {
  // The node a new VIP .11 would go to is the one cordoned.
  const cordoned = rendezvousPick('198.51.100.11', ['n1', 'n2'])!;
  const uncordoned = cordoned === 'n1' ? 'n2' : 'n1';
  const cases: Array<{
    name: string;
    nodes: Node[];
    /** The stored holders: `vip: 'node'`, or `'node%if1,if2'`. */
    holders?: Record<string, string>;
    services?: Service[];
    allocations?: Allocation[];
    advertisements?: AdvertisementRule[];
    last?: Record<string, string | undefined>;
    /** The backends of every Service. */
    backends?: LbEndpoint[];
    /** Keys written in order (`vip@node`, `vip@node%ifs`, `vip@-` deleted). */
    want: string[];
    /** Nodes whose status VIP list (the old layout) is dropped. */
    wantLegacy?: string[];
    /** Events: the Service and the reason. */
    wantEvents: Array<[string, string]>;
  }> = [
    {
      name: 'a VIP stays on its Ready holder: no write, and no event on the first pass after a start',
      nodes: [node('n1'), node('n2'), node('n3')],
      holders: { [VIP]: 'n2' },
      want: [],
      wantEvents: [],
    },
    {
      name: 'a new VIP goes to its rendezvous pick',
      nodes: [node('n1'), node('n2'), node('n3')],
      want: [`${VIP}@${rendezvousPick(VIP, ['n1', 'n2', 'n3'])}`],
      wantEvents: [['web', 'nodeAssigned']],
    },
    {
      name: "a drained holder's VIP moves to another Ready node",
      nodes: [drained(node('n1')), node('n2'), node('n3')],
      holders: { [VIP]: 'n1' },
      last: { [VIP]: 'n1' },
      want: [`${VIP}@${rendezvousPick(VIP, ['n2', 'n3'])}`],
      wantEvents: [['web', 'nodeAssigned']],
    },
    {
      name: 'a drained node keeps a VIP no other node may hold',
      nodes: [drained(node('n1', { labels: { lan: 'a' } })), node('n2')],
      advertisements: [adv('only-a', { nodeSelectors: [{ matchLabels: { lan: 'a' } }] })],
      holders: { [VIP]: 'n1' },
      last: { [VIP]: 'n1' },
      want: [],
      wantEvents: [],
    },
    {
      name: 'a drained node is given no new VIP, even its rendezvous pick',
      nodes: [
        drained(node(rendezvousPick(VIP, ['n1', 'n2'])!)),
        node(rendezvousPick(VIP, ['n1', 'n2']) === 'n1' ? 'n2' : 'n1'),
      ],
      want: [`${VIP}@${rendezvousPick(VIP, ['n1', 'n2']) === 'n1' ? 'n2' : 'n1'}`],
      wantEvents: [['web', 'nodeAssigned']],
    },
    {
      name: "a NotReady holder's VIP moves to a Ready node: one key rewritten",
      nodes: [node('n1'), node('n2', { ready: false }), node('n3')],
      holders: { [VIP]: 'n2' },
      last: { [VIP]: 'n2' },
      want: [`${VIP}@${rendezvousPick(VIP, ['n1', 'n3'])}`],
      wantEvents: [['web', 'nodeAssigned']],
    },
    {
      name: 'cordoned (spec.unschedulable): the holder keeps its VIP, a new VIP goes elsewhere',
      nodes: [node(uncordoned), { ...node(cordoned), spec: { unschedulable: true } }],
      holders: { [VIP]: cordoned },
      last: { [VIP]: cordoned },
      services: [svc('web'), svc('api')],
      allocations: [alloc('web', [VIP]), alloc('api', ['198.51.100.11'])],
      want: [`198.51.100.11@${uncordoned}`],
      wantEvents: [['api', 'nodeAssigned']],
    },
    {
      name: 'no Ready node may announce: unplaceable, a Warning',
      nodes: [node('n1', { ready: false })],
      want: [],
      wantEvents: [['web', 'NoAnnouncer']],
    },
    {
      name: 'the holder goes NotReady and no other may announce: its key is deleted',
      nodes: [node('n1', { ready: false })],
      holders: { [VIP]: 'n1' },
      last: { [VIP]: 'n1' },
      want: [`${VIP}@-`],
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
      nodes: [node('n1', { labels: { zone: 'left' } }), node('n2', { labels: { zone: 'right' } })],
      holders: { [VIP]: 'n1' },
      advertisements: [adv('right', { nodeSelectors: [{ matchLabels: { zone: 'right' } }] })],
      last: { [VIP]: 'n1' },
      want: [`${VIP}@n2`],
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
      want: [`${VIP}@n1%eth1`],
      wantEvents: [['web', 'nodeAssigned']],
    },
    {
      name: 'interfaces no longer restricted: the key rewritten without them, the VIP kept without an event',
      nodes: [node('n1')],
      holders: { [VIP]: 'n1%eth1' },
      last: { [VIP]: 'n1' },
      want: [`${VIP}@n1`],
      wantEvents: [],
    },
    {
      name: 'an allocation of a Service that is gone, or of an unknown pool, is not announced: keys deleted',
      nodes: [node('n1')],
      holders: { [VIP]: 'n1', '198.51.100.11': 'n1' },
      allocations: [alloc('gone', [VIP]), alloc('web', ['198.51.100.11'], 'nopool')],
      last: { [VIP]: 'n1', '198.51.100.11': 'n1' },
      want: [`${VIP}@-`, '198.51.100.11@-'],
      wantEvents: [],
    },
    {
      name: 'a shared VIP: placed once, one event per Service',
      nodes: [node('n1')],
      services: [svc('dns-tcp'), svc('dns-udp')],
      allocations: [alloc('dns-tcp', [VIP]), alloc('dns-udp', [VIP])],
      want: [`${VIP}@n1`],
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
      want: [`${VIP}@n1`],
      wantEvents: [
        ['web', 'nodeAssigned'],
        ['intranet', 'NoAnnouncer'],
      ],
    },
    {
      name: "the old layout: a node's status lists its VIP: kept there, now as a key, the list dropped",
      nodes: [node('n1'), node('n2', { vips: [VIP], ifs: { [VIP]: ['eth1'] } })],
      advertisements: [adv('eth1', { interfaces: ['eth1'] })],
      want: [`${VIP}@n2%eth1`],
      wantLegacy: ['n2'],
      wantEvents: [],
    },
    {
      name: 'the old layout, two nodes list one VIP (a crash between two writes): the Ready one keeps it',
      nodes: [node('n1', { ready: false, vips: [VIP] }), node('n2', { vips: [VIP] })],
      want: [`${VIP}@n2`],
      wantLegacy: ['n1', 'n2'],
      wantEvents: [],
    },
    {
      name: "a key wins over a node's old list",
      nodes: [node('n1'), node('n2', { vips: [VIP] })],
      holders: { [VIP]: 'n1' },
      want: [],
      wantLegacy: ['n2'],
      wantEvents: [],
    },
    {
      name: 'Local: the VIP goes to the node with a ready local endpoint',
      nodes: [node('n1'), node('n2'), node('n3')],
      holders: { [VIP]: 'n1' },
      services: [local('web')],
      backends: [be('198.51.100.22', 'n2'), be('198.51.100.23', 'n3', false), be('198.51.100.50')],
      last: { [VIP]: 'n1' },
      want: [`${VIP}@n2`],
      wantEvents: [['web', 'nodeAssigned']],
    },
    {
      name: 'Local with endpoints on no node: placed as Cluster',
      nodes: [node('n1'), node('n2')],
      holders: { [VIP]: 'n1' },
      services: [local('web')],
      backends: [be('198.51.100.50')],
      last: { [VIP]: 'n1' },
      want: [],
      wantEvents: [],
    },
    {
      name: 'Cluster ignores where the endpoints run',
      nodes: [node('n1'), node('n2')],
      holders: { [VIP]: 'n1' },
      backends: [be('198.51.100.22', 'n2')],
      last: { [VIP]: 'n1' },
      want: [],
      wantEvents: [],
    },
    {
      name: 'the holder reported it does not serve the Service: another node takes it',
      nodes: [node('n1'), node('n2')],
      holders: { [VIP]: 'n1' },
      services: [{ ...svc('web'), status: { endpointHealth: { notServing: ['n1'] } } }],
      last: { [VIP]: 'n1' },
      want: [`${VIP}@n2`],
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
      holders: holdersOf(c.holders ?? {}),
      last: new Map(Object.entries(c.last ?? {})),
      backends: () => c.backends ?? [],
    };
    const plan = planAssignment(input);
    t.same(plan.writes.map(written), c.want, `${c.name}: writes`);
    t.same(
      plan.legacy.map((n) => n.metadata.name),
      c.wantLegacy ?? [],
      `${c.name}: old lists dropped`,
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
    nodes: [node('n1', { labels: { name: 'n1' } }), node('n2')],
    holders: holdersOf({ [VIP]: 'n2' }),
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
  t.same(moved.writes, [{ vip: VIP, holder: { node: 'n1' } }], 'one key rewritten');
  const none = planAssignment({
    ...base,
    nodes: [node('n2')],
    holders: holdersOf({ [VIP]: 'n1' }),
    last: moved.placed,
  });
  t.same(none.events[0], {
    involved: svc('web'),
    reason: 'NoAnnouncer',
    message: `no Ready node may announce ${VIP} (check the L2Advertisements' nodeSelectors)`,
    type: 'Warning',
  });
  t.same([...none.placed], [[VIP, undefined]]);
  const gone = planAssignment({
    ...base,
    allocations: [],
    nodes: [node('n1')],
    holders: new Map(),
    last: moved.placed,
  });
  t.equal(gone.placed.size, 0, 'a VIP no longer allocated is forgotten');
});
