/**
 * HA on embedded etcd, end to end: three `vipmesh server` processes (`--cluster-init` plus two joins, the
 * README's recipe) and two agents on one bridge. The API VIP follows the master through a cable cut; a
 * Service VIP on an agent stays where it is; losing a second server keeps the data plane serving while
 * writes fail with a quorum error, and they work again when it returns.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ClusterLab, until } from './cluster-fixture.js';
import { canUseNetns } from './lab.js';

const skip = canUseNetns() ? false : 'needs root and the ip tool (network namespaces)';

const SERVERS = { s1: '198.51.100.11', s2: '198.51.100.12', s3: '198.51.100.13' } as const;
const AGENTS = { a1: '198.51.100.21', a2: '198.51.100.22' } as const;
/** A single server on SQLite, moved to etcd with --cluster-init. */
const SINGLE = '198.51.100.31';
const API_VIP = '198.51.100.100';
const VIP_URL = `https://${API_VIP}:6443`;
type Server = keyof typeof SERVERS;

const manifest = (svc: string) => `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: lan }
spec: { addresses: [198.51.100.150-198.51.100.160] }
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: { name: agents }
spec:
  ipAddressPools: [lan]
  nodeSelectors: [{ matchLabels: { role: agent } }]
---
apiVersion: v1
kind: Service
metadata: { name: ${svc} }
spec: { type: LoadBalancer, ports: [{ port: 8080, protocol: TCP }] }
`;

t.test('three servers on embedded etcd behind one API VIP', { skip }, async (t) => {
  const nodes = Object.fromEntries(
    [...Object.entries(SERVERS), ...Object.entries(AGENTS), ['m1', SINGLE]].map(([n, ip]) => [
      n,
      { ipv4: ip },
    ]),
  );
  const c = await ClusterLab.create(nodes);
  t.teardown(() => c.destroy());

  // The README's three commands, with the lab's data dirs and addresses.
  const serverArgs = (name: Server, extra: string[]) =>
    c.serverArgs(name, SERVERS[name], [...extra, '--api-vip', API_VIP]);
  await c.start('s1', serverArgs('s1', ['--cluster-init']), /vipmesh server is up/, 60_000);
  const token = c.token('s1', 'token');
  const admin = c.token('s1', 'admin-token');
  const t0 = Date.now();
  for (const s of ['s2', 's3'] as const) {
    await c.start(
      s,
      serverArgs(s, ['--server', `https://${SERVERS.s1}:6443`, '--token', token]),
      /vipmesh server is up/,
      60_000,
    );
  }
  t.pass(`two servers joined in ${Date.now() - t0} ms`);

  const etcdctl = (server: Server, args: string[]) => c.etcdctl(server, args);
  const list = JSON.parse((await etcdctl('s3', ['member', 'list', '-w', 'json'])).stdout) as {
    members: Array<{ name: string; clientURLs?: string[] }>;
  };
  t.same(
    list.members.map((m) => m.name).sort(),
    ['s1', 's2', 's3'],
    'etcdctl over TLS lists three members, all started (named)',
  );
  t.equal(c.token('s3', 'admin-token'), admin, 'the joined servers took the cluster credentials');

  const whoIsMaster = async (among: Server[]) => {
    for (const s of among) if (await c.isMaster(s)) return s;
    return undefined;
  };
  const arpMac = (from: string, ip: string) => c.arpMac(from, ip);
  const macOf = (n: string) => c.lab.node(n).mac.toLowerCase();
  const apply = (from: string, file: string) =>
    c.vipmesh(from, ['apply', '-f', file, '--server', VIP_URL, '--token', admin]);

  const first = await until('a master', () => whoIsMaster(['s1', 's2', 's3']), 15_000);
  t.equal(
    await until('the API VIP answers ARP', () => arpMac('a1', API_VIP), 10_000),
    macOf(first),
    `the API VIP answers from the master (${first})`,
  );

  for (const [a, ip] of Object.entries(AGENTS)) {
    c.serveName(a, [8080], []);
    await c.start(
      a,
      c.agentArgs(a, ip, [VIP_URL], token, ['--node-label', 'role=agent']),
      /vipmesh agent is up/,
      30_000,
    );
  }
  const f1 = join(c.dir, 'web.yaml');
  writeFileSync(f1, manifest('web'));
  const r1 = await apply('a1', f1);
  t.equal(r1.code, 0, `vipmesh apply through the API VIP: ${r1.stdout}${r1.stderr}`);
  const holderMac = await until('the Service VIP is announced', () => arpMac('a2', '198.51.100.150'), 20_000);
  t.ok([macOf('a1'), macOf('a2')].includes(holderMac), 'an agent holds the Service VIP');

  await t.test('cutting the master moves the API VIP; agents reconnect; apply works again', async (t) => {
    const cut = Date.now();
    await c.lab.cut(first);
    const rest = (['s1', 's2', 's3'] as const).filter((s) => s !== first);
    const next = await until('a new master', () => whoIsMaster(rest), 20_000);
    t.pass(`${next} became master ${Date.now() - cut} ms after the cut (election TTL 5 s)`);
    await until(
      'the API VIP answers from the new master',
      async () => (await arpMac('a1', API_VIP)) === macOf(next),
      10_000,
    );
    t.pass(`the API VIP answers from ${next} ${Date.now() - cut} ms after the cut`);
    const f2 = join(c.dir, 'after.yaml');
    writeFileSync(f2, manifest('after-failover'));
    const r = await until(
      'apply through the API VIP',
      async () => {
        const r = await apply('a1', f2);
        return r.code === 0 ? r : undefined;
      },
      30_000,
    );
    t.match(r.stdout, /after-failover/, `apply works ${Date.now() - cut} ms after the cut`);
    const agentsOn = await until(
      'the agents reconnected to the new master',
      async () => {
        const r = await c.api('a1', admin, 'GET', '/api/v1/nodes', undefined, VIP_URL);
        type N = { metadata: { name: string; annotations?: Record<string, string> } };
        const items = (r.body as { items?: N[] }).items ?? [];
        const servers = Object.keys(AGENTS).map(
          (a) => items.find((n) => n.metadata.name === a)?.metadata.annotations?.['vipmesh.io/server'],
        );
        return servers.every((s) => s === next) ? servers : undefined;
      },
      30_000,
    );
    t.same(agentsOn, [next, next], `both agents hold their session on ${next}`);
    t.equal(await arpMac('a2', '198.51.100.150'), holderMac, 'the Service VIP on an agent did not move');
  });

  await t.test('losing a second server: data plane serves, writes fail with quorum lost', async (t) => {
    const alive = (['s1', 's2', 's3'] as const).filter((s) => s !== first);
    const [gone, last] = alive as [Server, Server];
    await c.lab.cut(gone);
    const f3 = join(c.dir, 'no-quorum.yaml');
    writeFileSync(f3, manifest('no-quorum'));
    // A write sent before etcd's member has noticed that its leader is gone can wait past the CLI's own
    // timeout; the ones after are refused at once, naming the quorum.
    let r = { code: 0, stdout: '', stderr: '' };
    await until(
      'a write refused naming the quorum',
      async () => {
        r = await c.vipmesh(last, [
          'apply',
          '-f',
          f3,
          '--server',
          'https://127.0.0.1:6443',
          '--token',
          admin,
        ]);
        return r.code !== 0 && /quorum/.test(`${r.stdout}${r.stderr}`);
      },
      90_000,
    ).catch(() => undefined);
    t.match(`${r.stdout}${r.stderr}`, /quorum/, 'the write fails naming the lost quorum');
    t.equal(await arpMac('a2', '198.51.100.150'), holderMac, "the agent's VIP still answers ARP");
    await c.lab.restore(gone);
    const ok = await until(
      'writes work again',
      async () => {
        const r = await apply('a1', f3);
        return r.code === 0 ? r : undefined;
      },
      60_000,
    );
    t.match(ok.stdout, /no-quorum/, 'apply through the API VIP works once the server is back');

    const rm = await c.vipmesh(last, ['etcd', 'member', 'remove', first, '--data-dir', c.dataDir(last)]);
    t.equal(rm.code, 0, `the cut server is removed: ${rm.stdout}${rm.stderr}`);
    const left = JSON.parse((await etcdctl(last, ['member', 'list', '-w', 'json'])).stdout) as {
      members: Array<{ name: string }>;
    };
    t.same(left.members.map((m) => m.name).sort(), alive.slice().sort(), 'two members left');
    const put = await etcdctl(last, ['put', '/vipmesh/test/after-remove', 'ok']);
    t.equal(put.code, 0, `and the two have a quorum (a write commits): ${put.stderr}`);

    await c.stop(gone);
    await c.start(
      gone,
      serverArgs(gone, ['--server', `https://${SERVERS.s1}:6443`, '--token', token]),
      /vipmesh server is up/,
      60_000,
    );
    t.match(
      c.daemons.get(gone)!.output(),
      /joined before: restarting its etcd member/,
      'a second start only restarts the member',
    );
    const again = JSON.parse((await etcdctl(last, ['member', 'list', '-w', 'json'])).stdout) as {
      members: Array<{ name: string }>;
    };
    t.equal(again.members.length, 2, 'and adds no member');
  });

  await t.test('a single server on SQLite restarted with --cluster-init keeps every object', async (t) => {
    const args = (extra: string[]) => c.serverArgs('m1', SINGLE, ['--disable-agent', ...extra]);
    await c.start('m1', args([]), /vipmesh server is up/, 60_000);
    const madmin = c.token('m1', 'admin-token');
    const f = join(c.dir, 'single.yaml');
    writeFileSync(f, `${manifest('one')}---\n${manifest('two').split('---').at(-1)}`);
    const local = 'https://127.0.0.1:6443';
    const r = await c.vipmesh('m1', ['apply', '-f', f, '--server', local, '--token', madmin]);
    t.equal(r.code, 0, `applied on SQLite: ${r.stderr}`);
    const objects = async () => {
      const out: string[] = [];
      for (const path of [
        '/api/v1/services',
        '/apis/metallb.io/v1beta1/ipaddresspools',
        '/apis/metallb.io/v1beta1/l2advertisements',
      ]) {
        const res = await c.api('m1', madmin, 'GET', path);
        const items =
          (res.body as { items?: Array<{ metadata: { name: string; uid?: string } }> }).items ?? [];
        out.push(...items.map((i) => `${path} ${i.metadata.name} ${i.metadata.uid ?? ''}`));
      }
      return out.sort();
    };
    const before = await until('the objects listed', async () => {
      const o = await objects();
      return o.length === 4 ? o : undefined;
    });
    await c.stop('m1');
    await c.start('m1', args(['--cluster-init']), /vipmesh server is up/, 60_000);
    t.same(await objects(), before, 'every object (same names and uids) is served from etcd');
    t.ok(
      existsSync(join(c.dataDir('m1'), 'server', 'db', 'state.db.migrated-to-etcd')),
      'SQLite marked migrated',
    );
    t.match(c.daemons.get('m1')!.output(), /SQLite datastore copied into etcd/);
    await c.stop('m1');
    await c.start('m1', args(['--cluster-reset']), /vipmesh server is up/, 60_000);
    t.same(await objects(), before, '--cluster-reset keeps the data of the member');
    t.match(
      c.daemons.get('m1')!.output(),
      /--force-new-cluster|force-new-cluster/,
      'etcd was forced to a new cluster',
    );
  });
});
