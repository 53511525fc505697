import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { localRegistration } from '../agent/agent.js';
import { MemoryKv } from '../api/memory-kv.js';
import { silentLogger } from '../log.js';
import { createRegistry } from '../metrics.js';
import { BOOTSTRAP_KEY, sharedCredentials } from '../server/bootstrap.js';
import { FakeClock } from '../testing/fake-clock.js';
import { until } from '../testing/until.js';
import { serveMetrics, splitHostPort } from './metrics-http.js';
import { registerProcessMetrics } from './process-metrics.js';

t.test('splitHostPort: host:port, [v6]:port, a bare :port; anything else is a bad flag', async (t) => {
  t.same(splitHostPort('127.0.0.1:7472'), { host: '127.0.0.1', port: 7472 });
  t.same(splitHostPort('[::1]:80'), { host: '::1', port: 80 });
  t.same(splitHostPort(':9'), { host: '127.0.0.1', port: 9 });
  t.throws(() => splitHostPort('localhost'), { code: 'VIPMESH_CLUSTER_BAD_FLAG' });
  t.throws(() => splitHostPort('h:70000'), { code: 'VIPMESH_CLUSTER_BAD_FLAG' });
  fc.assert(
    fc.property(fc.ipV4(), fc.integer({ min: 0, max: 65535 }), (host, port) => {
      const r = splitHostPort(`${host}:${port}`);
      return r.host === host && r.port === port;
    }),
  );
  fc.assert(
    fc.property(fc.ipV6(), fc.integer({ min: 0, max: 65535 }), (host, port) => {
      const r = splitHostPort(`[${host}]:${port}`);
      return r.host === host && r.port === port;
    }),
  );
  fc.assert(
    fc.property(fc.string(), (s) => {
      try {
        const r = splitHostPort(s);
        return Number.isInteger(r.port) && r.port >= 0 && r.port <= 65535;
      } catch (err) {
        return (err as { code?: string }).code === 'VIPMESH_CLUSTER_BAD_FLAG';
      }
    }),
  );
});

t.test(
  'the metrics server: text format at /metrics, 404 elsewhere, a taken port is VIPMESH_CLUSTER_LISTEN',
  async (t) => {
    const registry = createRegistry();
    registerProcessMetrics(registry);
    registerProcessMetrics(registry); // twice is harmless
    const m = await serveMetrics('127.0.0.1:0', registry);
    t.teardown(() => m.close());
    const text = await (await fetch(m.url)).text();
    t.match(text, /^process_resident_memory_bytes \d+$/m);
    t.match(text, /^process_cpu_seconds_total [\d.e-]+$/m);
    t.match(text, /^process_open_fds \d+$/m);
    t.equal((await fetch(m.url.replace('/metrics', '/'))).status, 404);
    const port = new URL(m.url).port;
    await t.rejects(serveMetrics(`127.0.0.1:${port}`, registry), { code: 'VIPMESH_CLUSTER_LISTEN' });
  },
);

t.test('localRegistration: the node IPs given, labels with the hostname label, interfaces', async (t) => {
  const r = localRegistration({ nodeName: 'pi1', nodeIps: ['198.51.100.7'], labels: { zone: 'a' } });
  t.same(
    r.addresses?.filter((a) => a.type === 'InternalIP'),
    [{ type: 'InternalIP', address: '198.51.100.7' }],
  );
  t.equal(r.labels?.['kubernetes.io/hostname'], 'pi1');
  t.equal(r.labels?.['zone'], 'a');
  t.ok(Array.isArray(r.interfaces));
  const auto = localRegistration({ nodeName: 'pi1' });
  t.ok(
    (auto.addresses ?? []).some((a) => a.type === 'InternalIP'),
    'an address is found without --node-ip',
  );
});

t.test(
  'sharedCredentials: the first server stores, the next takes them; garbage is VIPMESH_CLUSTER_BOOTSTRAP',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'vipmesh-bootstrap-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const kv = new MemoryKv();
    const a = await sharedCredentials(kv, join(dir, 'a'), ['198.51.100.1']);
    const b = await sharedCredentials(kv, join(dir, 'b'), ['198.51.100.2']);
    t.equal(b.joinToken, a.joinToken);
    t.equal(b.adminToken, a.adminToken);
    t.equal(b.caCertPem, a.caCertPem);
    const again = await sharedCredentials(kv, join(dir, 'b'), []);
    t.equal(again.caHash, a.caHash, 'a restart reads the same');
    const bad = new MemoryKv();
    await bad.put(BOOTSTRAP_KEY, Buffer.from('{not json'), 0);
    await t.rejects(sharedCredentials(bad, join(dir, 'c'), []), { code: 'VIPMESH_CLUSTER_BOOTSTRAP' });
    t.ok(silentLogger());
  },
);

t.test(
  'Relay: pushes a node its assignment and every node the leases; a failed lease watch is resumed',
  async (t) => {
    const { Relay, TOPIC_LEASES, TOPIC_VIPS } = await import('../server/relay.js');
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
