import t from 'tap';
import { MemoryKv } from '../api/memory-kv.js';
import { silentLogger } from '../log.js';
import { FakeClock } from '../testing/fake-clock.js';
import { until } from '../testing/until.js';

t.test(
  'Relay: pushes a node its assignment and every node the leases; a failed lease watch is resumed',
  async (t) => {
    const { Relay, TOPIC_LEASES, TOPIC_VIPS } = await import('./relay.js');
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
    const relay = new Relay({
      nodes,
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
