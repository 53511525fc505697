/**
 * The assignment controller over an in-memory datastore: a node going NotReady moves its VIPs to the other
 * node, with one event per moved VIP, written many at a time but never more than the bound.
 */
import t, { type Test } from 'tap';
import {
  ASSIGNMENTS_PREFIX,
  AssignmentIndex,
  decodeHolder,
  type HolderChange,
  writeHolders,
} from '../api/assignments.js';
import { MemoryKv } from '../api/memory-kv.js';
import { ResourceStore } from '../api/store.js';
import {
  type Event,
  type IPAddressPool,
  type KubeObject,
  type L2Advertisement,
  type Node,
  nodeReady,
  type Service,
} from '../api/types.js';
import { silentLogger } from '../log.js';
import { svc } from '../testing/controlplane.js';
import { FakeClock } from '../testing/fake-clock.js';
import { until } from '../testing/until.js';
import type { Allocation } from '../vip-pool/index.js';
import { AssignmentController, RECORD_DELAY_MS } from './assignment.js';
import { BackendIndex } from './backends.js';
import { WRITE_CONCURRENCY } from './batches.js';
import { createInformers } from './index.js';
import { LostNodes } from './lost-nodes.js';
import { withReady } from './node-lifecycle.js';

const log = silentLogger();

/** A store whose event creates answer on a later turn of the event loop, counting those in flight. */
class CountingStore extends ResourceStore {
  inFlight = 0;
  most = 0;
  override async create<R extends Parameters<ResourceStore['create']>[0]>(
    resource: R,
    obj: Parameters<ResourceStore['create']>[1],
  ) {
    if (resource !== 'events') return super.create(resource, obj);
    this.inFlight++;
    this.most = Math.max(this.most, this.inFlight);
    try {
      await new Promise((r) => setImmediate(r));
      return await super.create(resource, obj);
    } finally {
      this.inFlight--;
    }
  }
}

function node(name: string, ready: 'True' | 'False', vips: string[] = []): Node {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name },
    status: { conditions: withReady(undefined, ready, 'R', 'm', '2026-01-01T00:00:00Z'), vips },
  };
}

/** The informers and the assignment index over `store` and `kv`, started, and closed at the end of `t`. */
async function startFollowing(t: Test, store: ResourceStore, kv: MemoryKv, clock: FakeClock) {
  const informers = createInformers(store, log, clock);
  await Promise.all(Object.values(informers).map((i) => i.start()));
  t.teardown(() => Promise.all(Object.values(informers).map((i) => i.close())));
  const holders = new AssignmentIndex({ kv, logger: log, clock });
  await holders.start();
  t.teardown(() => holders.close());
  return { informers, holders };
}

/**
 * A store with the pool `lan` (198.18.0.0/22) advertised everywhere, `services`, and two Ready nodes: n1
 * holding `held` (listed in its status, the layout before the keys) and n2; its informers and assignment
 * index started, and closed at the end of `t`.
 */
async function twoNodeLan(t: Test, services: Service[], held: readonly string[]) {
  const clock = new FakeClock();
  const kv = new MemoryKv();
  const store = new ResourceStore({ kv, clock });
  for (const s of services) await store.create('services', s);
  await store.create('ipaddresspools', {
    apiVersion: 'metallb.io/v1beta1',
    kind: 'IPAddressPool',
    metadata: { name: 'lan', namespace: 'default' },
    spec: { addresses: ['198.18.0.0/22'] },
  });
  await store.create('l2advertisements', {
    apiVersion: 'metallb.io/v1beta1',
    kind: 'L2Advertisement',
    metadata: { name: 'lan', namespace: 'default' },
    spec: {},
  });
  for (const [name, vips] of [
    ['n1', held],
    ['n2', []],
  ] as const) {
    const n = await store.create('nodes', node(name, 'True'));
    await store.updateStatus('nodes', { ...n, status: node(name, 'True', [...vips]).status });
  }
  const { informers, holders } = await startFollowing(t, store, kv, clock);
  return { clock, kv, store, informers, holders };
}

/**
 * {@link twoNodeLan} with one Service `s<i>` on each of `vips` (all held by n1) and an assignment
 * controller, started, that also places the nodes a {@link LostNodes} judged lost; closed at the end of `t`.
 */
async function lostNodeLan(t: Test, vips: readonly string[]) {
  const allocations: Allocation[] = vips.map((ip, i) => ({
    service: `default/s${i}`,
    pool: 'lan',
    ips: [ip],
    ports: [],
  }));
  const lan = await twoNodeLan(
    t,
    vips.map((_, i) => svc(`s${i}`)),
    vips,
  );
  const { clock, kv, store, informers, holders } = lan;
  const lost = new LostNodes({ nodes: informers.nodes, clock, ttlMs: 5000 });
  t.teardown(() => lost.close());
  const ctl = new AssignmentController({
    store,
    kv,
    holders,
    informers,
    allocations: () => allocations,
    logger: log,
    clock,
    lost,
  });
  ctl.start();
  t.teardown(() => ctl.close());
  return { ...lan, lost, ctl };
}

t.test('a NotReady node’s VIPs move, their events written many at a time within the bound', async (t) => {
  const clock = new FakeClock();
  const kv = new MemoryKv();
  const store = new CountingStore({ kv, clock });
  const N = 300;
  const allocations: Allocation[] = [];
  const vips: string[] = [];
  for (let i = 0; i < N; i++) {
    const ip = `198.18.${Math.floor(i / 250)}.${(i % 250) + 1}`;
    vips.push(ip);
    await store.create('services', svc(`s${i}`));
    allocations.push({
      service: `default/s${i}`,
      pool: 'lan',
      ips: [ip],
      ports: [{ protocol: 'TCP', port: 80 }],
    });
  }
  const pool: IPAddressPool = {
    apiVersion: 'metallb.io/v1beta1',
    kind: 'IPAddressPool',
    metadata: { name: 'lan', namespace: 'default' },
    spec: { addresses: ['198.18.0.0/22'] },
  };
  const adv: L2Advertisement = {
    apiVersion: 'metallb.io/v1beta1',
    kind: 'L2Advertisement',
    metadata: { name: 'lan', namespace: 'default' },
    spec: { ipAddressPools: ['lan'] },
  };
  await store.create('ipaddresspools', pool as KubeObject);
  await store.create('l2advertisements', adv as KubeObject);
  const n1 = await store.create('nodes', node('n1', 'True'));
  await store.updateStatus('nodes', { ...n1, status: node('n1', 'True', vips).status });
  const n2 = await store.create('nodes', node('n2', 'True'));
  await store.updateStatus('nodes', { ...n2, status: node('n2', 'True').status });

  const { informers, holders } = await startFollowing(t, store, kv, clock);
  const ctl = new AssignmentController({
    store,
    kv,
    holders,
    informers,
    allocations: () => allocations,
    logger: log,
    clock,
  });
  ctl.start();
  t.teardown(() => ctl.close());
  await ctl.idle();
  t.equal((await store.list('events')).items.length, 0, 'a first pass that keeps every VIP records nothing');
  // The Nodes listed their VIPs in their status (the layout before the keys): now each VIP has a key.
  t.equal(holders.vipsOf('n1').size, N, "n1's listed VIPs are its keys now");
  t.equal((await store.get('nodes', 'n1')).status?.vips, undefined, 'and the list is gone from its status');

  const cur = await store.get('nodes', 'n1');
  await store.updateStatus('nodes', { ...cur, status: node('n1', 'False', vips).status });
  await until('every VIP on n2', async () => {
    await ctl.idle();
    return holders.vipsOf('n2').size === N;
  });
  await ctl.idle();
  // The moves are recorded once the new holder has had its time to take them, not during it.
  t.equal((await store.list('events')).items.length, 0, 'no event while the new holder takes the VIPs');
  clock.advance(RECORD_DELAY_MS - 1);
  t.equal((await store.list('events')).items.length, 0, 'nor 1 ms before the delay ends');
  clock.advance(1);
  await ctl.recorded();
  const events = (await store.list('events')).items as Event[];
  t.equal(events.filter((e) => e.reason === 'nodeAssigned').length, N, 'one event per moved VIP');
  t.match(events[0]?.message, /moved from n1/);
  t.ok(store.most > 1, `events written many at a time (${store.most})`);
  t.ok(store.most <= WRITE_CONCURRENCY, `never more than ${WRITE_CONCURRENCY}`);
  t.equal(holders.vipsOf('n1').size, 0, 'n1 holds none');
});

t.test(
  'Local: an endpoint appearing on the other node, or a holder not serving, moves the VIP',
  async (t) => {
    const VIP = '198.18.0.1';
    const local: Service = {
      ...svc('web'),
      spec: { type: 'LoadBalancer', externalTrafficPolicy: 'Local', ports: [{ port: 80 }] },
    };
    const { clock, kv, store, informers, holders } = await twoNodeLan(t, [local, svc('other')], [VIP]);
    const backends = new BackendIndex(informers);
    backends.start();
    t.teardown(() => backends.close());
    let allocationsChanged: () => void = () => undefined;
    const ctl = new AssignmentController({
      store,
      kv,
      holders,
      informers,
      backends,
      allocations: () => [
        { service: 'default/web', pool: 'lan', ips: [VIP], ports: [{ protocol: 'TCP', port: 80 }] },
      ],
      onAllocations: (fn) => {
        allocationsChanged = fn;
        return () => undefined;
      },
      logger: log,
      clock,
    });
    ctl.start();
    t.teardown(() => ctl.close());
    await ctl.idle();
    const holder = () => holders.all.get(VIP)?.node;
    t.equal(holder(), 'n1');
    await store.create('endpoints', {
      apiVersion: 'v1',
      kind: 'Endpoints',
      metadata: { name: 'web', namespace: 'default' },
      subsets: [{ addresses: [{ ip: '198.51.100.22', nodeName: 'n2' }], ports: [{ port: 8080 }] }],
    } as KubeObject);
    await until('VIP on n2', async () => {
      await ctl.idle();
      return holder() === 'n2';
    });
    // Back to Cluster, then n2 reports it does not serve: n1 takes it.
    const web = await store.get('services', 'web', 'default');
    await store.update('services', { ...web, spec: { ...web.spec, externalTrafficPolicy: 'Cluster' } });
    const again = await store.get('services', 'web', 'default');
    await store.updateStatus('services', { ...again, status: { endpointHealth: { notServing: ['n2'] } } });
    allocationsChanged();
    await until('VIP on n1', async () => {
      await ctl.idle();
      return holder() === 'n1';
    });
  },
);

t.test(
  "a verdict of lost moves the node's VIPs before its NotReady is stored, and lifting it moves nothing back",
  async (t) => {
    const { clock, store, informers, holders, lost, ctl } = await lostNodeLan(t, [
      '198.18.0.1',
      '198.18.0.2',
      '198.18.0.3',
    ]);
    await ctl.idle();
    t.equal(holders.vipsOf('n1').size, 3, 'n1 holds the three VIPs');

    lost.add('n1');
    await until('every VIP on n2', async () => {
      await ctl.idle();
      return holders.vipsOf('n2').size === 3;
    });
    t.equal(nodeReady(await store.get('nodes', 'n1')), 'True', 'while the stored n1 is still Ready');
    t.equal(nodeReady(informers.nodes.items.get('n1')!), 'True', "and the informer's copy is untouched");
    clock.advance(RECORD_DELAY_MS);
    await ctl.recorded();
    const moved = ((await store.list('events')).items as Event[]).filter((e) => e.reason === 'nodeAssigned');
    t.equal(moved.length, 3, 'one event per moved VIP');

    // The node came back before its NotReady was written: the verdict is lifted, the VIPs stay.
    lost.delete('n1');
    await ctl.idle();
    t.equal(holders.vipsOf('n2').size, 3, 'the new holder keeps them');
    t.equal(holders.vipsOf('n1').size, 0, 'nothing moves back');
  },
);

t.test('LostNodes: a verdict ends with the NotReady in the informer, a delete, or its time', async (t) => {
  const clock = new FakeClock();
  const store = new ResourceStore({ kv: new MemoryKv(), clock });
  for (const name of ['n1', 'n2', 'n3']) {
    const n = await store.create('nodes', node(name, 'True'));
    await store.updateStatus('nodes', { ...n, status: node(name, 'True').status });
  }
  const informer = createInformers(store, log, clock).nodes;
  await informer.start();
  t.teardown(() => informer.close());
  const lost = new LostNodes({ nodes: informer, clock, ttlMs: 1000 });
  let changes = 0;
  lost.on('change', () => changes++);
  lost.add('n1');
  lost.add('n2');
  lost.add('n3');
  t.equal(changes, 3, 'each verdict is a change');
  const shown = new Map([...lost.overlay(informer.items.values())].map((n) => [n.metadata.name, n]));
  t.same([...shown.values()].map(nodeReady), ['False', 'False', 'False'], 'all three shown NotReady');
  t.match(
    shown.get('n1')?.status?.conditions?.find((c) => c.type === 'Ready'),
    { reason: 'NodeLost' },
  );
  t.equal(nodeReady(informer.items.get('n1')!), 'True', 'the overlay copies; the informer is untouched');

  // n1's NotReady reaches the informer: its verdict has done its work.
  const n1 = await store.get('nodes', 'n1');
  await store.updateStatus('nodes', { ...n1, status: node('n1', 'False').status });
  await until('n1 NotReady in the informer', () => nodeReady(informer.items.get('n1')!) === 'False');
  t.notOk(lost.has('n1'), "n1's verdict ended with its NotReady");
  lost.delete('n2');
  t.notOk(lost.has('n2'), "n2's verdict was lifted");
  t.ok(lost.has('n3'), 'n3 still stands judged');
  clock.advance(1000);
  t.notOk(lost.has('n3'), "n3's verdict lapsed after its time");
  t.same(
    [...lost.overlay(informer.items.values())].map((n) => [n.metadata.name, nodeReady(n)]),
    [
      ['n1', 'False'],
      ['n2', 'True'],
      ['n3', 'True'],
    ],
    'the overlay shows the informer as it is',
  );
  lost.close();
});

t.test(
  'AssignmentIndex: writes shown ahead of the datastore, confirmed by their events or taken back',
  async (t) => {
    const kv = new MemoryKv();
    await writeHolders(kv, [
      { vip: '198.18.0.1', holder: { node: 'n1' } },
      { vip: '198.18.0.2', holder: { node: 'n1' } },
    ]);
    const holders = new AssignmentIndex({ kv, logger: log });
    await holders.start();
    t.teardown(() => holders.close());
    const seen: HolderChange[][] = [];
    holders.on('change', (c) => seen.push(c));

    // Shown at once, before anything is written.
    const moveOne = [{ vip: '198.18.0.1', holder: { node: 'n2' } }];
    holders.ahead(moveOne);
    t.equal(holders.holder('198.18.0.1')?.node, 'n2', 'the new holder is shown at once');
    t.same(seen, [[{ vip: '198.18.0.1', before: { node: 'n1' }, after: { node: 'n2' } }]], 'and emitted');
    const { revision } = await writeHolders(kv, moveOne);
    await holders.caughtUp(revision);
    t.equal(seen.length, 1, 'its own event confirms it without a second change');
    holders.retract(moveOne);
    t.equal(holders.holder('198.18.0.1')?.node, 'n2', 'a confirmed write is not taken back');

    // A write that fails is taken back: the stored holder again, and the change back emitted.
    const moveTwo = [{ vip: '198.18.0.2', holder: { node: 'n2' } }];
    holders.ahead(moveTwo);
    t.equal(holders.vipsOf('n2').size, 2);
    holders.retract(moveTwo);
    t.equal(holders.holder('198.18.0.2')?.node, 'n1', 'taken back to the stored holder');
    t.same(seen.at(-1), [{ vip: '198.18.0.2', before: { node: 'n2' }, after: { node: 'n1' } }]);

    // While a write is ahead, another writer's event for that VIP is the datastore's word: it wins.
    holders.ahead(moveTwo);
    const other = await writeHolders(kv, [{ vip: '198.18.0.2', holder: { node: 'n3' } }]);
    await holders.caughtUp(other.revision);
    t.equal(holders.holder('198.18.0.2')?.node, 'n3', "the datastore's event wins over the lead");
    holders.retract(moveTwo);
    t.equal(holders.holder('198.18.0.2')?.node, 'n3', 'and nothing is taken back after it');
  },
);

t.test(
  "a failed assignment write is taken back from the agents' view, and the next pass writes it",
  async (t) => {
    const VIP = '198.18.0.1';
    const { clock, kv, store, informers, holders } = await twoNodeLan(t, [svc('web')], [VIP]);
    const lost = new LostNodes({ nodes: informers.nodes, clock });
    t.teardown(() => lost.close());
    const ctl = new AssignmentController({
      store,
      kv,
      holders,
      informers,
      allocations: () => [{ service: 'default/web', pool: 'lan', ips: [VIP], ports: [] }],
      logger: log,
      clock,
      lost,
    });
    ctl.start();
    t.teardown(() => ctl.close());
    await ctl.idle();
    t.equal(holders.holder(VIP)?.node, 'n1');

    // The datastore refuses the next assignment write.
    const batch = kv.batch.bind(kv);
    let refuse = true;
    kv.batch = async (ops) => {
      if (refuse && ops.some((o) => o.key.startsWith(ASSIGNMENTS_PREFIX)))
        throw new Error('datastore is read-only');
      return batch(ops);
    };
    const shown: string[] = [];
    holders.on('change', (c) =>
      shown.push(...c.map((x) => `${x.vip} ${x.before?.node} -> ${x.after?.node}`)),
    );
    lost.add('n1');
    await ctl.idle();
    t.same(
      shown,
      [`${VIP} n1 -> n2`, `${VIP} n2 -> n1`],
      'shown on n2 while written, taken back when refused',
    );
    t.equal(holders.holder(VIP)?.node, 'n1', 'the view is the stored holder again');
    refuse = false;
    clock.advance(1000);
    await until('the retried pass wrote n2', async () => {
      await ctl.idle();
      return holders.holder(VIP)?.node === 'n2';
    });
    t.equal(
      decodeHolder((await kv.get(`${ASSIGNMENTS_PREFIX}${VIP}`))!.value)?.node,
      'n2',
      'and the datastore says n2',
    );
  },
);

t.test(
  'a pass does not wait for the records of the one before; close writes the waiting ones at once',
  async (t) => {
    const { store, holders, lost, ctl } = await lostNodeLan(t, ['198.18.0.1', '198.18.0.2']);
    await ctl.idle();
    const moved = async () =>
      ((await store.list('events')).items as Event[]).filter((e) => e.reason === 'nodeAssigned').length;
    lost.add('n1');
    await until('both VIPs on n2', async () => {
      await ctl.idle();
      return holders.vipsOf('n2').size === 2;
    });
    // Its records wait; the next failover's pass runs meanwhile, its clock not moved on.
    lost.delete('n1');
    lost.add('n2');
    await until('both VIPs back on n1', async () => {
      await ctl.idle();
      return holders.vipsOf('n1').size === 2;
    });
    t.equal(await moved(), 0, 'no event yet: both passes ran while the records waited');
    await ctl.close();
    t.equal(await moved(), 4, 'close wrote the four moves without the delay');
  },
);
