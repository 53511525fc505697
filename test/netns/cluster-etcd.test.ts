/**
 * Issue 7 end to end on a real etcd (Debian etcd-server) as `--datastore-endpoint`: the same scenarios as
 * cluster.test.ts, then a second server on that etcd and the master role failing over to it.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { sleep, until } from './cluster-fixture.js';
import { runScenarios, SRV_URL, startCluster } from './cluster-suite.js';
import { canUseNetns } from './lab.js';

function hasEtcd(): boolean {
  try {
    execFileSync('etcd', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const skip = !canUseNetns()
  ? 'needs root and the ip tool (network namespaces)'
  : !hasEtcd()
    ? 'needs etcd (Debian etcd-server)'
    : false;

const ETCD = '198.51.100.5';
const SRV2 = '198.51.100.9';
const SRV2_URL = `https://${SRV2}:6443`;

t.test('cluster on a real etcd, two servers', { skip }, async (t) => {
  const k = await startCluster(
    t,
    {
      serverFlags: ['--datastore-endpoint', `http://${ETCD}:2379`, '--election-ttl', '2s'],
      servers: [SRV_URL, SRV2_URL],
    },
    { etcd: { ipv4: ETCD }, srv2: { ipv4: SRV2 } },
  );
  const c = k.c;
  const dir = join(c.dir, 'etcd');
  mkdirSync(dir);
  const etcd = c.lab.spawn('etcd', [
    'etcd',
    '--name',
    'e0',
    '--data-dir',
    dir,
    '--listen-client-urls',
    `http://${ETCD}:2379`,
    '--advertise-client-urls',
    `http://${ETCD}:2379`,
    '--listen-peer-urls',
    'http://127.0.0.1:2380',
    '--initial-advertise-peer-urls',
    'http://127.0.0.1:2380',
    '--initial-cluster',
    'e0=http://127.0.0.1:2380',
  ]);
  let etcdOut = '';
  etcd.stderr?.on('data', (b: Buffer) => {
    etcdOut += b.toString();
  });
  await until('etcd serving', async () => /ready to serve client requests/.test(etcdOut), 20_000);

  await k.startServer();
  await Promise.all([k.startAgent('a1'), k.startAgent('a2')]);
  await runScenarios(t, k);

  await t.test('a second server on the same etcd takes the master role when the master dies', async (t) => {
    // srv2 runs its local agent (the default): it joins as a node itself.
    c.serveName('srv2', [8080], []);
    await c.start('srv2', c.serverArgs('srv2', SRV2, k.opts.serverFlags), /vipmesh server is up/);
    const metric = async (node: string) => {
      const text = await c.lab.run(node, ['curl', '-s', 'http://127.0.0.1:7472/metrics']);
      return /^vipmesh_controlplane_master (\d)$/m.exec(text)?.[1];
    };
    t.equal(await metric('srv'), '1', 'srv is master');
    t.equal(await metric('srv2'), '0', 'srv2 is standing by');
    t.equal(
      c.token('srv2', 'token'),
      c.token('srv', 'token'),
      'srv2 took the cluster credentials from the datastore',
    );
    const before = await k.holders();
    const t0 = Date.now();
    await c.stop('srv', 'SIGKILL');
    await until('srv2 elected', async () => (await metric('srv2')) === '1', 15_000);
    t.pass(`srv2 became master ${Date.now() - t0} ms after the master was killed (election TTL 2 s)`);
    k.apiNode = 'srv2';
    const nodes = await until(
      'every node Ready through srv2',
      async () => {
        const nodes = await k.nodes();
        return nodes.length === 3 &&
          nodes.every((n) => k.ready(n) === 'True' && n.metadata.annotations['vipmesh.io/server'] === 'srv2')
          ? nodes
          : undefined;
      },
      15_000,
    );
    t.ok(
      nodes.some((n) => n.metadata.name === 'srv2'),
      "srv2's local agent registered srv2 as a node",
    );
    t.same(await k.holders(), before, 'no VIP moved when the master changed');
    const r = await c.api('srv2', k.admin, 'POST', '/api/v1/namespaces/default/services', {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'after-failover' },
      spec: { type: 'LoadBalancer', ports: [{ port: 8080, protocol: 'TCP' }] },
    });
    t.equal(r.code, 201, 'the API on srv2 accepts a new Service');
    const vip = await until('the new master allocates it', () => k.ingress('after-failover'));
    const holder = await until('and places it', async () => (await k.holders()).get(vip));
    t.equal(
      await until('reachable', () => c.reach('client', vip, 8080), 5000),
      holder,
      'the client reaches it at its holder',
    );
    await sleep(100);
  });
});
