import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { FakeClock } from '../testing/fake-clock.js';
import { FakeNetlink } from '../testing/fake-netlink.js';
import { createHostGw, parseSubnetEnv, resolveFlannelIface } from './index.js';

async function tempRoot(t: { teardown(fn: () => unknown): void }) {
  const dir = await mkdtemp(join(tmpdir(), 'vipmesh-hostgw-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'proc', 'net', 'ipv4'), { recursive: true });
  await mkdir(join(dir, 'proc', 'net', 'ipv6', 'conf', 'all'), { recursive: true });
  await writeFile(join(dir, 'proc', 'net', 'ipv4', 'ip_forward'), '0\n');
  await writeFile(join(dir, 'proc', 'net', 'ipv6', 'conf', 'all', 'forwarding'), '0\n');
  return dir;
}

function kernel(): FakeNetlink {
  const nl = new FakeNetlink();
  nl.links.push({ index: 3, name: 'wan0', mtu: 9000, up: true });
  nl.addresses.push({ ifindex: 3, family: 4, address: '192.0.2.7', prefixLen: 24 });
  nl.addresses.push({ ifindex: 2, family: 6, address: '2001:db8::10', prefixLen: 64 });
  nl.addresses.push({ ifindex: 2, family: 6, address: 'fe80::1', prefixLen: 64 });
  nl.routes.push({ family: 4, dst: '0.0.0.0/0', gateway: '192.0.2.1', ifindex: 3, protocol: 4, table: 254 });
  return nl;
}

t.test('the flannel interface: flag, then --node-ip, then the default route', async (t) => {
  const nl = kernel();
  t.equal((await resolveFlannelIface(nl, { flannelIface: 'eth0' })).iface, 'eth0');
  const byIp = await resolveFlannelIface(nl, { nodeIp: '198.51.100.10' });
  t.same(byIp, { iface: 'eth0', ifindex: 2, mtu: 1500, nodeIPs: ['198.51.100.10', '2001:db8::10'] });
  t.equal((await resolveFlannelIface(nl, { nodeIp: '2001:DB8::10' })).iface, 'eth0');
  t.equal((await resolveFlannelIface(nl, {})).iface, 'wan0');
  await t.rejects(resolveFlannelIface(nl, { flannelIface: 'nope0' }), { code: 'VIPMESH_HOSTGW_NO_IFACE' });
  await t.rejects(resolveFlannelIface(nl, { nodeIp: '198.51.100.99' }), { code: 'VIPMESH_HOSTGW_NO_IFACE' });
  nl.routes = [];
  await t.rejects(resolveFlannelIface(nl, {}), { code: 'VIPMESH_HOSTGW_NO_IFACE' });
});

t.test(
  'createHostGw: forwarding on, subnet.env written for its own lease, routes for the others',
  async (t) => {
    const dir = await tempRoot(t);
    const nl = kernel();
    const path = join(dir, 'run', 'flannel', 'subnet.env');
    const hg = createHostGw({
      nodeName: 'n1',
      nodeIp: '198.51.100.10',
      clusterCidr: ['198.18.0.0/16', '2001:db8:42::/56'],
      subnetEnvPath: path,
      procRoot: join(dir, 'proc'),
      netlink: nl,
      clock: new FakeClock(),
    });
    await t.rejects(hg.setLeases([]), { code: 'VIPMESH_HOSTGW_NOT_STARTED' });
    t.throws(() => hg.reconciler, { code: 'VIPMESH_HOSTGW_NOT_STARTED' });
    const info = await hg.start();
    t.equal(info.iface, 'eth0');
    t.equal((await readFile(join(dir, 'proc', 'net', 'ipv4', 'ip_forward'), 'utf8')).trim(), '1');
    t.equal(
      (await readFile(join(dir, 'proc', 'net', 'ipv6', 'conf', 'all', 'forwarding'), 'utf8')).trim(),
      '1',
    );
    const res = await hg.setLeases([
      {
        node: 'n1',
        podCIDRs: ['198.18.1.0/24', '2001:db8:42:1::/64'],
        nodeIPs: ['198.51.100.10', '2001:db8::10'],
      },
      {
        node: 'n2',
        podCIDRs: ['198.18.2.0/24', '2001:db8:42:2::/64'],
        nodeIPs: ['198.51.100.12', '2001:db8::12'],
      },
    ]);
    t.equal(res.replaced, 2);
    t.same(Object.fromEntries(parseSubnetEnv(await readFile(path, 'utf8'))), {
      FLANNEL_NETWORK: '198.18.0.0/16',
      FLANNEL_SUBNET: '198.18.1.1/24',
      FLANNEL_IPV6_NETWORK: '2001:db8:42::/56',
      FLANNEL_IPV6_SUBNET: '2001:db8:42:1::1/64',
      FLANNEL_MTU: '1500',
      FLANNEL_IPMASQ: 'false',
    });
    t.ok(hg.reconciler);
    await hg.close();
    t.ok(nl.closed);
  },
);

t.test('createHostGw: forwarding failure is a named error; close before start closes netlink', async (t) => {
  const nl = kernel();
  const hg = createHostGw({
    nodeName: 'n1',
    flannelIface: 'eth0',
    procRoot: '/nonexistent-vipmesh',
    netlink: nl,
  });
  await t.rejects(hg.start(), { code: 'VIPMESH_HOSTGW_SYSCTL' });
  const nl2 = kernel();
  await createHostGw({ nodeName: 'n1', netlink: nl2 }).close();
  t.ok(nl2.closed);
  t.throws(() => createHostGw({ nodeName: 'n1', clusterCidr: '198.18.0.1/16', netlink: kernel() }), {
    code: 'VIPMESH_HOSTGW_BAD_CIDR',
  });
});

t.test(
  'createHostGw: concurrent lease sets leave the last one in subnet.env; write errors surface',
  async (t) => {
    const dir = await tempRoot(t);
    const path = join(dir, 'subnet.env');
    const hg = createHostGw({
      nodeName: 'n1',
      flannelIface: 'eth0',
      clusterCidr: '198.18.0.0/16',
      subnetEnvPath: path,
      procRoot: join(dir, 'proc'),
      netlink: kernel(),
      clock: new FakeClock(),
    });
    await hg.start();
    const own = (n: number) => [{ node: 'n1', podCIDRs: [`198.18.${n}.0/24`], nodeIPs: ['198.51.100.10'] }];
    await Promise.all([hg.setLeases(own(1)), hg.setLeases(own(2)), hg.setLeases(own(3))]);
    t.equal(parseSubnetEnv(await readFile(path, 'utf8')).get('FLANNEL_SUBNET'), '198.18.3.1/24');
    await hg.close();
    const bad = createHostGw({
      nodeName: 'n1',
      flannelIface: 'eth0',
      clusterCidr: '198.18.0.0/16',
      subnetEnvPath: join(path, 'not-a-dir', 'subnet.env'),
      procRoot: join(dir, 'proc'),
      netlink: kernel(),
      clock: new FakeClock(),
    });
    await bad.start();
    await t.rejects(bad.setLeases(own(1)), { code: 'VIPMESH_HOSTGW_SUBNET_ENV' });
    await bad.close();
  },
);
