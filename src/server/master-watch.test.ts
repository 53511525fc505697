import { createServer, type Server } from 'node:net';
import { Etcd3 } from 'etcd3';
import t from 'tap';
import { silentLogger } from '../log.js';
import { createRegistry } from '../metrics.js';
import { startTestDatastore } from '../testing/datastores.js';
import { FakeClock } from '../testing/fake-clock.js';
import { until } from '../testing/until.js';
import { MasterElection } from './election.js';
import { decodeLiveness, encodeLiveness, MasterWatch, tcpReachable } from './master-watch.js';

t.test('the liveness value: an address, or nothing for an older server or anything malformed', async (t) => {
  t.same(decodeLiveness(encodeLiveness(5, { host: '198.51.100.11', port: 6443 })), {
    host: '198.51.100.11',
    port: 6443,
  });
  for (const v of [
    '1700000000000',
    encodeLiveness(5, undefined),
    '{"host":"x","port":0}',
    '{"host":"","port":1}',
    'nope',
    'null',
  ])
    t.equal(decodeLiveness(v), undefined, v);
});

t.test('tcpReachable: a listening port is up; a closed one is not', async (t) => {
  const srv = createServer((s) => s.destroy());
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  t.equal(await tcpReachable({ host: '127.0.0.1', port }, 500), true);
  await new Promise((r) => srv.close(r));
  t.equal(await tcpReachable({ host: '127.0.0.1', port }, 500), false, 'refused');
});

for (const which of ['etcd', 'kine'] as const) {
  t.test(
    `${which}: a master most servers cannot reach is deposed; one server alone deposes nobody`,
    async (t) => {
      const ds = await startTestDatastore(which);
      t.teardown(() => ds.stop());
      const clients: Etcd3[] = [];
      const client = () => {
        const c = new Etcd3({ hosts: ds.endpoint });
        clients.push(c);
        return c;
      };
      t.teardown(() => {
        for (const c of clients) c.close();
      });
      // A's API port: a listener the test closes, as when A's process dies (refused) or its machine goes.
      const apiA: Server = createServer((s) => s.destroy());
      await new Promise<void>((r) => apiA.listen(0, '127.0.0.1', r));
      const portA = (apiA.address() as { port: number }).port;
      const elect = (name: string, port?: number) =>
        new MasterElection({
          etcd: client(),
          name,
          ttlSeconds: 60,
          logger: silentLogger(),
          onChange: () => undefined,
          ...(port === undefined ? {} : { address: { host: '127.0.0.1', port } }),
        });
      const a = elect('a', portA);
      a.start();
      await until('a master', () => a.master);
      const b = elect('b');
      const c = elect('c');
      b.start();
      c.start();
      t.teardown(async () => {
        for (const e of [a, b, c]) await e.close();
      });
      await until(
        'three liveness keys',
        async () => (await client().getAll().prefix('/vipmesh/servers/').count()) === 3,
      );
      const registry = createRegistry();
      const watch = (self: string, e: MasterElection) =>
        new MasterWatch({
          etcd: client(),
          self,
          isMaster: () => e.master,
          logger: silentLogger(),
          clock: new FakeClock(),
          registry,
          misses: 3,
          timeoutMs: 500,
        });
      const wb = watch('b', b);
      const wc = watch('c', c);
      for (let i = 0; i < 6; i++) await wb.tick();
      t.ok(a.master && !b.master, 'a answers: six rounds, a stays master');

      await new Promise((r) => apiA.close(r));
      for (let i = 0; i < 6; i++) await wb.tick();
      t.ok(a.master && !b.master && !c.master, 'b alone cannot reach a: one of three servers, a stays');
      await wc.tick();
      await wc.tick();
      t.ok(a.master, 'c: two misses, not yet');
      // Rounds go on as the watch's loop would run them (a write slower than its deadline still commits,
      // and the next round counts it). With a 60 s TTL, only the revoke can hand over this fast.
      await until(
        'b or c elected once a is deposed',
        async () => {
          if (b.master || c.master) return true;
          await wc.tick().catch(() => undefined);
          return b.master || c.master;
        },
        { timeoutMs: 10_000 },
      );
      await until('a knows it lost the role', () => !a.master, { timeoutMs: 10_000 });
      t.match(
        await registry.getSingleMetricAsString('vipmesh_controlplane_master_deposed_total'),
        /vipmesh_controlplane_master_deposed_total\{master="a"\} 1/,
      );
      // The other server still had the old master in mind: it finds the new one, and revokes nothing.
      const [next, other] = b.master ? ([wb, wc] as const) : ([wc, wb] as const);
      await other.tick();
      await next.tick();
      t.match(
        await registry.getSingleMetricAsString('vipmesh_controlplane_master_deposed_total'),
        /vipmesh_controlplane_master_deposed_total\{master="a"\} 1$/m,
        'deposed once',
      );
    },
  );
}

t.test('a master that published no address (an older server) is never probed', async (t) => {
  const ds = await startTestDatastore('kine');
  t.teardown(() => ds.stop());
  const etcd = new Etcd3({ hosts: ds.endpoint });
  t.teardown(() => etcd.close());
  const a = new MasterElection({
    etcd,
    name: 'a',
    ttlSeconds: 60,
    logger: silentLogger(),
    onChange: () => {},
  });
  a.start();
  t.teardown(() => a.close());
  await until('a master', () => a.master);
  let probes = 0;
  const watch = new MasterWatch({
    etcd,
    self: 'b',
    isMaster: () => false,
    logger: silentLogger(),
    clock: new FakeClock(),
    probe: async () => {
      probes++;
      return false;
    },
  });
  for (let i = 0; i < 5; i++) await watch.tick();
  t.equal(probes, 0);
  t.ok(a.master);
});
