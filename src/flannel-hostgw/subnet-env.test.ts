import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { formatSubnetEnv, parseSubnetEnv, writeSubnetEnv } from './subnet-env.js';

t.test('IPv4 only, as flannel writes it', async (t) => {
  t.equal(
    formatSubnetEnv({ networks: ['10.42.0.0/16'], subnets: ['10.42.1.0/24'], mtu: 1500 }),
    'FLANNEL_NETWORK=10.42.0.0/16\nFLANNEL_SUBNET=10.42.1.1/24\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=false\n',
  );
});

t.test('dual stack', async (t) => {
  const text = formatSubnetEnv({
    networks: ['2001:db8:42::/56', '198.18.0.0/16'],
    subnets: ['198.18.3.0/24', '2001:db8:42:3::/64'],
    mtu: 9000,
    ipMasq: true,
  });
  t.same(Object.fromEntries(parseSubnetEnv(text)), {
    FLANNEL_NETWORK: '198.18.0.0/16',
    FLANNEL_SUBNET: '198.18.3.1/24',
    FLANNEL_IPV6_NETWORK: '2001:db8:42::/56',
    FLANNEL_IPV6_SUBNET: '2001:db8:42:3::1/64',
    FLANNEL_MTU: '9000',
    FLANNEL_IPMASQ: 'true',
  });
});

t.test('refusals', async (t) => {
  const ok = { networks: ['198.18.0.0/16'], subnets: ['198.18.3.0/24'], mtu: 1500 };
  t.throws(() => formatSubnetEnv({ ...ok, subnets: ['198.19.3.0/24'] }), { code: 'VIPMESH_HOSTGW_BAD_CIDR' });
  t.throws(() => formatSubnetEnv({ ...ok, subnets: ['2001:db8::/64'] }), { code: 'VIPMESH_HOSTGW_BAD_CIDR' });
  t.throws(() => formatSubnetEnv({ ...ok, subnets: [] }), { code: 'VIPMESH_HOSTGW_BAD_CIDR' });
  t.throws(() => formatSubnetEnv({ ...ok, subnets: ['198.18.3.0/24', '198.18.4.0/24'] }), {
    code: 'VIPMESH_HOSTGW_BAD_CIDR',
  });
  t.throws(() => formatSubnetEnv({ ...ok, mtu: 20 }), { code: 'VIPMESH_HOSTGW_BAD_CIDR' });
  t.throws(() => parseSubnetEnv('FLANNEL_MTU'), { code: 'VIPMESH_HOSTGW_SUBNET_ENV' });
  t.same([...parseSubnetEnv('# c\n\nA=b=c\n')], [['A', 'b=c']]);
});

t.test('property: every subnet inside the network round-trips through the file text', async (t) => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 255 }),
      fc.integer({ min: 576, max: 65535 }),
      fc.boolean(),
      (n, mtu, masq) => {
        const env = parseSubnetEnv(
          formatSubnetEnv({ networks: ['198.18.0.0/16'], subnets: [`198.18.${n}.0/24`], mtu, ipMasq: masq }),
        );
        return (
          env.get('FLANNEL_SUBNET') === `198.18.${n}.1/24` &&
          env.get('FLANNEL_MTU') === String(mtu) &&
          env.get('FLANNEL_IPMASQ') === String(masq)
        );
      },
    ),
  );
  t.pass();
});

t.test('writeSubnetEnv replaces the file atomically and leaves no temp file', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'vipmesh-hostgw-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'run', 'flannel', 'subnet.env');
  await writeSubnetEnv(path, { networks: ['198.18.0.0/16'], subnets: ['198.18.1.0/24'], mtu: 1500 });
  t.match(await readFile(path, 'utf8'), /^FLANNEL_SUBNET=198\.18\.1\.1\/24$/m);
  await writeSubnetEnv(path, { networks: ['198.18.0.0/16'], subnets: ['198.18.2.0/24'], mtu: 1500 });
  t.match(await readFile(path, 'utf8'), /^FLANNEL_SUBNET=198\.18\.2\.1\/24$/m);
  t.same(await readdir(join(dir, 'run', 'flannel')), ['subnet.env']);
  // A path under a regular file cannot be written: the error keeps the errno.
  await writeFile(join(dir, 'file'), 'x');
  const err = await writeSubnetEnv(join(dir, 'file', 'subnet.env'), {
    networks: ['198.18.0.0/16'],
    subnets: ['198.18.2.0/24'],
    mtu: 1500,
  }).catch((e: unknown) => e);
  t.equal((err as { code?: string }).code, 'VIPMESH_HOSTGW_SUBNET_ENV');
  t.match((err as { cause?: { code?: string } }).cause?.code, /^E/);
});
