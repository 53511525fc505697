import fc from 'fast-check';
import t from 'tap';
import { formatCidr } from '../util/cidr.js';
import { parseCidr } from './cidr.js';
import { checkLease, decodeLease, encodeLeaseValue, LEASE_PREFIX, leaseKey, parseLeaseKey } from './lease.js';

t.test('flannel key layout', async (t) => {
  t.equal(leaseKey('10.42.1.0/24'), '/coreos.com/network/subnets/10.42.1.0-24');
  t.equal(
    leaseKey(['198.18.1.0/24', '2001:db8:42:1::/64']),
    `${LEASE_PREFIX}198.18.1.0-24&2001:db8:42:1::-64`,
  );
  t.equal(
    leaseKey(['2001:db8:42:1::/64', '198.18.1.0/24']),
    `${LEASE_PREFIX}198.18.1.0-24&2001:db8:42:1::-64`,
  );
  t.equal(leaseKey(['2001:db8:42:1::/64']), `${LEASE_PREFIX}2001:db8:42:1::-64`);
  t.equal(leaseKey('198.18.1.0/24', '/x/'), '/x/198.18.1.0-24');
  t.same(parseLeaseKey('/coreos.com/network/subnets/10.42.1.0-24'), ['10.42.1.0/24']);
  t.same(parseLeaseKey(`${LEASE_PREFIX}198.18.1.0-24&2001:db8:42:1::-64`), [
    '198.18.1.0/24',
    '2001:db8:42:1::/64',
  ]);
  t.throws(() => leaseKey([]), { code: 'VIPMESH_HOSTGW_BAD_LEASE' });
  t.throws(() => leaseKey(['198.18.1.0/24', '198.18.2.0/24']), { code: 'VIPMESH_HOSTGW_BAD_LEASE' });
  for (const bad of [
    '/other/198.18.1.0-24',
    `${LEASE_PREFIX}198.18.1.0`,
    `${LEASE_PREFIX}198.18.1.0-33`,
    `${LEASE_PREFIX}198.18.1.1-24`,
    `${LEASE_PREFIX}2001:db8::-64&198.18.1.0-24`,
    `${LEASE_PREFIX}198.18.1.0-24&198.18.2.0-24`,
    `${LEASE_PREFIX}a&b&c`,
  ]) {
    t.throws(() => parseLeaseKey(bad), { code: 'VIPMESH_HOSTGW_BAD_LEASE' }, bad);
  }
});

const subnet4 = fc
  .tuple(fc.ipV4(), fc.integer({ min: 8, max: 32 }))
  .map(([ip, len]) => formatCidr(parseCidr(`${ip}/${len}`, 'x', false)));
const subnet6 = fc
  .tuple(fc.ipV6(), fc.integer({ min: 16, max: 128 }))
  .map(([ip, len]) => formatCidr(parseCidr(`${ip}/${len}`, 'x', false)));

t.test('property: key and value round-trip', async (t) => {
  fc.assert(
    fc.property(
      fc.option(subnet4, { nil: undefined }),
      fc.option(subnet6, { nil: undefined }),
      fc.ipV4(),
      fc.option(fc.ipV6(), { nil: undefined }),
      fc.string({ minLength: 1, maxLength: 20 }),
      (s4, s6, ip4, ip6, node) => {
        const podCIDRs = [s4, s6].filter((x): x is string => x !== undefined);
        if (podCIDRs.length === 0) return true;
        const lease = checkLease({ node, podCIDRs, nodeIPs: ip6 === undefined ? [ip4] : [ip4, ip6] });
        const key = leaseKey(lease.podCIDRs);
        t.same(parseLeaseKey(key), lease.podCIDRs);
        const back = decodeLease(key, encodeLeaseValue(lease));
        return JSON.stringify(back) === JSON.stringify(lease);
      },
    ),
  );
});

t.test('values as flannel writes them', async (t) => {
  const lease = { node: 'n1', podCIDRs: ['198.18.1.0/24'], nodeIPs: ['198.51.100.11', '2001:db8::11'] };
  t.same(JSON.parse(encodeLeaseValue(lease)), {
    BackendType: 'host-gw',
    PublicIP: '198.51.100.11',
    PublicIPv6: '2001:db8::11',
    VipmeshNode: 'n1',
  });
  // A lease flannel itself wrote: no node name, named after its PublicIP; extra fields ignored.
  const flannel = '{"PublicIP":"198.51.100.12","PublicIPv6":null,"BackendType":"host-gw","BackendData":null}';
  t.same(decodeLease(`${LEASE_PREFIX}198.18.2.0-24`, Buffer.from(flannel)), {
    node: '198.51.100.12',
    podCIDRs: ['198.18.2.0/24'],
    nodeIPs: ['198.51.100.12'],
  });
  const key = `${LEASE_PREFIX}198.18.2.0-24`;
  for (const bad of [
    'not json',
    '[]',
    'null',
    '{"PublicIP":"198.51.100.12","BackendType":"vxlan"}',
    '{"BackendType":"host-gw"}',
    '{"PublicIP":"2001:db8::1","BackendType":"host-gw"}',
    '{"PublicIP":12,"BackendType":"host-gw"}',
    '{"PublicIP":"198.51.100.12","BackendType":"host-gw","VipmeshNode":""}',
  ]) {
    t.throws(() => decodeLease(key, bad), { code: 'VIPMESH_HOSTGW_BAD_LEASE' }, bad);
  }
});

t.test('checkLease canonicalises and refuses, naming the node', async (t) => {
  t.same(
    checkLease({ node: 'x', podCIDRs: ['2001:DB8:42:1::/64', '198.18.1.0/24'], nodeIPs: ['2001:DB8::0:11'] }),
    {
      node: 'x',
      podCIDRs: ['198.18.1.0/24', '2001:db8:42:1::/64'],
      nodeIPs: ['2001:db8::11'],
    },
  );
  const bad: unknown[] = [
    null,
    { node: '', podCIDRs: [], nodeIPs: [] },
    { node: 'x', podCIDRs: 'a', nodeIPs: [] },
    { node: 'x', podCIDRs: [], nodeIPs: [] },
    { node: 'x', podCIDRs: ['198.18.1.1/24'], nodeIPs: [] },
    { node: 'x', podCIDRs: ['198.18.1.0/24'], nodeIPs: ['nope'] },
    { node: 'x', podCIDRs: ['198.18.1.0/24'], nodeIPs: ['198.51.100.1', '198.51.100.2'] },
  ];
  for (const l of bad) {
    t.throws(() => checkLease(l as never), { code: 'VIPMESH_HOSTGW_BAD_LEASE' }, JSON.stringify(l));
  }
  t.throws(() => checkLease({ node: 'n7', podCIDRs: ['x'], nodeIPs: [] }), { message: /node n7/ });
});

t.test('fuzz: decodeLease only ever throws its own code', async (t) => {
  fc.assert(
    fc.property(fc.string(), fc.oneof(fc.string(), fc.json()), (k, v) => {
      try {
        decodeLease(LEASE_PREFIX + k, v);
        return true;
      } catch (err) {
        return (err as { code?: string }).code === 'VIPMESH_HOSTGW_BAD_LEASE';
      }
    }),
  );
  t.pass();
});
