import fc from 'fast-check';
import t from 'tap';
import { Codes } from './codes.js';
import {
  fromLegacyConfigMap,
  toAddressPool,
  toL2Advertisement,
  toServiceRequest,
  validateObject,
} from './decode.js';

const ipPool = (spec: Record<string, unknown>, meta: Record<string, unknown> = { name: 'office' }) => ({
  apiVersion: 'metallb.io/v1beta1',
  kind: 'IPAddressPool',
  metadata: meta,
  spec,
});
const service = (spec: Record<string, unknown>, annotations?: Record<string, unknown>) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'web', ...(annotations ? { annotations } : {}) },
  spec: { type: 'LoadBalancer', ports: [{ port: 80 }], ...spec },
});
const legacy = (config: string) => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name: 'config', namespace: 'metallb-system' },
  data: { config },
});
const l2 = (spec: Record<string, unknown>) => ({
  apiVersion: 'metallb.io/v1beta1',
  kind: 'L2Advertisement',
  metadata: { name: 'l2' },
  spec,
});

/** Each case: an object and the [path, code] of every problem it should have (none: valid). */
const cases: Array<{ name: string; obj: unknown; want: Array<[string, string]> }> = [
  { name: 'a minimal pool', obj: ipPool({ addresses: ['198.51.100.0/24'] }), want: [] },
  {
    name: 'a pool with every field',
    obj: ipPool(
      {
        addresses: ['198.51.100.0/24', '2001:db8::/64'],
        autoAssign: false,
        avoidBuggyIPs: true,
        serviceAllocation: {
          priority: 3,
          namespaces: ['a'],
          namespaceSelectors: [{ matchLabels: { x: 'y' } }],
          serviceSelectors: [{ matchExpressions: [{ key: 'k', operator: 'NotIn', values: ['v'] }] }],
        },
      },
      { name: 'office', labels: { zone: 'a' } },
    ),
    want: [],
  },
  {
    name: 'the issue example: range start after end, at its index',
    obj: ipPool({ addresses: ['10.0.0.0/29', '10.0.0.9-10.0.0.5'] }),
    want: [['spec.addresses[1]', Codes.RANGE_REVERSED]],
  },
  {
    name: 'entries overlapping inside one pool',
    obj: ipPool({ addresses: ['10.0.0.0/24', '10.0.0.128/25'] }),
    want: [['spec.addresses[1]', Codes.POOL_OVERLAP]],
  },
  { name: 'no addresses', obj: ipPool({}), want: [['spec.addresses', Codes.FIELD_REQUIRED]] },
  {
    name: 'empty addresses',
    obj: ipPool({ addresses: [] }),
    want: [['spec.addresses', Codes.FIELD_REQUIRED]],
  },
  {
    name: 'a number as an address',
    obj: ipPool({ addresses: [7] }),
    want: [['spec.addresses[0]', Codes.FIELD_INVALID]],
  },
  {
    name: 'wrong types and a typo',
    obj: ipPool({ addresses: ['10.0.0.1'], autoAssign: 'no', avoidbuggyips: true }),
    want: [
      ['spec.avoidbuggyips', Codes.FIELD_UNKNOWN],
      ['spec.autoAssign', Codes.FIELD_INVALID],
    ],
  },
  {
    name: 'bad selectors and priority',
    obj: ipPool({
      addresses: ['10.0.0.1'],
      serviceAllocation: {
        priority: -1,
        namespaceSelectors: ['x', { matchExpressions: [{ key: 'k', operator: 'Near' }] }],
        serviceSelectors: [
          {
            matchExpressions: [
              { key: 'k', operator: 'In' },
              { key: 'j', operator: 'Exists', values: ['v'] },
            ],
          },
        ],
      },
    }),
    want: [
      ['spec.serviceAllocation.namespaceSelectors[0]', Codes.FIELD_INVALID],
      ['spec.serviceAllocation.namespaceSelectors[1].matchExpressions[0].operator', Codes.FIELD_INVALID],
      ['spec.serviceAllocation.serviceSelectors[0].matchExpressions[0].values', Codes.FIELD_REQUIRED],
      ['spec.serviceAllocation.serviceSelectors[0].matchExpressions[1].values', Codes.FIELD_INVALID],
      ['spec.serviceAllocation.priority', Codes.FIELD_INVALID],
    ],
  },
  {
    name: 'missing and bad names',
    obj: ipPool({ addresses: ['10.0.0.1'] }, { labels: { a: 1 } }),
    want: [
      ['metadata.name', Codes.FIELD_REQUIRED],
      ['metadata.labels.a', Codes.FIELD_INVALID],
    ],
  },
  {
    name: 'an upper-case name',
    obj: ipPool({ addresses: ['10.0.0.1'] }, { name: 'Office' }),
    want: [['metadata.name', Codes.FIELD_INVALID]],
  },
  {
    name: 'an unknown kind',
    obj: { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x' } },
    want: [['kind', Codes.UNSUPPORTED_KIND]],
  },
  {
    name: 'a wrong apiVersion',
    obj: { ...ipPool({ addresses: ['10.0.0.1'] }), apiVersion: 'metallb.io/v1alpha1' },
    want: [['apiVersion', Codes.UNSUPPORTED_KIND]],
  },
  { name: 'no kind', obj: { apiVersion: 'v1' }, want: [['kind', Codes.FIELD_REQUIRED]] },
  { name: 'not a map', obj: ['a'], want: [['', Codes.YAML_INVALID]] },
  {
    name: 'an L2Advertisement',
    obj: l2({ ipAddressPools: ['office'], interfaces: ['eth0'], nodeSelectors: [{}] }),
    want: [],
  },
  { name: 'an L2Advertisement without spec', obj: { ...l2({}), spec: undefined }, want: [] },
  {
    name: 'a bad interface name',
    obj: l2({ interfaces: ['this-name-is-too-long'] }),
    want: [['spec.interfaces[0]', Codes.FIELD_INVALID]],
  },
  {
    name: 'a legacy layer2 pool',
    obj: legacy('address-pools:\n- name: a\n  protocol: layer2\n  addresses: [10.0.0.0/24]\n'),
    want: [],
  },
  {
    name: 'a legacy bgp pool',
    obj: legacy('address-pools:\n- name: a\n  protocol: bgp\n  addresses: [10.0.0.0/24]\n'),
    want: [['data.config.address-pools[0].protocol', Codes.BGP_UNSUPPORTED]],
  },
  {
    name: 'legacy BGP peers and odd protocol',
    obj: legacy(
      'peers:\n- peer-address: 10.0.0.1\naddress-pools:\n- name: a\n  protocol: l2\n  addresses: [10.0.0.0/24]\n  auto-assign: maybe\n',
    ),
    want: [
      ['data.config.peers', Codes.BGP_UNSUPPORTED],
      ['data.config.address-pools[0].protocol', Codes.FIELD_INVALID],
      ['data.config.address-pools[0].auto-assign', Codes.FIELD_INVALID],
    ],
  },
  {
    name: 'a legacy ConfigMap that is not YAML',
    obj: legacy('address-pools: [\n'),
    want: [['data.config', Codes.YAML_INVALID]],
  },
  {
    name: 'a legacy ConfigMap that is a list',
    obj: legacy('- address-pools\n'),
    want: [['data.config', Codes.FIELD_INVALID]],
  },
  { name: 'another ConfigMap is valid and ignored', obj: { ...legacy(''), data: { x: 'y' } }, want: [] },
  {
    name: "another app's config key is valid and ignored",
    obj: { ...legacy('log: debug\n'), metadata: { name: 'config', namespace: 'my-app' } },
    want: [],
  },
  {
    name: "metallb-system/config is MetalLB's even without MetalLB keys: unknown keys are refused",
    obj: legacy('log: debug\n'),
    want: [['data.config.log', Codes.FIELD_UNKNOWN]],
  },
  {
    name: 'metallb-system/config that does not parse is an error even without address-pools',
    obj: legacy('peers: [\n'),
    want: [['data.config', Codes.YAML_INVALID]],
  },
  {
    name: "a ConfigMap with only peers is MetalLB's, in any namespace",
    obj: { ...legacy('peers:\n- peer-address: 10.0.0.1\n'), metadata: { name: 'lb', namespace: 'x' } },
    want: [['data.config.peers', Codes.BGP_UNSUPPORTED]],
  },
  {
    name: 'legacy bfd-profiles are valid (named, each name once); capitalised pool names too',
    obj: legacy(
      'bfd-profiles:\n- name: fast\n  receive-interval: 300\n- name: slow\naddress-pools:\n- name: Office_LAN\n  protocol: layer2\n  addresses: [10.0.0.0/24]\n',
    ),
    want: [],
  },
  {
    name: 'legacy bfd-profiles: a name twice, an unknown field',
    obj: legacy('bfd-profiles:\n- name: fast\n- name: fast\n  recieve-interval: 3\n'),
    want: [
      ['data.config.bfd-profiles[1].recieve-interval', Codes.FIELD_UNKNOWN],
      ['data.config.bfd-profiles[1].name', Codes.FIELD_INVALID],
    ],
  },
  {
    name: 'legacy: a bfd profile that is not a map, one without a name, a pool with an empty name',
    obj: legacy(
      "bfd-profiles: [fast, {name: ''}]\naddress-pools:\n- name: ''\n  protocol: layer2\n  addresses: [10.0.0.0/24]\n  bgp-advertisements: []\n",
    ),
    want: [
      ['data.config.bfd-profiles[0]', Codes.FIELD_INVALID],
      ['data.config.bfd-profiles[1].name', Codes.FIELD_REQUIRED],
      ['data.config.address-pools[0].name', Codes.FIELD_REQUIRED],
    ],
  },
  {
    name: 'legacy layer2 pool with bgp-advertisements',
    obj: legacy(
      'address-pools:\n- name: a\n  protocol: layer2\n  addresses: [10.0.0.0/24]\n  bgp-advertisements:\n  - localpref: 100\n',
    ),
    want: [['data.config.address-pools[0].bgp-advertisements', Codes.FIELD_INVALID]],
  },
  { name: 'a LoadBalancer Service', obj: service({}), want: [] },
  {
    name: 'a ClusterIP Service is valid (vipmesh just gives it nothing)',
    obj: service({ type: 'ClusterIP', ports: [] }),
    want: [],
  },
  {
    name: 'a Service of another load balancer class',
    obj: service({ loadBalancerClass: 'other.io/lb', ports: 7 }),
    want: [],
  },
  {
    name: 'an unknown Service type',
    obj: service({ type: 'Balanced' }),
    want: [['spec.type', Codes.FIELD_INVALID]],
  },
  {
    name: 'loadBalancerIP and the annotation together',
    obj: service({ loadBalancerIP: '10.0.0.1' }, { 'metallb.io/loadBalancerIPs': '10.0.0.2' }),
    want: [['metadata.annotations["metallb.io/loadBalancerIPs"]', Codes.LBIP_CONFLICT]],
  },
  {
    name: 'two IPv4 addresses in the annotation',
    obj: service({}, { 'metallb.universe.tf/loadBalancerIPs': '10.0.0.1,10.0.0.2' }),
    want: [['metadata.annotations["metallb.universe.tf/loadBalancerIPs"]', Codes.LBIPS_FAMILY]],
  },
  {
    name: 'two families need a dual-stack policy',
    obj: service({}, { 'metallb.io/loadBalancerIPs': '10.0.0.1, 2001:db8::1' }),
    want: [['metadata.annotations["metallb.io/loadBalancerIPs"]', Codes.FAMILY_MISMATCH]],
  },
  {
    name: 'dual stack pinned',
    obj: service(
      { ipFamilyPolicy: 'RequireDualStack' },
      { 'metallb.io/loadBalancerIPs': '10.0.0.1,2001:db8::1' },
    ),
    want: [],
  },
  {
    name: 'RequireDualStack with one address, pinned family not in ipFamilies',
    obj: service({ ipFamilyPolicy: 'RequireDualStack', loadBalancerIP: '10.0.0.1' }),
    want: [['spec.loadBalancerIP', Codes.FAMILY_MISMATCH]],
  },
  {
    name: 'one address for a dual-stack Service (ipFamilies lists both), either policy',
    obj: service({
      ipFamilyPolicy: 'PreferDualStack',
      ipFamilies: ['IPv4', 'IPv6'],
      loadBalancerIP: '10.0.0.1',
    }),
    want: [['spec.loadBalancerIP', Codes.FAMILY_MISMATCH]],
  },
  {
    name: 'one address in the annotation for a RequireDualStack Service with both families',
    obj: service(
      { ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv6', 'IPv4'] },
      { 'metallb.io/loadBalancerIPs': '2001:db8::1' },
    ),
    want: [['metadata.annotations["metallb.io/loadBalancerIPs"]', Codes.FAMILY_MISMATCH]],
  },
  {
    name: 'one address for PreferDualStack without ipFamilies is taken',
    obj: service({ ipFamilyPolicy: 'PreferDualStack', loadBalancerIP: '10.0.0.1' }),
    want: [],
  },
  {
    name: 'an externalTrafficPolicy Kubernetes does not know',
    obj: service({ externalTrafficPolicy: 'local' }),
    want: [['spec.externalTrafficPolicy', Codes.FIELD_INVALID]],
  },
  {
    name: 'an L2Advertisement with serviceSelectors',
    obj: l2({ serviceSelectors: [{ matchLabels: { exposure: 'public' } }] }),
    want: [],
  },
  {
    name: 'duplicates MetalLB refuses in an L2Advertisement',
    obj: l2({
      ipAddressPools: ['a', 'b', 'a'],
      ipAddressPoolSelectors: [{ matchLabels: { x: '1', y: '2' } }, { matchLabels: { y: '2', x: '1' } }],
      nodeSelectors: [
        { matchExpressions: [{ key: 'k', operator: 'In', values: ['1', '2'] }] },
        { matchExpressions: [{ key: 'k', operator: 'In', values: ['2', '1'] }] },
      ],
      serviceSelectors: [{ matchLabels: { a: 'b' } }, { matchLabels: { a: 'b' } }],
    }),
    want: [
      ['spec.ipAddressPools[2]', Codes.FIELD_INVALID],
      ['spec.ipAddressPoolSelectors[1]', Codes.FIELD_INVALID],
      ['spec.nodeSelectors[1]', Codes.FIELD_INVALID],
      ['spec.serviceSelectors[1]', Codes.FIELD_INVALID],
    ],
  },
  {
    name: 'duplicates MetalLB refuses in a serviceAllocation, and in one expression',
    obj: ipPool({
      addresses: ['198.51.100.0/24'],
      serviceAllocation: {
        namespaces: ['web', 'web'],
        namespaceSelectors: [{ matchLabels: { team: 'a' } }, { matchLabels: { team: 'a' } }],
        serviceSelectors: [
          {
            matchExpressions: [
              { key: 'k', operator: 'In', values: ['x', 'x'] },
              { key: 'j', operator: 'Exists' },
              { key: 'j', operator: 'Exists' },
            ],
          },
        ],
      },
    }),
    want: [
      ['spec.serviceAllocation.namespaces[1]', Codes.FIELD_INVALID],
      ['spec.serviceAllocation.namespaceSelectors[1]', Codes.FIELD_INVALID],
      ['spec.serviceAllocation.serviceSelectors[0].matchExpressions[0].values[1]', Codes.FIELD_INVALID],
      ['spec.serviceAllocation.serviceSelectors[0].matchExpressions[2]', Codes.FIELD_INVALID],
    ],
  },
  {
    name: 'an IPv4 address for an IPv6 Service',
    obj: service({ ipFamilies: ['IPv6'], loadBalancerIP: '10.0.0.1' }),
    want: [['spec.loadBalancerIP', Codes.FAMILY_MISMATCH]],
  },
  {
    name: 'bad families and policy',
    obj: service({ ipFamilyPolicy: 'Whatever', ipFamilies: ['IPv4', 'IPv4', 'IPv5'] }),
    want: [
      ['spec.ipFamilyPolicy', Codes.FIELD_INVALID],
      ['spec.ipFamilies[1]', Codes.FIELD_INVALID],
      ['spec.ipFamilies[2]', Codes.FIELD_INVALID],
    ],
  },
  {
    name: 'SingleStack with two families',
    obj: service({ ipFamilies: ['IPv4', 'IPv6'] }),
    want: [['spec.ipFamilies', Codes.FAMILY_MISMATCH]],
  },
  {
    name: 'a bad loadBalancerIP',
    obj: service({ loadBalancerIP: '10.0.0.300' }),
    want: [['spec.loadBalancerIP', Codes.BAD_ADDRESS]],
  },
  {
    name: 'ports: none, bad, duplicate',
    obj: service({
      ports: [
        { port: 0 },
        { port: 53, protocol: 'ICMP' },
        { port: 53 },
        { port: 53, protocol: 'TCP' },
        'x',
        {},
      ],
    }),
    want: [
      ['spec.ports[0].port', Codes.FIELD_INVALID],
      ['spec.ports[1].protocol', Codes.FIELD_INVALID],
      ['spec.ports[3]', Codes.FIELD_INVALID],
      ['spec.ports[4]', Codes.FIELD_INVALID],
      ['spec.ports[5].port', Codes.FIELD_REQUIRED],
    ],
  },
  { name: 'empty ports', obj: service({ ports: [] }), want: [['spec.ports', Codes.FIELD_REQUIRED]] },
  {
    name: 'both annotation prefixes disagreeing, empty pool name',
    obj: service({}, { 'metallb.io/address-pool': '', 'metallb.universe.tf/address-pool': 'b' }),
    want: [
      ['metadata.annotations["metallb.universe.tf/address-pool"]', Codes.FIELD_INVALID],
      ['metadata.annotations["metallb.io/address-pool"]', Codes.FIELD_INVALID],
    ],
  },
  { name: 'a Namespace', obj: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } }, want: [] },
];

t.test('validateObject: every problem with its field path and code', async (t) => {
  for (const c of cases) {
    const got = validateObject(c.obj).map((p) => [p.path, p.code]);
    t.same(got, c.want, c.name);
  }
});

t.test('converters give the normalized types', async (t) => {
  t.same(toAddressPool(ipPool({ addresses: ['198.51.100.0-198.51.100.9', '2001:DB8::/64'] })), {
    name: 'office',
    labels: {},
    addresses: ['198.51.100.0-198.51.100.9', '2001:db8::/64'],
    autoAssign: true,
    avoidBuggyIPs: false,
  });
  t.same(
    fromLegacyConfigMap(
      legacy(
        'address-pools:\n- name: a\n  protocol: layer2\n  addresses: [10.0.0.0/24]\n  auto-assign: false\n  avoid-buggy-ips: true\n',
      ),
    ),
    [{ name: 'a', labels: {}, addresses: ['10.0.0.0/24'], autoAssign: false, avoidBuggyIPs: true }],
  );
  t.same(toL2Advertisement(l2({ ipAddressPools: ['a'] })), {
    name: 'l2',
    ipAddressPools: ['a'],
    ipAddressPoolSelectors: [],
    nodeSelectors: [],
    serviceSelectors: [],
    interfaces: [],
  });
  t.same(
    toServiceRequest(
      service(
        {
          ipFamilyPolicy: 'PreferDualStack',
          ipFamilies: ['IPv6'],
          ports: [{ port: 53, protocol: 'UDP' }, { port: 53 }],
        },
        {
          'metallb.universe.tf/loadBalancerIPs': '2001:DB8::5',
          'metallb.io/address-pool': 'office',
          'metallb.io/allow-shared-ip': 'dns',
        },
      ),
    ),
    {
      namespace: 'default',
      name: 'web',
      labels: {},
      requestedIPs: ['2001:db8::5'],
      pool: 'office',
      sharingKey: 'dns',
      ipFamilyPolicy: 'PreferDualStack',
      ipFamilies: [6],
      ports: [
        { protocol: 'UDP', port: 53 },
        { protocol: 'TCP', port: 53 },
      ],
    },
  );
  t.throws(() => toAddressPool(ipPool({ addresses: ['10.0.0.9-10.0.0.5'] })), { code: Codes.RANGE_REVERSED });
  t.throws(() => toAddressPool(service({})), { code: Codes.UNSUPPORTED_KIND });
  t.throws(() => toServiceRequest({}), { code: Codes.FIELD_REQUIRED });
  t.throws(() => toServiceRequest(service({ type: 'NodePort' })), { code: Codes.SERVICE_NOT_LOADBALANCER });
  t.throws(() => toServiceRequest(service({ loadBalancerClass: 'x.io/lb' })), {
    code: Codes.SERVICE_NOT_LOADBALANCER,
  });
});

t.test('validateObject never throws, whatever the object', async (t) => {
  const kinds = fc.constantFrom(
    'IPAddressPool',
    'L2Advertisement',
    'ConfigMap',
    'Service',
    'Namespace',
    'List',
  );
  const versions = fc.constantFrom('v1', 'metallb.io/v1beta1');
  const near = fc.record({
    apiVersion: versions,
    kind: kinds,
    metadata: fc.oneof(
      fc.anything(),
      fc.record({
        name: fc.oneof(fc.string(), fc.anything()),
        annotations: fc.dictionary(fc.string(), fc.anything()),
      }),
    ),
    spec: fc.oneof(
      fc.anything(),
      fc.dictionary(
        fc.constantFrom(
          'addresses',
          'ports',
          'type',
          'loadBalancerIP',
          'ipFamilies',
          'serviceAllocation',
          'interfaces',
          'nodeSelectors',
        ),
        fc.anything(),
      ),
    ),
    data: fc.oneof(fc.anything(), fc.record({ config: fc.string() })),
  });
  fc.assert(
    fc.property(fc.oneof(fc.anything(), near), (obj) => {
      const problems = validateObject(obj);
      return problems.every((p) => p.code.startsWith('VIPMESH_') && p.message.length > 0);
    }),
    { numRuns: 1000 },
  );
  t.pass();
});

t.test('externalTrafficPolicy Local makes the pod selector the backend key', async (t) => {
  const local = (selector?: Record<string, string>) =>
    toServiceRequest(service({ externalTrafficPolicy: 'Local', ...(selector ? { selector } : {}) }))
      .backendKey;
  t.equal(
    local({ tier: 'web', app: 'shop' }),
    'app=shop,tier=web',
    'keys sorted, as Kubernetes prints a selector',
  );
  t.equal(local(), undefined, 'no selector: nothing to match, as with Cluster');
  t.equal(
    toServiceRequest(service({ externalTrafficPolicy: 'Cluster', selector: { app: 'shop' } })).backendKey,
    undefined,
  );
});
