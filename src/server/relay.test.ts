import t from 'tap';
import {
  FEATURE_VIPS_DELTA,
  TOPIC_VIPS,
  TOPIC_VIPS_DELTA,
  VIPS_PER_MESSAGE,
  type VipsDelta,
} from '../api/agent-protocol.js';
import { AssignmentIndex, writeHolders } from '../api/assignments.js';
import { MemoryKv } from '../api/memory-kv.js';
import { silentLogger } from '../log.js';
import { FakeClock } from '../testing/fake-clock.js';
import { until } from '../testing/until.js';

t.test(
  'Relay: pushes a node its assignment and every node the leases; a failed lease watch is resumed',
  async (t) => {
    const { Relay, TOPIC_LEASES } = await import('./relay.js');
    const { Informer } = await import('../controllers/informer.js');
    const { ResourceStore } = await import('../api/store.js');
    const { encodeLeaseValue, leaseKey } = await import('../flannel-hostgw/index.js');
    const mem = new MemoryKv();
    let failWatch: ((err: Error) => void) | undefined;
    const kv = Object.assign(Object.create(null), {
      get: (k: string) => mem.get(k),
      list: (p: string) => mem.list(p),
      put: (k: string, v: Buffer, e: number) => mem.put(k, v, e),
      delete: (k: string, e: number) => mem.delete(k, e),
      revision: () => mem.revision(),
      close: () => mem.close(),
      watch: async (
        p: string,
        from: number,
        h: { event: (e: never) => void; error: (err: Error) => void },
      ) => {
        failWatch = h.error;
        return mem.watch(p, from, h);
      },
    });
    const store = new ResourceStore({ kv: mem });
    const nodes = new Informer(store, 'nodes', { logger: silentLogger() });
    await nodes.start();
    const pushes: Array<[string, string, unknown]> = [];
    const sessions = new Map<string, unknown>([['n1', {}]]);
    const clock = new FakeClock();
    const holders = new AssignmentIndex({ kv: mem, logger: silentLogger() });
    await holders.start();
    t.teardown(() => holders.close());
    const relay = new Relay({
      nodes,
      holders,
      kv,
      target: {
        sessions,
        push: (node, topic, payload) => {
          pushes.push([node, topic, payload]);
          return sessions.has(node);
        },
      },
      clusterCidr: ['198.18.0.0/16'],
      logger: silentLogger(),
      clock,
    });
    await relay.start();
    const leasesPushed = (n: number) => {
      const last = pushes.at(-1);
      return last?.[1] === TOPIC_LEASES && (last[2] as { leases: unknown[] }).leases.length === n;
    };
    const lease = (n: number) => ({
      node: `n${n}`,
      podCIDRs: [`198.18.${n}.0/24`],
      nodeIPs: [`198.51.100.${n}`],
    });
    const node = await store.create('nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' } });
    // A Node listing its VIPs in its status (the layout before the keys) is pushed that list.
    await store.updateStatus('nodes', { ...node, status: { vips: ['198.51.100.200'] } });
    await until('a push of the assignment', () =>
      pushes.some(([, topic, p]) => topic === TOPIC_VIPS && (p as { vips: unknown[] }).vips.length > 0),
    );
    t.same(pushes.filter(([, topic]) => topic === TOPIC_VIPS).at(-1), [
      'n1',
      TOPIC_VIPS,
      { vips: [{ ip: '198.51.100.200' }] },
    ]);
    relay.sessionUp('n1');
    t.same(pushes.at(-1), ['n1', TOPIC_LEASES, { clusterCidr: ['198.18.0.0/16'], leases: [] }]);
    await mem.put(leaseKey(lease(1).podCIDRs), Buffer.from(encodeLeaseValue(lease(1))), 0);
    await until('a push of the one lease', () => leasesPushed(1));
    t.same(pushes.at(-1), ['n1', TOPIC_LEASES, { clusterCidr: ['198.18.0.0/16'], leases: [lease(1)] }]);
    await mem.put('/coreos.com/network/subnets/garbage', Buffer.from('{}'), 0);
    failWatch?.(new Error('compacted'));
    await mem.put(leaseKey(lease(2).podCIDRs), Buffer.from(encodeLeaseValue(lease(2))), 0);
    t.equal(clock.pending, 1, 'the relay waits before listing again');
    clock.advance(500);
    await until('a push of both leases after the resync', () => leasesPushed(2));
    t.same(
      pushes.at(-1),
      ['n1', TOPIC_LEASES, { clusterCidr: ['198.18.0.0/16'], leases: [lease(1), lease(2)] }],
      'the change made while the watch was down arrives after the resync; a lease that is not one is skipped',
    );
    await relay.close();
    await nodes.close();
  },
);

t.test(
  'Relay: every session is sent the MACs of all nodes when they change and when it comes up',
  async (t) => {
    const { Relay, TOPIC_PEERS } = await import('./relay.js');
    const { Informer } = await import('../controllers/informer.js');
    const { ResourceStore } = await import('../api/store.js');
    const mem = new MemoryKv();
    const store = new ResourceStore({ kv: mem });
    const nodes = new Informer(store, 'nodes', { logger: silentLogger() });
    await nodes.start();
    const pushes: Array<[string, unknown]> = [];
    const sessions = new Map<string, unknown>([
      ['n1', {}],
      ['n2', {}],
    ]);
    const holders = new AssignmentIndex({ kv: mem, logger: silentLogger() });
    await holders.start();
    t.teardown(() => holders.close());
    const relay = new Relay({
      nodes,
      holders,
      kv: mem,
      target: { sessions, push: (node, topic, payload) => pushes.push([node, payload]) > 0 && topic !== '' },
      clusterCidr: ['198.18.0.0/16'],
      logger: silentLogger(),
      clock: new FakeClock(),
    });
    await relay.start();
    t.teardown(async () => {
      await relay.close();
      await nodes.close();
    });
    const peers = () => pushes.filter(([, p]) => (p as { macs?: unknown }).macs !== undefined);
    const withIfs = async (name: string, macs: string[]) => {
      const n = await store.create('nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name } });
      await store.updateStatus('nodes', {
        ...n,
        status: { interfaces: macs.map((mac, i) => ({ name: `eth${i}`, mac, addresses: [] })) },
      });
    };
    await withIfs('n1', ['02:00:00:00:00:01', '00:00:00:00:00:00']);
    await withIfs('n2', ['02:00:00:00:00:0B', 'not a mac']);
    const both = { macs: ['02:00:00:00:00:01', '02:00:00:00:00:0b'] };
    await until('both MACs pushed', () => JSON.stringify(peers().at(-1)?.[1]) === JSON.stringify(both));
    t.same(
      peers().slice(-2),
      [
        ['n1', both],
        ['n2', both],
      ],
      'to every session, lower case, without the all-zero MAC or a malformed one',
    );
    const before = peers().length;
    const n1 = await store.get('nodes', 'n1');
    await store.updateStatus('nodes', { ...n1!, status: { ...n1!.status, vips: ['198.51.100.200'] } });
    await until('the assignment change seen', () => nodes.items.get('n1')?.status?.vips?.length === 1);
    t.equal(peers().length, before, 'a change that leaves the MACs alone sends no list');
    relay.sessionUp('n2');
    t.same(peers().at(-1), ['n2', both], 'a session that comes up is sent the list');
    t.equal(TOPIC_PEERS, 'vipmesh/peers');
  },
);

t.test(
  'Relay: an agent that takes deltas gets its set in bounded messages, then only changes; an older one whole sets',
  async (t) => {
    const { Relay } = await import('./relay.js');
    const { Informer } = await import('../controllers/informer.js');
    const { ResourceStore } = await import('../api/store.js');
    const mem = new MemoryKv();
    const nodes = new Informer(new ResourceStore({ kv: mem }), 'nodes', { logger: silentLogger() });
    await nodes.start();
    const holders = new AssignmentIndex({ kv: mem, logger: silentLogger() });
    await holders.start();
    const pushes: Array<[string, string, unknown]> = [];
    const sessions = new Map<string, unknown>([
      ['new', {}],
      ['old', {}],
    ]);
    const relay = new Relay({
      nodes,
      holders,
      kv: mem,
      target: { sessions, push: (node, topic, payload) => pushes.push([node, topic, payload]) > 0 },
      clusterCidr: ['198.18.0.0/16'],
      logger: silentLogger(),
      clock: new FakeClock(),
    });
    await relay.start();
    t.teardown(async () => {
      await relay.close();
      await holders.close();
      await nodes.close();
    });
    const ip = (i: number) => `198.18.${Math.floor(i / 250)}.${(i % 250) + 1}`;
    const N = VIPS_PER_MESSAGE + 10;
    const { revision } = await writeHolders(
      mem,
      Array.from({ length: N }, (_, i) => ({ vip: ip(i), holder: { node: i % 2 === 0 ? 'new' : 'old' } })),
    );
    await holders.caughtUp(revision);
    t.equal(holders.all.size, N, 'the index has them');
    const deltas = () =>
      pushes
        .filter(([n, topic]) => n === 'new' && topic === TOPIC_VIPS_DELTA)
        .map(([, , p]) => p as VipsDelta);
    const wholes = () =>
      pushes
        .filter(([n, topic]) => n === 'old' && topic === TOPIC_VIPS)
        .map(([, , p]) => p as { vips: unknown[] });
    pushes.length = 0;
    relay.sessionUp('new', { features: [FEATURE_VIPS_DELTA] });
    relay.sessionUp('old', {});
    t.equal(wholes().length, 1, 'the older agent gets one whole set');
    t.equal(wholes()[0]!.vips.length, N / 2);
    t.equal(
      pushes.filter(([n, topic]) => n === 'old' && topic === TOPIC_VIPS_DELTA).length,
      0,
      'and no delta',
    );
    t.same(
      deltas().map((d) => [d.reset === true, d.add?.length ?? 0, d.remove?.length ?? 0]),
      [[true, N / 2, 0]],
      'the other its set in one message with reset',
    );
    // Move every VIP of "old" to "new": one delta for "new", a whole (empty) set for "old".
    pushes.length = 0;
    const moved = [...holders.vipsOf('old').keys()];
    await writeHolders(
      mem,
      moved.map((vip) => ({ vip, holder: { node: 'new', interfaces: ['eth1'] } })),
    );
    await until('the move pushed', () => wholes().length > 0 && deltas().length > 0);
    t.same(wholes(), [{ vips: [] }], 'the older agent: its whole set, now empty');
    t.same(
      deltas().map((d) => [d.reset === true, d.add?.length ?? 0, d.remove?.length ?? 0]),
      [[false, N / 2, 0]],
      'the new holder: only what it gains',
    );
    t.same(deltas()[0]!.add![0], { ip: moved[0], interfaces: ['eth1'] }, 'with the interfaces');
    // A session that comes up again with more than one message's worth: several, the first resetting.
    pushes.length = 0;
    relay.sessionUp('new', { features: [FEATURE_VIPS_DELTA] });
    t.same(
      deltas().map((d) => [d.reset === true, d.add?.length ?? 0]),
      [
        [true, VIPS_PER_MESSAGE],
        [false, N - VIPS_PER_MESSAGE],
      ],
      `no message above ${VIPS_PER_MESSAGE} VIPs`,
    );
    pushes.length = 0;
    await writeHolders(mem, [{ vip: ip(0), holder: undefined }]);
    await until('the release pushed', () => deltas().length > 0);
    t.same(deltas(), [{ remove: [ip(0)] }], 'a deleted key: removed from its holder, not marked moved');
    // "new" loses a VIP to "old": the removal says another node holds it now (the agent answers until
    // that node announces it).
    pushes.length = 0;
    await writeHolders(mem, [{ vip: ip(2), holder: { node: 'old' } }]);
    await until('the move pushed', () => deltas().length > 0);
    t.same(deltas(), [{ remove: [ip(2)], moved: [ip(2)] }], 'a moved VIP: removed and marked moved');
  },
);

t.test('chunkDelta: each message marks the moved VIPs among its own removals', async (t) => {
  const { chunkDelta } = await import('../api/agent-protocol.js');
  const remove = ['a', 'b', 'c', 'd', 'e'];
  t.same(chunkDelta({ remove, moved: ['b', 'e'], add: [{ ip: 'x' }] }, 2), [
    { remove: ['a', 'b'], moved: ['b'] },
    { remove: ['c', 'd'] },
    { remove: ['e'], moved: ['e'], add: [{ ip: 'x' }] },
  ]);
});
