import t from 'tap';
import { MemoryKv } from '../api/memory-kv.js';
import { canonicalJson } from '../api/meta.js';
import { ResourceStore } from '../api/store.js';
import type { Event, KubeObject, Service } from '../api/types.js';
import { silentLogger } from '../log.js';
import { createRegistry } from '../metrics.js';
import { FakeClock } from '../testing/fake-clock.js';
import { until } from '../testing/until.js';
import { EndpointHealthWriter } from './endpoint-health.js';
import { parseHealthReport, planHealth } from './endpoint-health-plan.js';
import { Informer } from './informer.js';

const service = (status: Service['status'] = {}): Service => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'web', namespace: 'shop' },
  spec: { type: 'LoadBalancer', ports: [{ port: 80 }] },
  status,
});
const ep = (ip: string, healthy: boolean, reason?: string) => ({
  ip,
  port: 8080,
  healthy,
  ...(reason ? { reason } : {}),
});
const report = (endpoints: ReturnType<typeof ep>[], serving = true) => ({
  namespace: 'shop',
  name: 'web',
  serving,
  endpoints,
});

t.test('reports are checked and bounded', async (t) => {
  const bad: Array<[string, unknown]> = [
    ['not a map', 'x'],
    ['no list', { services: 3 }],
    ['no endpoints', { services: [{ namespace: 'a', name: 'b', serving: true }] }],
    ['no serving', { services: [{ namespace: 'a', name: 'b', endpoints: [] }] }],
    ['no name', { services: [{ namespace: 'a', serving: true, endpoints: [] }] }],
    ['long name', { services: [{ namespace: 'a', name: 'x'.repeat(300), serving: true, endpoints: [] }] }],
    ['bad ip', { services: [report([{ ...ep('x', true) }])] }],
    ['bad port', { services: [report([{ ...ep('198.51.100.1', true), port: 0 }])] }],
    ['bad healthy', { services: [report([{ ...ep('198.51.100.1', true), healthy: 'yes' as never }])] }],
    ['too many', { services: Array.from({ length: 50_001 }, () => report([])) }],
    [
      'too many endpoints',
      { services: [report(Array.from({ length: 5001 }, () => ep('198.51.100.1', true)))] },
    ],
  ];
  for (const [name, params] of bad) {
    t.throws(() => parseHealthReport(params), { code: 'VIPMESH_HEALTH_REPORT_INVALID' }, name);
  }
  const ok = parseHealthReport({
    services: [report([ep('2001:DB8::1', false, 'x'.repeat(500)), ep('198.51.100.1', true, 'ignored')])],
  });
  t.same(ok.services[0]!.endpoints, [
    { ip: '2001:db8::1', port: 8080, healthy: false, reason: 'x'.repeat(200) },
    { ip: '198.51.100.1', port: 8080, healthy: true },
  ]);
});

t.test('planHealth: the condition, the endpoint list and the events, by case', async (t) => {
  const now = '2026-12-05T17:00:00Z';
  const cases = [
    {
      name: 'all healthy, first report: no events',
      before: service(),
      report: report([ep('198.51.100.21', true), ep('198.51.100.22', true)]),
      want: {
        status: 'True',
        reason: 'AllEndpointsHealthy',
        message: '2 of 2 endpoints healthy, checked from n1',
      },
      events: [],
    },
    {
      name: 'one down',
      before: service(),
      report: report([ep('198.51.100.21', true), ep('198.51.100.22', false, 'connect ECONNREFUSED')]),
      want: {
        status: 'False',
        reason: 'SomeEndpointsUnhealthy',
        message:
          '1 of 2 endpoints healthy, checked from n1; unhealthy: 198.51.100.22:8080 (connect ECONNREFUSED)',
      },
      events: [
        [
          'EndpointUnhealthy',
          'endpoint 198.51.100.22:8080 is unhealthy: connect ECONNREFUSED (checked from n1)',
        ],
      ],
    },
    {
      name: 'all down, not serving',
      before: service(),
      report: report([ep('2001:db8::5', false)], false),
      want: {
        status: 'False',
        reason: 'NoHealthyEndpoints',
        message: '0 of 1 endpoints healthy, checked from n1; unhealthy: [2001:db8::5]:8080',
      },
      events: [['EndpointUnhealthy', 'endpoint [2001:db8::5]:8080 is unhealthy (checked from n1)']],
    },
    {
      name: 'no endpoints',
      before: service(),
      report: report([]),
      want: {
        status: 'True',
        reason: 'NoEndpoints',
        message: 'no endpoints: the holder n1 serves the ports itself',
      },
      events: [],
    },
  ];
  for (const c of cases) {
    const step = planHealth(c.before, 'n1', c.report, now)!;
    const cond = step.status.conditions!.find((x) => x.type === 'EndpointsHealthy');
    t.match(cond, { ...c.want, lastTransitionTime: now }, c.name);
    t.same(
      step.events.map((e) => [e.reason, e.message]),
      c.events,
      `${c.name}: events`,
    );
    // The same report again changes nothing.
    t.equal(
      planHealth({ ...c.before, status: step.status }, 'n1', c.report, 'later'),
      undefined,
      `${c.name}: again`,
    );
  }
  // Recovery: an event per endpoint back; the transition time moves, not-serving is cleared.
  const down = planHealth(
    service({ conditions: [{ type: 'IPAllocated', status: 'True' }] }),
    'n1',
    report([ep('198.51.100.22', false)], false),
    now,
  )!;
  t.same((down.status['endpointHealth'] as { notServing: string[] }).notServing, ['n1']);
  const up = planHealth(
    { ...service(), status: down.status },
    'n1',
    report([ep('198.51.100.22', true)]),
    'later',
  )!;
  t.same(
    up.events.map((e) => e.reason),
    ['EndpointHealthy'],
  );
  t.same(
    up.status.conditions!.map((c) => [c.type, c.status, c.lastTransitionTime]),
    [
      ['IPAllocated', 'True', undefined],
      ['EndpointsHealthy', 'True', 'later'],
    ],
  );
  t.same((up.status['endpointHealth'] as { notServing: string[] }).notServing, []);
  // Many endpoints changing: ten events and one that sums up the rest.
  const many = Array.from({ length: 15 }, (_, i) => ep(`198.51.100.${i + 1}`, false));
  const step = planHealth(service(), 'n1', report(many), now)!;
  t.equal(step.events.length, 11);
  t.match(step.events.at(-1), { reason: 'EndpointsChanged', message: /^5 more/ });
  t.match(step.status.conditions![0]!.message, /and 10 more$/);
});

t.test(
  'a status read back from the store is not written again, whatever its key and condition order',
  async (t) => {
    const now = '2026-01-01T12:00:00Z';
    const r = report([ep('198.51.100.22', false, 'HTTP 503'), ep('198.51.100.21', true)]);
    const step = planHealth(
      service({ conditions: [{ type: 'IPAllocated', status: 'True' }] }),
      'n1',
      r,
      now,
    )!;
    // What the store gives back: keys sorted, and another writer's condition now after ours.
    const stored = JSON.parse(canonicalJson(step.status)) as NonNullable<Service['status']>;
    stored.conditions = [...stored.conditions!].reverse();
    t.same(
      stored.conditions.map((c) => c.type),
      ['EndpointsHealthy', 'IPAllocated'],
    );
    t.equal(planHealth(service(stored), 'n1', r, 'later'), undefined, 'unchanged');
    const worse = planHealth(service(stored), 'n1', report([ep('198.51.100.22', false)]), 'later')!;
    t.same(
      worse.status.conditions!.map((c) => [c.type, c.status]),
      [
        ['EndpointsHealthy', 'False'],
        ['IPAllocated', 'True'],
      ],
      'changed in its place',
    );
  },
);

t.test(
  'the writer: reports of pushed Services are written, at most once a second, with events and metrics',
  async (t) => {
    const store = new ResourceStore({ kv: new MemoryKv() });
    const services = new Informer(store, 'services', { logger: silentLogger() });
    await services.start();
    await store.create('services', service() as KubeObject);
    await until('informer', () => services.items.has('shop/web'));
    const clock = new FakeClock();
    const registry = createRegistry();
    const w = new EndpointHealthWriter({
      store,
      services,
      holds: (node, key) => node === 'n1' && key === 'shop/web',
      logger: silentLogger(),
      clock,
      registry,
      host: 's1',
    });
    t.teardown(async () => {
      w.close();
      await services.close();
    });
    const cond = async () =>
      (await store.get('services', 'web', 'shop')).status?.conditions?.find(
        (c) => c.type === 'EndpointsHealthy',
      );

    t.same(
      w.report('n2', { services: [report([ep('198.51.100.22', false)])] }),
      { accepted: 0 },
      'not pushed to n2',
    );
    t.same(w.report('n1', { services: [report([ep('198.51.100.22', false, 'HTTP 503')])] }), { accepted: 1 });
    clock.advance(0);
    await w.idle();
    t.match(await cond(), { status: 'False', reason: 'NoHealthyEndpoints' });
    const events = (await store.list('events')).items as Event[];
    t.same(
      events.map((e) => [e.reason, e.involvedObject?.name, e.source?.host]),
      [['EndpointUnhealthy', 'web', 's1']],
    );
    t.match(await registry.getSingleMetricAsString('vipmesh_service_endpoints'), /state="unhealthy"} 1/);

    // A flapping agent: three reports within the second make one more write, of the last.
    await until(
      'informer has the status',
      () => services.items.get('shop/web')?.status?.conditions !== undefined,
    );
    w.report('n1', { services: [report([ep('198.51.100.22', true)])] });
    w.report('n1', { services: [report([ep('198.51.100.22', false)])] });
    w.report('n1', { services: [report([ep('198.51.100.22', true)])] });
    clock.advance(500);
    await w.idle();
    t.match(await cond(), { status: 'False' }, 'not written before the second is up');
    clock.advance(500);
    await until('written', () => w.idle().then(async () => (await cond())?.status === 'True'));
    t.equal((await store.list('events')).items.length, 2, 'one recovery event');

    // Another writer replaces the status (as IPAM does): the last report is put back.
    await until('informer', () => services.items.get('shop/web')?.status?.conditions?.[0]?.status === 'True');
    const cur = await store.get('services', 'web', 'shop');
    await store.updateStatus('services', {
      ...cur,
      status: { conditions: [{ type: 'IPAllocated', status: 'True' }] },
    });
    await until('put back', async () => {
      clock.advance(1000);
      await w.idle();
      return (await cond())?.status === 'True';
    });
    // The other writer moves its condition after ours (as IPAM did before): nothing more is written.
    const back = await store.get('services', 'web', 'shop');
    await store.updateStatus('services', {
      ...back,
      status: { ...back.status, conditions: [...(back.status?.conditions ?? [])].reverse() },
    });
    const settled = (await store.get('services', 'web', 'shop')).metadata.resourceVersion;
    await until('informer', () => services.items.get('shop/web')?.metadata.resourceVersion === settled);
    for (let i = 0; i < 3; i++) {
      clock.advance(1000);
      await w.idle();
    }
    t.equal(
      (await store.get('services', 'web', 'shop')).metadata.resourceVersion,
      settled,
      'the status settles',
    );
    // The Service goes: its metrics go with it.
    await store.delete('services', 'web', 'shop');
    await until(
      'metrics removed',
      async () => !(await registry.getSingleMetricAsString('vipmesh_service_endpoints')).includes('web'),
    );
  },
);
