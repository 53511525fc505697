import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { type CheckInput, checkConfig, renderReport } from './check.js';
import { Codes } from './codes.js';
import { formatProblem } from './parse.js';

const read = (file: string): CheckInput => ({ file, text: readFileSync(file, 'utf8') });
const dir = (d: string) =>
  readdirSync(d)
    .sort()
    .map((n) => read(join(d, n)));

t.test('every pool example is valid on its own', async (t) => {
  for (const input of dir('config/pools')) {
    const r = checkConfig([input]);
    t.same(r.errors.map(formatProblem), [], input.file);
    t.ok(r.pools.length > 0, `${input.file} has pools`);
  }
});

t.test('the pool examples normalize as documented', async (t) => {
  const r = checkConfig(dir('config/pools'));
  t.same(r.errors, []);
  t.same(r.pools, [
    {
      name: 'dual',
      addresses: ['192.168.10.0/24', '2001:db8:10::/64'],
      size: '18446744073709551870',
      autoAssign: true,
      avoidBuggyIPs: true,
    },
    {
      name: 'lan',
      addresses: ['192.168.1.240-192.168.1.250', '192.168.1.224/28', '192.168.1.254'],
      size: 28,
      autoAssign: true,
      avoidBuggyIPs: false,
    },
    { name: 'public', addresses: ['203.0.113.8/29'], size: 8, autoAssign: false, avoidBuggyIPs: false },
    {
      name: 'legacy',
      addresses: ['192.168.20.100-192.168.20.120', '192.168.20.128/28'],
      size: 37,
      autoAssign: true,
      avoidBuggyIPs: false,
    },
    {
      name: 'legacy-manual',
      addresses: ['192.168.21.0/24'],
      size: 254,
      autoAssign: false,
      avoidBuggyIPs: true,
    },
  ]);
});

t.test('each Service example gets the addresses a user expects', async (t) => {
  const pools = dir('config/pools');
  const want: Record<string, Array<[string, string[], string]>> = {
    'dual-stack.yaml': [
      ['edge/ingress', ['192.168.10.1', '2001:db8:10::'], 'dual'],
      ['edge/mqtt', ['2001:db8:10::1883'], 'dual'],
    ],
    'loadbalancerips-annotation.yaml': [
      ['default/gateway', ['203.0.113.10'], 'public'],
      ['default/vpn', ['203.0.113.8'], 'public'],
    ],
    'pinned-loadbalancerip.yaml': [['default/web', ['192.168.1.245'], 'lan']],
    'web-app.yaml': [['default/web-app', ['192.168.1.246'], 'lan']],
    'shared-dns.yaml': [
      ['dns/dns-tcp', ['192.168.1.250'], 'lan'],
      ['dns/dns-udp', ['192.168.1.250'], 'lan'],
      ['dns/unbound', ['192.168.1.240'], 'lan'],
    ],
  };
  t.same(readdirSync('config/services').sort(), Object.keys(want).sort(), 'every example is checked');
  for (const [file, services] of Object.entries(want)) {
    const r = checkConfig([...pools, read(join('config/services', file))]);
    t.same(r.errors.map(formatProblem), [], file);
    t.same(
      r.services.map((s) => ('ips' in s ? [`${s.namespace}/${s.name}`, s.ips, s.pool] : s)),
      services,
      file,
    );
  }
  const all = checkConfig([...pools, ...dir('config/services')]);
  t.same(all.errors, [], 'all examples together are consistent');
  t.equal(all.services.length, 9);
  t.same(
    all.services.flatMap((s) => ('routes' in s && s.name === 'web-app' ? (s.routes ?? []) : [])),
    [{ from: '192.168.1.246:80/TCP', to: ['192.168.1.21:8080', '192.168.1.22:8080', '192.168.1.23:8080'] }],
    'web-app: port 80 goes to the three backends',
  );
});

const BROKEN = 'config/invalid/broken.yaml';

t.test('the broken example: every problem, exactly, in file order', async (t) => {
  const r = checkConfig([read(BROKEN)]);
  t.same(r.errors.map(formatProblem), [
    `${BROKEN}:18 IPAddressPool/branch spec.addresses[0]: range start 10.0.0.9 is after end 10.0.0.5`,
    `${BROKEN}:19 IPAddressPool/branch spec.addresses[1]: invalid CIDR 10.0.1.0/33: prefix length must be 0-32`,
    `${BROKEN}:20 IPAddressPool/branch spec.addresses[2]: range 10.0.2.1-2001:db8::1 mixes IPv4 and IPv6`,
    `${BROKEN}:21 IPAddressPool/branch spec.addresses[3]: invalid CIDR 10.0.4.7/24: host bits are set (the network is 10.0.4.0/24)`,
    `${BROKEN}:22 IPAddressPool/branch spec.autoassign: unknown field (expected one of: addresses, autoAssign, avoidBuggyIPs, serviceAllocation)`,
    `${BROKEN}:28 IPAddressPool/office metadata.name: another pool is already named office`,
    `${BROKEN}:41 IPAddressPool/lab spec.addresses[1]: 10.0.0.4/30 overlaps pool office (10.0.0.0/29)`,
    `${BROKEN}:52 ConfigMap/config data.config.address-pools[0].protocol: protocol bgp is not supported yet (vipmesh announces in layer 2 only); use protocol: layer2`,
    `${BROKEN}:62 Service/both metadata.annotations["metallb.io/loadBalancerIPs"]: set either spec.loadBalancerIP or the loadBalancerIPs annotation, not both`,
    `${BROKEN}:76 Service/outside spec.loadBalancerIP: 10.9.9.9 is outside every address pool`,
    `${BROKEN}:99 Service/web2 spec.loadBalancerIP: 10.0.0.1 is in use by default/web, which does not share it (no allow-shared-ip key)`,
  ]);
  t.same(
    r.errors.map((e) => e.code),
    [
      Codes.RANGE_REVERSED,
      Codes.BAD_ADDRESS,
      Codes.RANGE_MIXED_FAMILY,
      Codes.BAD_ADDRESS,
      Codes.FIELD_UNKNOWN,
      Codes.POOL_DUPLICATE,
      Codes.POOL_OVERLAP,
      Codes.BGP_UNSUPPORTED,
      Codes.LBIP_CONFLICT,
      Codes.IP_OUTSIDE_POOLS,
      Codes.IP_IN_USE,
    ],
  );
  t.same(
    r.pools.map((p) => p.name),
    ['office'],
    'only the usable pool is used for the dry run',
  );
  t.same(
    r.services.map((s) => ('ips' in s ? s.ips : s.error.code)),
    [Codes.LBIP_CONFLICT, Codes.IP_OUTSIDE_POOLS, ['10.0.0.1'], Codes.IP_IN_USE],
  );
});

t.test('allocation errors point at the field to edit', async (t) => {
  const text = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: p}
spec: {addresses: [198.51.100.1], autoAssign: false}
---
apiVersion: v1
kind: Service
metadata:
  name: a
  annotations:
    metallb.io/address-pool: nope
spec: {type: LoadBalancer, ports: [{port: 1}]}
---
apiVersion: v1
kind: Service
metadata: {name: b}
spec: {type: LoadBalancer, ports: [{port: 1}]}
---
apiVersion: v1
kind: Service
metadata:
  name: c
  annotations: {metallb.io/loadBalancerIPs: 198.51.100.2}
spec: {type: LoadBalancer, ports: [{port: 1}]}
`;
  const r = checkConfig([{ file: 's.yaml', text }]);
  t.same(r.errors.map(formatProblem), [
    's.yaml:11 Service/a metadata.annotations["metallb.io/address-pool"]: there is no pool named nope',
    's.yaml:14 Service/b: no autoAssign pool serves this Service (name a pool with metallb.io/address-pool)',
    's.yaml:23 Service/c metadata.annotations["metallb.io/loadBalancerIPs"]: 198.51.100.2 is outside every address pool',
  ]);
});

t.test("Services that are not vipmesh's are valid and get nothing", async (t) => {
  const text = `apiVersion: v1
kind: Service
metadata: {name: internal}
spec: {type: ClusterIP, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: other-lb}
spec: {type: LoadBalancer, loadBalancerClass: example.com/lb, ports: [{port: 80}]}
`;
  t.same(checkConfig([{ file: 's.yaml', text }]), { pools: [], services: [], errors: [] });
});

t.test('renderings: json and yaml carry the same object; table splits problems to stderr', async (t) => {
  const r = checkConfig([
    read('config/pools/ipaddresspool.yaml'),
    read('config/services/pinned-loadbalancerip.yaml'),
  ]);
  const json = renderReport(r, 'json');
  t.same(JSON.parse(json.stdout), r);
  t.equal(json.stderr, '');
  t.same(parseYaml(renderReport(r, 'yaml').stdout), r);
  const table = renderReport(r, 'table');
  t.match(
    table.stdout,
    /^POOL\s+ADDRESSES\s+SIZE\s+AUTO-ASSIGN\s+AVOID-BUGGY-IPS\nlan\s+192\.168\.1\.240-192\.168\.1\.250,192\.168\.1\.224\/28,192\.168\.1\.254\s+28\s+true\s+false\n/,
  );
  t.match(table.stdout, /\nSERVICE\s+POOL\s+ADDRESSES\ndefault\/web\s+lan\s+192\.168\.1\.245\n\n/);
  t.match(
    table.stdout,
    /\nSERVICE\s+PORT\s+GOES TO\ndefault\/web\s+192\.168\.1\.245:80\/TCP\s+the holder's own port 8080\n/,
  );
  t.equal(table.stderr, '');
  const bad = renderReport(checkConfig([read(BROKEN)]), 'table');
  t.match(bad.stdout, /default\/web2\s+-\s+error: VIPMESH_IP_IN_USE/);
  t.match(bad.stderr, /\n11 problems found\n$/);
  t.equal(renderReport(checkConfig([]), 'table').stdout, 'no valid address pools\n');
});

t.test('check-config never throws on arbitrary YAML', async (t) => {
  const doc = fc.record({
    apiVersion: fc.constantFrom('v1', 'metallb.io/v1beta1'),
    kind: fc.constantFrom('IPAddressPool', 'Service', 'ConfigMap', 'L2Advertisement', 'Namespace'),
    metadata: fc.record({ name: fc.constantFrom('a', 'b', 'c'), namespace: fc.constantFrom('x', 'y') }),
    spec: fc.record(
      {
        addresses: fc.array(
          fc.constantFrom(
            '198.51.100.0/30',
            '198.51.100.2',
            '2001:db8::/127',
            '198.51.100.9-198.51.100.1',
            'x',
          ),
        ),
        type: fc.constant('LoadBalancer'),
        loadBalancerIP: fc.constantFrom('198.51.100.1', '2001:db8::1', 'nope'),
        ports: fc.array(
          fc.record({ port: fc.integer({ min: 0, max: 70000 }), protocol: fc.constantFrom('TCP', 'UDP') }),
        ),
        ipFamilyPolicy: fc.constantFrom('SingleStack', 'RequireDualStack', 'PreferDualStack'),
        autoAssign: fc.boolean(),
      },
      { requiredKeys: [] },
    ),
  });
  const text = fc.oneof(
    fc.string({ maxLength: 300 }),
    fc
      .array(fc.oneof(doc, fc.anything()), { maxLength: 6 })
      .map((docs) => docs.map((d) => JSON.stringify(d)).join('\n---\n')),
  );
  fc.assert(
    fc.property(fc.array(text, { minLength: 1, maxLength: 3 }), (texts) => {
      const r = checkConfig(texts.map((x, i) => ({ file: `f${i}.yaml`, text: x })));
      renderReport(r, 'table');
      renderReport(r, 'yaml');
      return (
        r.errors.every((e) => e.code.startsWith('VIPMESH_')) &&
        JSON.parse(renderReport(r, 'json').stdout) !== null
      );
    }),
    { numRuns: 500 },
  );
  t.pass();
});

t.test('check-config refuses unknown and misplaced fields with the words the API uses', async (t) => {
  const text = `apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: LoadBalancer
  loadBalancerIp: 198.51.100.7
  ports:
    - port: 80
      loadBalancerIP: 198.51.100.7
`;
  const r = checkConfig([{ file: 'svc.yaml', text }]);
  t.same(r.errors.map(formatProblem), [
    'svc.yaml:7 Service/web spec.loadBalancerIp: unknown field: not declared in the Service spec schema; did you mean loadBalancerIP?',
    'svc.yaml:10 Service/web spec.ports[0].loadBalancerIP: unknown field (expected one of: name, protocol, appProtocol, port, targetPort, nodePort)',
  ]);
  t.same(
    r.errors.map((e) => e.code),
    [Codes.FIELD_UNKNOWN, Codes.FIELD_UNKNOWN],
  );
});
