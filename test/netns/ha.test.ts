/**
 * HA on embedded etcd, end to end: three `vipmesh server` processes (`--cluster-init` plus two joins, the
 * README's recipe) and two agents on one bridge. The API VIP follows the master through a cable cut; a
 * Service VIP on an agent stays where it is; losing a second server keeps the data plane serving while
 * writes fail with a quorum error, and they work again when it returns.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { etcdPaths } from '../../src/etcd-member/index.js';
import { vipmeshCli } from '../../src/lab/scripts.js';
import { ClusterLab, until } from './cluster-fixture.js';
import { canUseNetns } from './lab.js';

const skip = canUseNetns() ? false : 'needs root and the ip tool (network namespaces)';

const SERVERS = { s1: '198.51.100.11', s2: '198.51.100.12', s3: '198.51.100.13' } as const;
const AGENTS = { a1: '198.51.100.21', a2: '198.51.100.22' } as const;
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
    [...Object.entries(SERVERS), ...Object.entries(AGENTS)].map(([n, ip]) => [n, { ipv4: ip }]),
  );
  const c = await ClusterLab.create(nodes);
  t.teardown(() => c.destroy());
  const cli = vipmeshCli();

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

  const etcdctl = async (server: Server, args: string[]) => {
    const p = etcdPaths(c.dataDir(server));
    return c.lab.exec(
      server,
      [
        'etcdctl',
        '--endpoints=https://127.0.0.1:2379',
        `--cacert=${p.caFile}`,
        `--cert=${p.certFile}`,
        `--key=${p.keyFile}`,
        '--command-timeout=3s',
        ...args,
      ],
      10_000,
    );
  };
  const list = JSON.parse((await etcdctl('s3', ['member', 'list', '-w', 'json'])).stdout) as {
    members: Array<{ name: string; clientURLs?: string[] }>;
  };
  t.same(
    list.members.map((m) => m.name).sort(),
    ['s1', 's2', 's3'],
    'etcdctl over TLS lists three members, all started (named)',
  );
  t.equal(c.token('s3', 'admin-token'), admin, 'the joined servers took the cluster credentials');

  const master = async (s: Server) => {
    const r = await c.lab.exec(s, ['curl', '-s', '--max-time', '1', 'http://127.0.0.1:7472/metrics'], 5000);
    return /^vipmesh_controlplane_master 1$/m.test(r.stdout);
  };
  const whoIsMaster = async (among: Server[]) => {
    for (const s of among) if (await master(s)) return s;
    return undefined;
  };
  /** The MAC that answers ARP for `ip` as seen from `from`. */
  const arpMac = async (from: string, ip: string) => {
    const r = await c.lab.exec(from, ['arping', '-c', '1', '-w', '1', '-I', 'eth0', ip], 5000);
    return /\[([0-9a-f:]{17})\]/i.exec(r.stdout)?.[1]?.toLowerCase();
  };
  const macOf = (n: string) => c.lab.node(n).mac.toLowerCase();
  const apply = (from: string, file: string) =>
    c.lab.exec(from, [...cli, 'apply', '-f', file, '--server', VIP_URL, '--token', admin], 60_000);

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
    t.equal(await arpMac('a2', '198.51.100.150'), holderMac, 'the Service VIP on an agent did not move');
  });

  await t.test('losing a second server: data plane serves, writes fail with quorum lost', async (t) => {
    const alive = (['s1', 's2', 's3'] as const).filter((s) => s !== first);
    const [gone, last] = alive as [Server, Server];
    await c.lab.cut(gone);
    const f3 = join(c.dir, 'no-quorum.yaml');
    writeFileSync(f3, manifest('no-quorum'));
    const r = await until(
      'a write refused',
      async () => {
        const r = await c.lab.exec(
          last,
          [...cli, 'apply', '-f', f3, '--server', 'https://127.0.0.1:6443', '--token', admin],
          60_000,
        );
        return r.code !== 0 ? r : undefined;
      },
      60_000,
    );
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
  });
});
