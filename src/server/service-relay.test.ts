import t, { type Test } from 'tap';
import {
  FEATURE_SERVICES_DELTA,
  FEATURE_VIPS_DELTA,
  type LbService,
  SERVICES_BYTES_PER_MESSAGE,
  type ServicesDelta,
  TOPIC_SERVICES,
  TOPIC_SERVICES_DELTA,
  TOPIC_VIPS_DELTA,
} from '../api/agent-protocol.js';
import { AssignmentIndex, writeHolders } from '../api/assignments.js';
import { MemoryKv } from '../api/memory-kv.js';
import { ResourceStore } from '../api/store.js';
import type { KubeObject } from '../api/types.js';
import { BackendIndex } from '../controllers/backends.js';
import { Informer } from '../controllers/informer.js';
import { silentLogger } from '../log.js';
import { FakeClock } from '../testing/fake-clock.js';
import { until } from '../testing/until.js';
import { Relay } from './relay.js';
import { ServiceRelay } from './service-relay.js';

const svc = (name: string, ips: string[], extra: Record<string, unknown> = {}): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'shop' },
  spec: { type: 'LoadBalancer', ports: [{ name: 'http', port: 80, targetPort: 8080 }], ...extra },
  status: { loadBalancer: { ingress: ips.map((ip) => ({ ip })) } },
});
const node = (name: string, vips: string[], podCIDR?: string, ip?: string): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name },
  spec: podCIDR === undefined ? {} : { podCIDRs: [podCIDR] },
  status: { vips, ...(ip === undefined ? {} : { addresses: [{ type: 'InternalIP', address: ip }] }) },
});

/** The informers and backend index a relay reads, on `store`; closed at the end of `t`. */
async function sources(t: Test, store: ResourceStore) {
  const o = { logger: silentLogger() };
  const nodes = new Informer(store, 'nodes', o);
  const services = new Informer(store, 'services', o);
  const endpoints = new Informer(store, 'endpoints', o);
  const endpointslices = new Informer(store, 'endpointslices', o);
  for (const i of [nodes, services, endpoints, endpointslices]) await i.start();
  const backends = new BackendIndex({ endpoints, endpointslices, nodes });
  backends.start();
  t.teardown(async () => {
    backends.close();
    for (const i of [nodes, services, endpoints, endpointslices]) await i.close();
  });
  return { nodes, services, backends };
}

/**
 * {@link sources} on a datastore with the assignment index started on it, and sessions for n1 and n2; the
 * index is closed at the end of `t`.
 */
async function withHolders(t: Test) {
  const mem = new MemoryKv();
  const store = new ResourceStore({ kv: mem });
  const src = await sources(t, store);
  const holders = new AssignmentIndex({ kv: mem, logger: silentLogger() });
  await holders.start();
  t.teardown(() => holders.close());
  const sessions = new Map<string, unknown>([
    ['n1', {}],
    ['n2', {}],
  ]);
  return { mem, store, ...src, holders, sessions };
}

async function setup(t: Test) {
  const store = new ResourceStore({ kv: new MemoryKv() });
  const { nodes, services, backends } = await sources(t, store);
  const pushes: Array<{ node: string; services: LbService[] }> = [];
  const sessions = new Map<string, unknown>([
    ['n1', {}],
    ['n2', {}],
  ]);
  const relay = new ServiceRelay({
    nodes,
    services,
    backends,
    logger: silentLogger(),
    target: {
      sessions,
      push: (n, topic, payload) => {
        if (topic === TOPIC_SERVICES) pushes.push({ node: n, ...(payload as { services: LbService[] }) });
        return true;
      },
    },
  });
  relay.start();
  t.teardown(() => relay.close());
  return { store, relay, pushes, backends };
}

t.test(
  'every connected node is pushed every Service that has a VIP, with merged backends, on each change',
  async (t) => {
    const { store, relay, pushes, backends } = await setup(t);
    await store.create('nodes', node('n1', ['198.51.100.100'], '198.18.1.0/24', '198.51.100.1'));
    await store.create('nodes', node('n2', [], '198.18.2.0/24', '198.51.100.2'));
    await store.create('services', svc('web', ['198.51.100.100']));
    await store.create('services', svc('other', ['198.51.100.101']));
    await store.create('services', svc('pending', []));
    const names = (p: { services: LbService[] }) => p.services.map((s) => s.name);
    const last = (n: string) => pushes.filter((p) => p.node === n).at(-1);
    await until('both nodes pushed both', () =>
      ['n1', 'n2'].every((n) => last(n) !== undefined && names(last(n)!).join() === 'other,web'),
    );
    const web = (p = pushes.at(-1)!) => p.services.find((s) => s.name === 'web');
    t.same(web(last('n2')), {
      namespace: 'shop',
      name: 'web',
      vips: ['198.51.100.100'],
      ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }],
      endpoints: [],
      externalTrafficPolicy: 'Cluster',
      sessionAffinity: 'None',
      affinityTimeoutSeconds: 10800,
      algorithm: 'random',
      healthCheck: {
        type: 'tcp',
        path: '/',
        expectStatus: [200, 399],
        intervalMs: 2000,
        timeoutMs: 1000,
        rise: 2,
        fall: 3,
      },
    });
    t.ok(relay.holds('n1', 'shop/web'), "n1 holds web's VIP: its reports speak for web");
    t.notOk(relay.holds('n2', 'shop/web'), 'n2 has web but does not hold its VIP');
    t.notOk(relay.holds('n1', 'shop/other'), 'nobody holds the VIP of other');
    t.notOk(relay.holds('n1', 'shop/pending'), 'a Service without a VIP is not pushed');

    // Endpoints and a slice: merged, nodes found from the pod subnet and the node address.
    await store.create('endpoints', {
      apiVersion: 'v1',
      kind: 'Endpoints',
      metadata: { name: 'web', namespace: 'shop' },
      subsets: [
        { addresses: [{ ip: '198.18.2.5' }, { ip: '198.51.100.50' }], ports: [{ name: 'http', port: 8080 }] },
      ],
    } as KubeObject);
    await store.create('endpointslices', {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'web-1', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['198.51.100.1'] }, { addresses: ['198.18.2.5'] }],
      ports: [{ name: 'http', port: 8080 }],
    } as KubeObject);
    await until('three backends pushed to both', () =>
      ['n1', 'n2'].every((n) => web(last(n))?.endpoints.length === 3),
    );
    t.same(
      web()!.endpoints.map((e) => [e.ip, e.nodeName]),
      [
        ['198.18.2.5', 'n2'],
        ['198.51.100.1', 'n1'],
        ['198.51.100.50', undefined],
      ],
    );
    t.same([...backends.services()], ['shop/web']);

    // An unrelated change pushes nothing, nor a new node, nor the VIP moving to n2: it had web already.
    const before = pushes.length;
    const other = await store.get('services', 'other', 'shop');
    await store.update('services', { ...other, metadata: { ...other.metadata, labels: { a: 'b' } } });
    await store.create('nodes', node('n3', []));
    const n1 = await store.get('nodes', 'n1');
    await store.updateStatus('nodes', { ...n1, status: { ...n1.status, vips: [] } });
    const n2 = await store.get('nodes', 'n2');
    await store.updateStatus('nodes', { ...n2, status: { ...n2.status, vips: ['198.51.100.100'] } });
    await until('n2 holds web', () => relay.holds('n2', 'shop/web'));
    t.notOk(relay.holds('n1', 'shop/web'), 'n1 no longer speaks for web');
    await new Promise((r) => setImmediate(r));
    t.equal(pushes.length, before, 'nothing pushed');

    // The slice goes; the Service is deleted: both nodes are told each time.
    await store.delete('endpointslices', 'web-1', 'shop');
    await until('two backends pushed', () => ['n1', 'n2'].every((n) => web(last(n))?.endpoints.length === 2));
    await store.delete('services', 'web', 'shop');
    await until('web gone from both', () => ['n1', 'n2'].every((n) => names(last(n)!).join() === 'other'));
    relay.sessionUp('n1');
    t.same(
      [pushes.at(-1)!.node, names(pushes.at(-1)!)],
      ['n1', ['other']],
      'a session coming up is pushed at once',
    );
  },
);

t.test(
  'deltas: thousands of Services go once in bounded messages; a change sends only the Services it touches',
  async (t) => {
    const { mem, store, nodes, services, backends, holders, sessions } = await withHolders(t);
    type Msg = { node: string; topic: string; payload: ServicesDelta; bytes: number };
    /** Every message (what the agents applied); `msgs` since the last look. */
    const all: Msg[] = [];
    const msgs: Msg[] = [];
    const relay = new ServiceRelay({
      nodes,
      services,
      backends,
      holders,
      logger: silentLogger(),
      target: {
        sessions,
        push: (node, topic, payload) => {
          const m = { node, topic, payload: payload as ServicesDelta, bytes: JSON.stringify(payload).length };
          all.push(m);
          msgs.push(m);
          return true;
        },
      },
    });
    relay.start();
    t.teardown(() => relay.close());
    // What an agent that applies the deltas in order has.
    const view = (node: string) => {
      const have = new Map<string, LbService>();
      for (const m of all) {
        if (m.node !== node || m.topic !== TOPIC_SERVICES_DELTA) continue;
        if (m.payload.reset) have.clear();
        for (const k of m.payload.remove ?? []) have.delete(k);
        for (const s of m.payload.set ?? []) have.set(`${s.namespace}/${s.name}`, s);
      }
      return [...have.keys()].sort().map((k) => have.get(k)!);
    };
    const N = 3000;
    const ip = (i: number) => `198.18.${Math.floor(i / 250)}.${(i % 250) + 1}`;
    for (let i = 0; i < N; i++)
      await store.create('services', svc(`s${String(i).padStart(4, '0')}`, [ip(i)]));
    const { revision } = await writeHolders(
      mem,
      Array.from({ length: N }, (_, i) => ({ vip: ip(i), holder: { node: i % 3 === 0 ? 'n2' : 'n1' } })),
    );
    await holders.caughtUp(revision);
    await until('every Service indexed', () => relay.services().length === N);
    msgs.length = 0;
    relay.sessionUp('n1', { features: [FEATURE_SERVICES_DELTA] });
    relay.sessionUp('n2', {});
    const n1 = msgs.filter((m) => m.node === 'n1');
    t.ok(n1.length > 1, `n1's ${N} Services in ${n1.length} messages`);
    t.ok(n1[0]!.payload.reset, 'the first resets');
    t.ok(
      n1.every((m) => m.topic === TOPIC_SERVICES_DELTA && m.bytes <= SERVICES_BYTES_PER_MESSAGE + 2048),
      `each about ${SERVICES_BYTES_PER_MESSAGE} bytes at most (largest ${Math.max(...n1.map((m) => m.bytes))})`,
    );
    t.same(view('n1'), relay.services(), 'the agent has the whole list');
    t.equal(view('n1').length, N);
    const whole = (node: string) =>
      msgs
        .filter((m) => m.node === node)
        .map((m) => [m.topic, (m.payload as { services?: unknown[] }).services?.length]);
    t.same(whole('n2'), [[TOPIC_SERVICES, N]], 'an older agent gets one whole list');

    // One Service changes: n1 is sent that one only, the older agent its whole list again.
    msgs.length = 0;
    const s7 = await store.get('services', 's0007', 'shop');
    await store.update('services', { ...s7, spec: { ...s7.spec, externalTrafficPolicy: 'Local' } });
    await until(
      'the change pushed',
      () => msgs.some((m) => m.node === 'n1') && msgs.some((m) => m.node === 'n2'),
    );
    t.same(
      msgs.filter((m) => m.node === 'n1').map((m) => [m.payload.set?.map((s) => s.name), m.payload.remove]),
      [[['s0007'], undefined]],
      'only s0007',
    );
    t.same(whole('n2'), [[TOPIC_SERVICES, N]]);
    t.equal(view('n1').find((s) => s.name === 's0007')?.externalTrafficPolicy, 'Local');

    // Two VIPs move from n1 to n2: nothing to push, both had the Services; n2 speaks for them now.
    msgs.length = 0;
    t.ok(relay.holds('n1', 'shop/s0001') && !relay.holds('n2', 'shop/s0001'));
    const moved = await writeHolders(mem, [
      { vip: ip(1), holder: { node: 'n2' } },
      { vip: ip(2), holder: { node: 'n2' } },
    ]);
    await holders.caughtUp(moved.revision);
    t.ok(relay.holds('n2', 'shop/s0001') && !relay.holds('n1', 'shop/s0001'));
    await new Promise((r) => setImmediate(r));
    t.same(msgs, [], 'nothing pushed for the move');

    // A Service deleted: removed everywhere; nothing for a Service whose pushed form is unchanged.
    msgs.length = 0;
    await store.delete('services', 's0004', 'shop');
    const s5 = await store.get('services', 's0005', 'shop');
    await store.update('services', { ...s5, metadata: { ...s5.metadata, labels: { x: 'y' } } });
    await until(
      'the delete pushed',
      () => msgs.some((m) => m.node === 'n1') && msgs.some((m) => m.node === 'n2'),
    );
    await new Promise((r) => setImmediate(r));
    t.same(
      msgs.filter((m) => m.node === 'n1').map((m) => m.payload),
      [{ remove: ['shop/s0004'] }],
    );
    t.same(whole('n2'), [[TOPIC_SERVICES, N - 1]]);
    t.same(view('n1'), relay.services());
  },
);

t.test('a moved VIP: only the VIP is pushed, the new holder had its Services already', async (t) => {
  const { mem, store, nodes, services, backends, holders, sessions } = await withHolders(t);
  const pushes: Array<{ node: string; topic: string; payload: unknown }> = [];
  const target = {
    sessions,
    push: (node: string, topic: string, payload: unknown) => pushes.push({ node, topic, payload }) > 0,
  };
  const serviceRelay = new ServiceRelay({
    nodes,
    services,
    backends,
    holders,
    logger: silentLogger(),
    target,
  });
  const relay = new Relay({
    nodes,
    holders,
    kv: mem,
    target,
    clusterCidr: ['198.18.0.0/16'],
    logger: silentLogger(),
    clock: new FakeClock(),
    services: serviceRelay,
  });
  await relay.start();
  t.teardown(() => relay.close());
  const vip = '198.51.100.10';
  await store.create('services', svc('web', [vip]));
  await holders.caughtUp((await writeHolders(mem, [{ vip, holder: { node: 'n1' } }])).revision);
  await until('web indexed', () => serviceRelay.services().length === 1);
  for (const n of ['n1', 'n2'])
    relay.sessionUp(n, { features: [FEATURE_VIPS_DELTA, FEATURE_SERVICES_DELTA] });
  const first = pushes.find((p) => p.node === 'n2' && p.topic === TOPIC_SERVICES_DELTA)!
    .payload as ServicesDelta;
  t.same(
    first.set?.map((s) => [s.name, s.vips]),
    [['web', [vip]]],
    'n2 has web before it holds its VIP',
  );
  pushes.length = 0;
  // The master shows its write ahead of the datastore, as in a failover.
  holders.ahead([{ vip, holder: { node: 'n2' } }]);
  t.ok(serviceRelay.holds('n2', 'shop/web'), "n2's health reports are taken at once");
  await until('both told', () => pushes.filter((p) => p.topic === TOPIC_VIPS_DELTA).length === 2);
  await new Promise((r) => setImmediate(r));
  t.same(
    pushes.map((p) => `${p.node} ${p.topic === TOPIC_VIPS_DELTA ? 'vips' : 'services'}`).sort(),
    ['n1 vips', 'n2 vips'],
    'the VIP only',
  );
});
