import t from 'tap';
import type { Service } from '../api/types.js';
import { VipmeshError } from '../errors.js';
import { pool } from '../testing/vip-pool.js';
import type { AddressPool, Allocation } from '../vip-pool/index.js';
import { IP_ALLOCATED, type IpamPlan, type IpamStep, planIpam, serviceStatus } from './ipam-plan.js';

const NOW = Date.parse('2026-01-01T12:00:00Z');
const EARLIER = '2026-01-01T11:00:00Z';
const lan = pool('lan', ['198.51.100.1-198.51.100.2']);

interface SvcOpts {
  ip?: string;
  created?: string;
  share?: string;
  port?: number;
  protocol?: 'TCP' | 'UDP';
  type?: string;
  status?: Service['status'];
}

/** A Service in namespace default, LoadBalancer TCP/80 unless told otherwise. */
function svc(name: string, o: SvcOpts = {}): Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name,
      namespace: 'default',
      creationTimestamp: o.created ?? '2026-01-01T00:00:00Z',
      ...(o.share === undefined ? {} : { annotations: { 'metallb.io/allow-shared-ip': o.share } }),
    },
    spec: {
      type: o.type ?? 'LoadBalancer',
      ...(o.ip === undefined ? {} : { loadBalancerIP: o.ip }),
      ports: [{ port: o.port ?? 80, protocol: o.protocol ?? 'TCP' }],
    },
    ...(o.status === undefined ? {} : { status: o.status }),
  };
}

/** What the IPAM controller writes for a Service served `ips` from `poolName`, as of EARLIER. */
function served(ips: string[], poolName = 'lan'): NonNullable<Service['status']> {
  return {
    loadBalancer: { ingress: ips.map((ip) => ({ ip, ipMode: 'VIP' })) },
    conditions: [
      {
        type: IP_ALLOCATED,
        status: 'True',
        reason: 'Allocated',
        message: `allocated ${ips.join(', ')} from pool ${poolName}`,
        lastTransitionTime: EARLIER,
      },
    ],
  };
}

function alloc(name: string, ips: string[], extra: Partial<Allocation> = {}): Allocation {
  return { service: `default/${name}`, pool: 'lan', ips, ports: [{ protocol: 'TCP', port: 80 }], ...extra };
}

/** A written status in short: `ips condition` (`-` for no address, `none` for no IPAllocated condition). */
function short(status: NonNullable<Service['status']>): string {
  const ips = (status.loadBalancer?.ingress ?? []).map((i) => i.ip).join(',') || '-';
  const c = status.conditions?.find((x) => x.type === IP_ALLOCATED);
  return `${ips} ${c === undefined ? 'none' : `${c.status}:${c.reason}`}`;
}

function summarize(plan: IpamPlan) {
  const steps: IpamStep[] = [...plan.assigned, ...plan.released];
  const name = (key: string) => key.replace(/^default\//, '');
  return {
    statuses: Object.fromEntries(
      steps.filter((s) => s.status !== undefined).map((s) => [name(s.key), short(s.status!)]),
    ),
    allocations: Object.fromEntries(
      steps.filter((s) => s.allocation !== undefined).map((s) => [name(s.key), s.allocation?.ips ?? null]),
    ),
    events: steps.flatMap((s) =>
      s.report === undefined ? [] : [[name(s.key), s.report.event.reason, s.report.event.type]],
    ),
  };
}

t.test('full pass cases', async (t) => {
  const cases: Array<{
    name: string;
    pools?: AddressPool[];
    services: Service[];
    persisted?: Allocation[];
    outcomes?: Record<string, string>;
    /** Status writes, by Service name (see `short`). */
    want: Record<string, string>;
    /** Allocations persisted (null: deleted), by Service name. */
    wantAllocations: Record<string, string[] | null>;
    wantEvents: Array<[string, string, string]>;
  }> = [
    {
      name: 'new Services get the lowest free addresses, oldest first',
      services: [svc('young', { created: '2026-01-01T00:00:02Z' }), svc('old')],
      want: { old: '198.51.100.1 True:Allocated', young: '198.51.100.2 True:Allocated' },
      wantAllocations: { old: ['198.51.100.1'], young: ['198.51.100.2'] },
      wantEvents: [
        ['old', 'IPAllocated', 'Normal'],
        ['young', 'IPAllocated', 'Normal'],
      ],
    },
    {
      name: 'a pinned loadBalancerIP gets that address, not the lowest free one',
      services: [svc('web', { ip: '198.51.100.2' })],
      want: { web: '198.51.100.2 True:Allocated' },
      wantAllocations: { web: ['198.51.100.2'] },
      wantEvents: [['web', 'IPAllocated', 'Normal']],
    },
    {
      name: 'a pinned address no pool has: IPAllocated=False with the code, a Warning, nothing persisted',
      services: [svc('outside', { ip: '203.0.113.9' })],
      want: { outside: '- False:VIPMESH_IP_OUTSIDE_POOLS' },
      wantAllocations: {},
      wantEvents: [['outside', 'AllocationFailed', 'Warning']],
    },
    {
      name: 'pool exhausted: the youngest Service waits',
      services: [
        svc('a'),
        svc('b', { created: '2026-01-01T00:00:01Z' }),
        svc('c', { created: '2026-01-01T00:00:02Z' }),
      ],
      want: {
        a: '198.51.100.1 True:Allocated',
        b: '198.51.100.2 True:Allocated',
        c: '- False:VIPMESH_POOL_EXHAUSTED',
      },
      wantAllocations: { a: ['198.51.100.1'], b: ['198.51.100.2'] },
      wantEvents: [
        ['a', 'IPAllocated', 'Normal'],
        ['b', 'IPAllocated', 'Normal'],
        ['c', 'AllocationFailed', 'Warning'],
      ],
    },
    {
      name: 'shared IP: one allow-shared-ip key, distinct ports, one address',
      services: [
        svc('dns-tcp', { ip: '198.51.100.2', share: 'dns', port: 53 }),
        svc('dns-udp', { ip: '198.51.100.2', share: 'dns', port: 53, protocol: 'UDP' }),
      ],
      want: { 'dns-tcp': '198.51.100.2 True:Allocated', 'dns-udp': '198.51.100.2 True:Allocated' },
      wantAllocations: { 'dns-tcp': ['198.51.100.2'], 'dns-udp': ['198.51.100.2'] },
      wantEvents: [
        ['dns-tcp', 'IPAllocated', 'Normal'],
        ['dns-udp', 'IPAllocated', 'Normal'],
      ],
    },
    {
      name: 'a pinned address an older Service holds without a sharing key: the younger is refused',
      services: [svc('first', { ip: '198.51.100.1' }), svc('second', { ip: '198.51.100.1', port: 81 })],
      want: { first: '198.51.100.1 True:Allocated', second: '- False:VIPMESH_IP_IN_USE' },
      wantAllocations: { first: ['198.51.100.1'] },
      wantEvents: [
        ['first', 'IPAllocated', 'Normal'],
        ['second', 'AllocationFailed', 'Warning'],
      ],
    },
    {
      name: 'overlapping pools: what is allocated is kept, nothing new, every Service says why',
      pools: [lan, pool('dup', ['198.51.100.0/31'])],
      services: [
        svc('held', { status: served(['198.51.100.1']) }),
        svc('new', { created: '2026-01-01T00:00:05Z' }),
      ],
      persisted: [alloc('held', ['198.51.100.1'])],
      outcomes: { 'default/held': 'ok:198.51.100.1' },
      want: { held: '198.51.100.1 False:VIPMESH_POOL_OVERLAP', new: '- False:VIPMESH_POOL_OVERLAP' },
      wantAllocations: {},
      wantEvents: [
        ['held', 'AllocationFailed', 'Warning'],
        ['new', 'AllocationFailed', 'Warning'],
      ],
    },
    {
      name: 'a deleted Service: its allocation is released, nothing else',
      services: [],
      persisted: [alloc('gone', ['198.51.100.1'])],
      outcomes: { 'default/gone': 'ok:198.51.100.1' },
      want: {},
      wantAllocations: { gone: null },
      wantEvents: [],
    },
    {
      name: 'a Service no longer LoadBalancer: released, its ingress and condition cleared',
      services: [svc('was-lb', { type: 'ClusterIP', status: served(['198.51.100.1']) })],
      persisted: [alloc('was-lb', ['198.51.100.1'])],
      want: { 'was-lb': '- none' },
      wantAllocations: { 'was-lb': null },
      wantEvents: [],
    },
    {
      name: 'status and outcome unchanged: no write, no event',
      services: [svc('web', { status: served(['198.51.100.1']) })],
      persisted: [alloc('web', ['198.51.100.1'])],
      outcomes: { 'default/web': 'ok:198.51.100.1' },
      want: {},
      wantAllocations: {},
      wantEvents: [],
    },
    {
      name: 'after a restart (no outcome known) a Service whose status already says it is served: no write, no event',
      services: [svc('web', { status: served(['198.51.100.1']) })],
      persisted: [alloc('web', ['198.51.100.1'])],
      want: {},
      wantAllocations: {},
      wantEvents: [],
    },
    {
      name: 'after a restart a Service whose status names other addresses: written, with its event',
      services: [svc('web', { status: served(['198.51.100.2']) })],
      persisted: [alloc('web', ['198.51.100.1'])],
      want: { web: '198.51.100.1 True:Allocated' },
      wantAllocations: {},
      wantEvents: [['web', 'IPAllocated', 'Normal']],
    },
    {
      name: 'a status someone wiped is written again, without a new event',
      services: [svc('web')],
      persisted: [alloc('web', ['198.51.100.1'])],
      outcomes: { 'default/web': 'ok:198.51.100.1' },
      want: { web: '198.51.100.1 True:Allocated' },
      wantAllocations: {},
      wantEvents: [],
    },
    {
      name: 'a persisted allocation is restored even when a lower address is free',
      services: [svc('web')],
      persisted: [alloc('web', ['198.51.100.2'])],
      want: { web: '198.51.100.2 True:Allocated' },
      wantAllocations: {},
      wantEvents: [['web', 'IPAllocated', 'Normal']],
    },
  ];
  for (const c of cases) {
    const plan = planIpam(
      {
        services: new Map(c.services.map((s) => [`default/${s.metadata.name}`, s])),
        persisted: new Map((c.persisted ?? []).map((a) => [a.service, a])),
        outcomes: new Map(Object.entries(c.outcomes ?? {})),
        now: NOW,
      },
      { pools: c.pools ?? [lan] },
    );
    const got = summarize(plan);
    t.same(got.statuses, c.want, `${c.name}: statuses`);
    t.same(got.allocations, c.wantAllocations, `${c.name}: allocations`);
    t.same(got.events, c.wantEvents, `${c.name}: events`);
  }
});

t.test('events and conditions say what happened', async (t) => {
  const plan = planIpam(
    { services: new Map([['default/web', svc('web')]]), persisted: new Map(), outcomes: new Map(), now: NOW },
    { pools: [lan] },
  );
  const step = plan.assigned[0]!;
  t.same(step.allocation, alloc('web', ['198.51.100.1']), 'the allocation as the Allocator restores it');
  t.same(step.status?.conditions, [
    {
      type: IP_ALLOCATED,
      status: 'True',
      reason: 'Allocated',
      message: 'allocated 198.51.100.1 from pool lan',
      lastTransitionTime: '2026-01-01T12:00:00Z',
    },
  ]);
  t.equal(step.report?.event.message, 'Assigned IP 198.51.100.1');
  t.equal(step.report?.outcome, 'ok:198.51.100.1');
  const outside = planIpam(
    {
      services: new Map([['default/x', svc('x', { ip: '203.0.113.9' })]]),
      persisted: new Map(),
      outcomes: new Map(),
      now: NOW,
    },
    { pools: [lan] },
  ).assigned[0]!;
  t.match(outside.report?.event.message, /\(VIPMESH_IP_OUTSIDE_POOLS\)$/);
  t.equal(outside.report?.failure?.code, 'VIPMESH_IP_OUTSIDE_POOLS');
});

t.test('serviceStatus keeps the transition time while status and reason stay', async (t) => {
  const web = svc('web', { status: served(['198.51.100.1']) });
  t.equal(serviceStatus(web, { ips: ['198.51.100.1'], pool: 'lan', now: NOW }), undefined, 'unchanged');
  const moved = serviceStatus(web, { ips: ['198.51.100.2'], pool: 'lan', now: NOW });
  t.equal(moved?.conditions?.[0]?.lastTransitionTime, EARLIER, 'still True/Allocated: time kept');
  t.equal(moved?.loadBalancer?.ingress?.[0]?.ip, '198.51.100.2');
  const other = { type: 'Other', status: 'True' as const };
  const gone = serviceStatus(svc('web', { status: { ...served(['198.51.100.1']), conditions: [other] } }), {
    ips: [],
    gone: true,
    now: NOW,
  });
  t.same(gone, { loadBalancer: {}, conditions: [other] }, 'other conditions stay');
});

t.test('an incremental pass handles only the changed Services, on the same allocator', async (t) => {
  const services = new Map<string, Service>([
    ['default/a', svc('a')],
    ['default/b', svc('b', { created: '2026-01-01T00:00:01Z' })],
  ]);
  const persisted = new Map<string, Allocation>();
  const outcomes = new Map<string, string>();
  const full = planIpam({ services, persisted, outcomes, now: NOW }, { pools: [lan] });
  t.same(
    full.assigned.map((s) => s.allocation?.ips),
    [['198.51.100.1'], ['198.51.100.2']],
  );
  for (const s of full.assigned) {
    persisted.set(s.key, s.allocation!);
    outcomes.set(s.key, s.report!.outcome);
  }
  // a is deleted, c is created: only those two are looked at.
  services.delete('default/a');
  services.set('default/c', svc('c', { created: '2026-01-01T00:00:02Z' }));
  const next = planIpam(
    { services, persisted, outcomes, now: NOW },
    { changed: ['default/c', 'default/a'], state: full.state },
  );
  t.equal(next.state, full.state, 'the state carries over');
  t.same(
    next.assigned.map((s) => s.key),
    ['default/c'],
  );
  t.equal(next.assigned[0]!.report?.event.reason, 'AllocationFailed', 'a is released after c is handled');
  t.same(
    next.released.map((s) => [s.key, s.allocation]),
    [['default/a', null]],
  );
  persisted.delete('default/a');
  const third = planIpam(
    { services, persisted, outcomes, now: NOW },
    { changed: ['default/c'], state: next.state },
  );
  t.same(third.assigned[0]!.allocation?.ips, ['198.51.100.1'], "c gets a's address on its next pass");
});

t.test(
  'after a restart a failing Service reports its failure again, though its status says the same',
  async (t) => {
    const input = (status?: Service['status']) => ({
      services: new Map([
        [
          'default/outside',
          svc('outside', { ip: '203.0.113.9', ...(status === undefined ? {} : { status }) }),
        ],
      ]),
      persisted: new Map<string, Allocation>(),
      outcomes: new Map<string, string>(),
      now: NOW,
    });
    const first = planIpam(input(), { pools: [lan] }).assigned[0]!;
    t.ok(first.status, 'the first pass writes IPAllocated=False');
    const again = planIpam(input(first.status), { pools: [lan] }).assigned[0]!;
    t.equal(again.status, undefined, 'the restarted pass has nothing to write');
    t.equal(again.report?.event.reason, 'AllocationFailed', 'but records the Warning again');
    t.equal(again.report?.failure?.code, 'VIPMESH_IP_OUTSIDE_POOLS', 'and counts the failure');
  },
);

t.test('a Local Service persists its pod selector, so sharing stays refused after a restart', async (t) => {
  const local = svc('web', { share: 'k' });
  local.spec = { ...local.spec, externalTrafficPolicy: 'Local', selector: { app: 'web' } };
  const plan = planIpam(
    { services: new Map([['default/web', local]]), persisted: new Map(), outcomes: new Map(), now: NOW },
    { pools: [lan] },
  );
  t.same(
    plan.assigned[0]!.allocation,
    alloc('web', ['198.51.100.1'], { sharingKey: 'k', backendKey: 'app=web' }),
  );
});

t.test('serviceStatus leaves the IPAllocated condition where it stands among the others', async (t) => {
  const other = { type: 'EndpointsHealthy', status: 'True' as const, reason: 'NoEndpoints' };
  const [allocated] = served(['198.51.100.1']).conditions!;
  const first = svc('web', { status: { ...served(['198.51.100.1']), conditions: [allocated!, other] } });
  t.equal(
    serviceStatus(first, { ips: ['198.51.100.1'], pool: 'lan', now: NOW }),
    undefined,
    'first: unchanged',
  );
  const last = svc('web', { status: { ...served(['198.51.100.1']), conditions: [other, allocated!] } });
  t.equal(
    serviceStatus(last, { ips: ['198.51.100.1'], pool: 'lan', now: NOW }),
    undefined,
    'last: unchanged',
  );
  const failed = serviceStatus(first, {
    ips: [],
    failure: new VipmeshError('VIPMESH_IP_OUTSIDE_POOLS', 'outside every pool'),
    now: NOW,
  });
  t.same(
    failed?.conditions?.map((c) => [c.type, c.status]),
    [
      [IP_ALLOCATED, 'False'],
      ['EndpointsHealthy', 'True'],
    ],
    'changed in its place',
  );
});
