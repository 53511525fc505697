import t, { type Test } from 'tap';
import { assignedVips } from '../api/agent-protocol.js';
import { MemoryKv } from '../api/memory-kv.js';
import { ResourceStore } from '../api/store.js';
import {
  type ConfigMap,
  type IPAddressPool,
  type L2Advertisement,
  type Node,
  nodeReady,
} from '../api/types.js';
import { silentLogger } from '../log.js';
import { FakeClock } from '../testing/fake-clock.js';
import { until } from '../testing/until.js';
import { recordEvent } from './events.js';
import { Informer, Reconciler } from './informer.js';
import { NodeLifecycle, SERVER_ANNOTATION, withReady } from './node-lifecycle.js';
import { poolConfig } from './pool-config.js';
import { leaseOf, podCIDRsOf } from './subnets.js';

const log = silentLogger();

t.test(
  'poolConfig: pools, legacy ConfigMap pools (announced everywhere), invalid objects skipped',
  async (t) => {
    const pool: IPAddressPool = {
      apiVersion: 'metallb.io/v1beta1',
      kind: 'IPAddressPool',
      metadata: { name: 'lan', namespace: 'default' },
      spec: { addresses: ['198.51.100.200/30'] },
    };
    const broken: IPAddressPool = { ...pool, metadata: { name: 'broken' }, spec: { addresses: ['nope'] } };
    const legacy: ConfigMap = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'config', namespace: 'metallb-system' },
      data: {
        config: 'address-pools:\n- name: old\n  protocol: layer2\n  addresses:\n  - 198.51.100.240/30\n',
      },
    };
    const other: ConfigMap = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'x' },
      data: { a: 'b' },
    };
    const badLegacy: ConfigMap = { ...legacy, metadata: { name: 'y' }, data: { config: 'address-pools: 3' } };
    const adv: L2Advertisement = {
      apiVersion: 'metallb.io/v1beta1',
      kind: 'L2Advertisement',
      metadata: { name: 'lan' },
      spec: { ipAddressPools: ['lan'] },
    };
    const badAdv: L2Advertisement = {
      ...adv,
      metadata: { name: 'bad' },
      spec: { ipAddressPools: 'lan' as never },
    };
    const cfg = poolConfig([broken, pool], [other, badLegacy, legacy], [badAdv, adv], log);
    t.same(
      cfg.pools.map((p) => p.name),
      ['lan', 'old'],
    );
    t.same(
      cfg.advertisements.map((a) => a.name),
      ['lan', 'legacy-configmap'],
    );
    t.same(cfg.advertisements[1]!.ipAddressPools, ['old']);
  },
);

t.test(
  'recordEvent writes a core/v1 Event about the object; a store failure is logged, not thrown',
  async (t) => {
    const store = new ResourceStore({ kv: new MemoryKv() });
    const svc = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', namespace: 'default', uid: 'u1' },
    };
    await recordEvent(
      store,
      { involved: svc, reason: 'R', message: 'm', type: 'Normal', component: 'c', host: 'h', now: 0 },
      log,
    );
    const ev = (await store.list('events')).items[0]!;
    t.equal(ev.reason, 'R');
    t.same(ev.involvedObject, { kind: 'Service', name: 'web', namespace: 'default', uid: 'u1' });
    t.equal(ev.firstTimestamp, '1970-01-01T00:00:00Z');
    await store.close();
    const closed = new ResourceStore({
      kv: {
        ...new MemoryKv(),
        put: async () => {
          throw new Error('down');
        },
      } as unknown as MemoryKv,
    });
    await recordEvent(
      closed,
      { involved: svc, reason: 'R', message: 'm', type: 'Warning', component: 'c', now: 0 },
      log,
    );
    t.pass('no throw');
  },
);

t.test('Reconciler: kicks coalesce, a failing pass is retried on the clock', async (t) => {
  const clock = new FakeClock();
  let runs = 0;
  let fail = true;
  const r = new Reconciler(
    async () => {
      runs++;
      if (fail) throw new Error('boom');
    },
    { logger: log, clock, retryMs: 1000 },
  );
  r.kick();
  r.kick();
  await r.idle();
  t.equal(runs, 1, 'two kicks before the run: one pass');
  fail = false;
  clock.advance(1000);
  await r.idle();
  t.equal(runs, 2, 'retried after retryMs');
  await r.close();
  r.kick();
  await r.idle();
  t.equal(runs, 2, 'nothing after close');
});

t.test('Informer: lists, follows the watch, reports deletes', async (t) => {
  const store = new ResourceStore({ kv: new MemoryKv() });
  await store.create('nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' } });
  const inf = new Informer(store, 'nodes', { logger: log });
  const seen: string[] = [];
  inf.on('change', (e) => seen.push(`${e.type}:${e.key}`));
  await inf.start();
  t.ok(inf.synced);
  await store.create('nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n2' } });
  await store.delete('nodes', 'n1');
  await until('three changes', () => seen.length >= 3);
  t.same(seen, ['ADDED:n1', 'ADDED:n2', 'DELETED:n1']);
  t.same([...inf.items.keys()], ['n2']);
  await inf.close();
});

t.test(
  'NodeLifecycle: seen -> Ready; lost -> NotReady unless reconnected or owned by another server',
  async (t) => {
    const clock = new FakeClock();
    const store = new ResourceStore({ kv: new MemoryKv(), clock });
    const sessions = new Set<string>();
    let nodes: Node[] = [];
    const lifecycle = () =>
      new NodeLifecycle({
        store,
        server: 's1',
        hasSession: (n) => sessions.has(n),
        nodes: () => nodes,
        serverAlive: (name) => name === 's1',
        graceMs: 1000,
        logger: log,
        clock,
      });
    let lc = lifecycle();
    sessions.add('n1');
    await lc.seen('n1', { labels: { a: 'b' }, addresses: [{ type: 'InternalIP', address: '198.51.100.1' }] });
    let n = await store.get('nodes', 'n1');
    t.equal(n.status?.conditions?.[0]?.status, 'True');
    t.equal(n.metadata.annotations?.[SERVER_ANNOTATION], 's1');
    t.equal(n.metadata.labels?.['a'], 'b');
    await lc.lost('n1', 'still has a session');
    t.equal((await store.get('nodes', 'n1')).status?.conditions?.[0]?.status, 'True', 'a live session wins');
    sessions.delete('n1');
    await lc.lost('n1', 'heartbeat timeout');
    n = await store.get('nodes', 'n1');
    t.equal(n.status?.conditions?.[0]?.status, 'False');
    t.equal(n.status?.conditions?.[0]?.message, 'heartbeat timeout');
    await lc.seen('n1', {}); // no session any more: ignored
    t.equal((await store.get('nodes', 'n1')).status?.conditions?.[0]?.status, 'False');

    // Sweep, from a fresh start: an own Ready node without a session after the grace; another server's
    // node once it is dead.
    await lc.close();
    lc = lifecycle();
    sessions.add('n2');
    await lc.seen('n2', {});
    sessions.delete('n2');
    const gone = await store.create('nodes', {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: 'n3', annotations: { [SERVER_ANNOTATION]: 's9' } },
    });
    await store.updateStatus('nodes', {
      ...gone,
      status: { conditions: withReady([], 'True', 'x', 'y', 'z') },
    });
    nodes = (await store.list('nodes')).items;
    await lc.sweep();
    t.equal((await store.get('nodes', 'n2')).status?.conditions?.[0]?.status, 'True', 'within the grace');
    clock.advance(1500);
    lc.setMaster(true);
    await lc.sweep();
    t.equal((await store.get('nodes', 'n2')).status?.conditions?.[0]?.status, 'False', 'after the grace');
    t.equal(
      (await store.get('nodes', 'n3')).status?.conditions?.[0]?.status,
      'True',
      'not yet: just became master',
    );
    clock.advance(1500);
    nodes = (await store.list('nodes')).items;
    await lc.sweep();
    t.equal(
      (await store.get('nodes', 'n3')).status?.conditions?.[0]?.status,
      'True',
      'its server just seen gone: the agent, refused while the old session lasted, may reconnect now',
    );
    clock.advance(1999);
    await lc.sweep();
    t.equal((await store.get('nodes', 'n3')).status?.conditions?.[0]?.status, 'True', 'not yet');
    clock.advance(1);
    await lc.sweep();
    t.equal(
      (await store.get('nodes', 'n3')).status?.conditions?.[0]?.status,
      'False',
      "a dead server's node, 2 s after the server was seen gone",
    );
    lc.start();
    await lc.close();
  },
);

t.test(
  "NodeLifecycle: a lost node is written from the informer's copy; a stale copy costs a fresh read, never a lost write",
  async (t) => {
    const { kv, store, sessions, lc } = await judgingLifecycle(t, ['n1', 'n2']);
    let reads = 0;
    const get = kv.get.bind(kv);
    kv.get = (key: string) => {
      reads++;
      return get(key);
    };

    // Current copy: one read (the write's own), and the node is NotReady.
    sessions.delete('n1');
    await lc.lost('n1', 'heartbeat timeout');
    t.equal(reads, 1, "the informer's current copy saved a read: only the write's own");
    t.equal((await store.get('nodes', 'n1')).status?.conditions?.[0]?.status, 'False');

    // A copy older than a write made since (a label): the conditional write fails, a fresh read follows,
    // and neither the label nor the NotReady is lost.
    const n2 = await store.get('nodes', 'n2');
    await store.update('nodes', { ...n2, metadata: { ...n2.metadata, labels: { zone: 'b' } } });
    sessions.delete('n2');
    await lc.lost('n2', 'heartbeat timeout');
    const after = await store.get('nodes', 'n2');
    t.equal(after.status?.conditions?.[0]?.status, 'False', 'NotReady written after the conflict');
    t.equal(after.metadata.labels?.['zone'], 'b', 'the newer write is kept');

    // A copy that says NotReady while the store says Ready (a reconnect the informer has not seen) is not
    // trusted to skip the write.
    sessions.add('n1');
    await lc.seen('n1', {});
    t.equal((await store.get('nodes', 'n1')).status?.conditions?.[0]?.status, 'True');
    sessions.delete('n1');
    await lc.lost('n1', 'lost again');
    t.equal((await store.get('nodes', 'n1')).status?.conditions?.[0]?.message, 'lost again');
  },
);

t.test(
  'NodeLifecycle: after a restart, a node Ready before it that loses its session again is left to the sweep',
  async (t) => {
    const clock = new FakeClock();
    const store = new ResourceStore({ kv: new MemoryKv(), clock });
    const sessions = new Set<string>(['n1', 'n2', 'n3']);
    let nodes: Node[] = [];
    const lifecycle = () =>
      new NodeLifecycle({
        store,
        server: 's1',
        hasSession: (n) => sessions.has(n),
        nodes: () => nodes,
        graceMs: 3000,
        logger: log,
        clock,
      });
    const before = lifecycle();
    await before.seen('n1', {});
    await before.seen('n2', {});
    await before.close();
    clock.advance(60_000);
    const lc = lifecycle(); // the restarted server
    await lc.seen('n1', {});
    await lc.seen('n2', {});
    clock.advance(1000);
    await lc.seen('n3', {}); // a node that joins after the start
    sessions.delete('n3');
    await lc.lost('n3', 'heartbeat timeout');
    t.equal(
      (await store.get('nodes', 'n3')).status?.conditions?.[0]?.status,
      'False',
      'new since the start: at once',
    );
    // Both agents reconnect to the restarted server and lose the new session again while it is busy.
    sessions.delete('n1');
    sessions.delete('n2');
    await lc.lost('n1', 'heartbeat timeout');
    await lc.lost('n2', 'heartbeat timeout');
    for (const name of ['n1', 'n2']) {
      t.equal((await store.get('nodes', name)).status?.conditions?.[0]?.status, 'True', `${name} left Ready`);
    }
    sessions.add('n1'); // n1 is back before the grace ends, n2 is not
    clock.advance(2500);
    nodes = (await store.list('nodes')).items;
    await lc.sweep();
    t.equal((await store.get('nodes', 'n1')).status?.conditions?.[0]?.status, 'True', 'reconnected: Ready');
    const n2 = (await store.get('nodes', 'n2')).status?.conditions?.[0];
    t.equal(n2?.status, 'False', 'still without a session after the grace: NotReady');
    await lc.close();
  },
);

t.test('NodeLifecycle: once the server stops, a lost session or a stale node is left Ready', async (t) => {
  const clock = new FakeClock();
  const store = new ResourceStore({ kv: new MemoryKv(), clock });
  const sessions = new Set<string>(['n1', 'n2']);
  let nodes: Node[] = [];
  const lc = new NodeLifecycle({
    store,
    server: 's1',
    hasSession: (n) => sessions.has(n),
    nodes: () => nodes,
    graceMs: 1000,
    logger: log,
    clock,
  });
  await lc.seen('n1', {});
  await lc.seen('n2', {});
  nodes = (await store.list('nodes')).items;
  clock.advance(1500);
  lc.serverStopping();
  sessions.clear();
  await lc.lost('n1', 'websocket closed (1001: agent shutting down)');
  await lc.sweep();
  for (const name of ['n1', 'n2']) {
    t.equal((await store.get('nodes', name)).status?.conditions?.[0]?.status, 'True', `${name} Ready`);
  }
  await lc.close();
});

t.test('leaseOf/podCIDRsOf/assignedVips read what the controllers wrote', async (t) => {
  const node: Node = {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: 'n1' },
    spec: { podCIDR: '198.18.1.0/24' },
    status: {
      addresses: [
        { type: 'InternalIP', address: '198.51.100.1' },
        { type: 'InternalIP', address: '2001:db8::1' },
        { type: 'Hostname', address: 'n1' },
      ],
      vips: ['198.51.100.200', '198.51.100.201'],
      vipInterfaces: { '198.51.100.201': ['eth1'] },
    },
  };
  t.same(podCIDRsOf(node), ['198.18.1.0/24']);
  t.same(leaseOf(node), {
    node: 'n1',
    podCIDRs: ['198.18.1.0/24'],
    nodeIPs: ['198.51.100.1', '2001:db8::1'],
  });
  t.equal(leaseOf({ ...node, spec: {} }), undefined, 'no subnet yet');
  t.same(assignedVips(node), [{ ip: '198.51.100.200' }, { ip: '198.51.100.201', interfaces: ['eth1'] }]);
  t.same(assignedVips(undefined), []);
});

t.test('EventReaper deletes events past the TTL, on its interval', async (t) => {
  const { EventReaper } = await import('./events.js');
  const clock = new FakeClock(Date.parse('2026-01-01T12:00:00Z'));
  const store = new ResourceStore({ kv: new MemoryKv(), clock });
  const svc = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default' } };
  await recordEvent(
    store,
    {
      involved: svc,
      reason: 'Old',
      message: 'm',
      type: 'Normal',
      component: 'c',
      now: Date.parse('2026-01-01T10:00:00Z'),
    },
    log,
  );
  await recordEvent(
    store,
    {
      involved: svc,
      reason: 'New',
      message: 'm',
      type: 'Normal',
      component: 'c',
      now: Date.parse('2026-01-01T11:30:00Z'),
    },
    log,
  );
  const reaper = new EventReaper({ store, logger: log, clock, intervalMs: 1000 });
  reaper.start();
  clock.advance(1000);
  await until('the first pass to finish and schedule the next', () => clock.pending === 1);
  t.same(
    (await store.list('events')).items.map((e) => e.reason),
    ['New'],
    'the two-hour-old event is gone, the half-hour-old one stays',
  );
  clock.advance(3_600_000);
  t.equal(await reaper.reap(), 1, 'an hour later the other goes too');
  await reaper.close();
});

/**
 * A NodeLifecycle of server s1 handing its verdicts to `verdicts`, with `names` connected and seen; the
 * informer's copy is what `refresh` last read from the store.
 */
async function judgingLifecycle(
  t: Test,
  names: string[],
  verdicts?: { add(n: string): void; delete(n: string): void },
) {
  const clock = new FakeClock();
  const kv = new MemoryKv();
  const store = new ResourceStore({ kv, clock });
  const sessions = new Set<string>(names);
  let cached: Node[] = [];
  const lc = new NodeLifecycle({
    store,
    server: 's1',
    hasSession: (n) => sessions.has(n),
    nodes: () => cached,
    graceMs: 0,
    ...(verdicts === undefined ? {} : { verdicts }),
    logger: log,
    clock,
  });
  t.teardown(() => lc.close());
  for (const n of names) await lc.seen(n, {});
  const refresh = async () => {
    cached = (await store.list('nodes')).items;
  };
  await refresh();
  return { kv, store, sessions, lc, refresh };
}

t.test('NodeLifecycle: the NotReady write starts after the assignment pass its verdict kicked', async (t) => {
  const order: string[] = [];
  // As the assignment controller does: the verdict kicks a pass that starts at the end of the turn.
  const { store, sessions, lc } = await judgingLifecycle(t, ['n1'], {
    add: () => {
      order.push('verdict');
      setImmediate(() => order.push('pass'));
    },
    delete: () => undefined,
  });
  const updateStatus = store.updateStatus.bind(store);
  store.updateStatus = ((...args: Parameters<typeof updateStatus>) => {
    order.push('write');
    return updateStatus(...args);
  }) as typeof store.updateStatus;
  sessions.delete('n1');
  await lc.lost('n1', 'heartbeat timeout');
  t.same(order, ['verdict', 'pass', 'write'], 'the pass plans and pushes before the write takes the thread');
  t.equal(nodeReady(await store.get('nodes', 'n1')), 'False', 'and the NotReady is written');
});

t.test(
  'NodeLifecycle: a lost node is judged at once, before its write; the verdict is lifted when no write follows',
  async (t) => {
    const calls: string[] = [];
    const judged = new Set<string>();
    const { store, sessions, lc, refresh } = await judgingLifecycle(t, ['n1', 'n2', 'n3'], {
      add: (n) => {
        judged.add(n);
        calls.push(`add ${n}`);
      },
      delete: (n) => {
        judged.delete(n);
        calls.push(`delete ${n}`);
      },
    });
    calls.length = 0;

    // n1 lost: judged before the lost() call returns, then written; the verdict stands until the informer
    // shows the NotReady (not this class's business).
    sessions.delete('n1');
    const writing = lc.lost('n1', 'heartbeat timeout');
    t.same(calls, ['add n1'], 'judged at once, before the NotReady is written');
    t.equal(nodeReady(await store.get('nodes', 'n1')), 'True', 'the store still says Ready at that moment');
    await writing;
    t.equal(nodeReady(await store.get('nodes', 'n1')), 'False', 'then the NotReady is written');
    t.ok(judged.has('n1'), 'and the verdict stands');

    // n2 lost, but its session is back before the write: no NotReady, the verdict is lifted.
    sessions.delete('n2');
    const n2 = lc.lost('n2', 'heartbeat timeout');
    sessions.add('n2');
    await n2;
    t.equal(nodeReady(await store.get('nodes', 'n2')), 'True', 'n2 stays Ready');
    t.notOk(judged.has('n2'), "n2's verdict was lifted");

    // n3 is another server's now (its agent moved): not judged at all.
    const n3 = await store.get('nodes', 'n3');
    await store.update('nodes', {
      ...n3,
      metadata: { ...n3.metadata, annotations: { [SERVER_ANNOTATION]: 's2' } },
    });
    await refresh();
    sessions.delete('n3');
    calls.length = 0;
    await lc.lost('n3', 'heartbeat timeout');
    t.same(calls, [], "another server's node is not judged here");

    // A session that comes up lifts a standing verdict.
    sessions.add('n1');
    await lc.seen('n1', {});
    t.notOk(judged.has('n1'), "n1's session is back: its verdict is lifted");
    t.equal(nodeReady(await store.get('nodes', 'n1')), 'True');
  },
);
