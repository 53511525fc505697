import t from 'tap';
import { Codes } from './codes.js';
import { backendSetOf, lbSettingsOf, validateObject } from './decode.js';
import { mergeBackends } from './decode-endpoints.js';
import { DEFAULT_HEALTH_CHECK } from './decode-lb.js';

const service = (spec: Record<string, unknown>, annotations?: Record<string, string>) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'web', ...(annotations ? { annotations } : {}) },
  spec: { type: 'LoadBalancer', ports: [{ name: 'http', port: 80, targetPort: 8080 }], ...spec },
});
const endpoints = (subsets: unknown, name = 'web') => ({
  apiVersion: 'v1',
  kind: 'Endpoints',
  metadata: { name, namespace: 'shop' },
  subsets,
});
const slice = (
  body: Record<string, unknown>,
  labels: Record<string, string> = { 'kubernetes.io/service-name': 'web' },
) => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name: 'web-abc', namespace: 'shop', labels },
  addressType: 'IPv4',
  ports: [{ name: 'http', port: 8080 }],
  ...body,
});
const A = 'metadata.annotations';

/** Each case: an object and the [path, code] of every problem it should have (none: valid). */
const cases: Array<{ name: string; obj: unknown; want: Array<[string, string]> }> = [
  { name: 'a Service with the defaults', obj: service({}), want: [] },
  {
    name: 'a Service with every setting',
    obj: service(
      {
        externalTrafficPolicy: 'Local',
        sessionAffinity: 'ClientIP',
        sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } },
        ports: [
          { name: 'http', port: 80, targetPort: 'web' },
          { name: 'dns', port: 53, protocol: 'UDP', targetPort: '5353' },
        ],
      },
      {
        'vipmesh.io/health-check': 'http',
        'vipmesh.io/health-check-path': '/healthz',
        'vipmesh.io/health-check-status': '200',
        'vipmesh.io/health-check-interval': '500ms',
        'vipmesh.io/health-check-timeout': '200ms',
        'vipmesh.io/health-check-rise': '1',
        'vipmesh.io/health-check-fall': '5',
        'vipmesh.io/lb-algorithm': 'hash',
      },
    ),
    want: [],
  },
  {
    name: 'a targetPort out of range',
    obj: service({ ports: [{ port: 80, targetPort: 70000 }] }),
    want: [['spec.ports[0].targetPort', Codes.FIELD_INVALID]],
  },
  {
    name: 'a targetPort that is no port name',
    obj: service({ ports: [{ port: 80, targetPort: 'Not_A_Name' }] }),
    want: [['spec.ports[0].targetPort', Codes.FIELD_INVALID]],
  },
  {
    name: 'a targetPort of the wrong type',
    obj: service({ ports: [{ port: 80, targetPort: true }] }),
    want: [['spec.ports[0].targetPort', Codes.FIELD_INVALID]],
  },
  {
    name: 'a session affinity that does not exist',
    obj: service({ sessionAffinity: 'Cookie' }),
    want: [['spec.sessionAffinity', Codes.FIELD_INVALID]],
  },
  {
    name: 'an affinity timeout past a day',
    obj: service({ sessionAffinityConfig: { clientIP: { timeoutSeconds: 90000 } } }),
    want: [['spec.sessionAffinityConfig.clientIP.timeoutSeconds', Codes.FIELD_INVALID]],
  },
  ...(
    [
      ['vipmesh.io/health-check', 'udp'],
      ['vipmesh.io/health-check-path', 'healthz'],
      ['vipmesh.io/health-check-status', '99'],
      ['vipmesh.io/health-check-status', '400-200'],
      ['vipmesh.io/health-check-interval', 'often'],
      ['vipmesh.io/health-check-interval', '10ms'],
      ['vipmesh.io/health-check-rise', '0'],
      ['vipmesh.io/health-check-fall', 'three'],
      ['vipmesh.io/lb-algorithm', 'roundrobin'],
    ] as const
  ).map(([k, v]) => ({
    name: `annotation ${k}: ${v}`,
    obj: service({}, { [k]: v }),
    want: [[`${A}["${k}"]`, Codes.FIELD_INVALID]] as Array<[string, string]>,
  })),
  {
    name: 'a timeout longer than the interval',
    obj: service({}, { 'vipmesh.io/health-check-timeout': '3s' }),
    want: [[`${A}["vipmesh.io/health-check-timeout"]`, Codes.FIELD_INVALID]],
  },
  {
    name: 'a misspelt health-check annotation',
    obj: service({}, { 'vipmesh.io/health-check-intervall': '2s' }),
    want: [[`${A}["vipmesh.io/health-check-intervall"]`, Codes.FIELD_UNKNOWN]],
  },
  {
    name: 'Endpoints with ready and not-ready addresses',
    obj: endpoints([
      {
        addresses: [{ ip: '198.51.100.21', nodeName: 'n1' }, { ip: '2001:db8::21' }],
        notReadyAddresses: [{ ip: '198.51.100.22' }],
        ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
      },
    ]),
    want: [],
  },
  {
    name: 'Endpoints with an address that is not an IP, a bad port and protocol, an unknown field',
    obj: endpoints([
      {
        addresses: [{ ip: 'web-1' }, { hostname: 'x' }, 'x'],
        ports: [
          { port: 0 },
          { port: 80, protocol: 'SCTP' },
          { port: 81, name: 'a' },
          { port: 82, name: 'a' },
          {},
          7,
        ],
        extra: 1,
      },
      3,
    ]),
    want: [
      ['subsets[0].extra', Codes.FIELD_UNKNOWN],
      ['subsets[0].ports[0].port', Codes.FIELD_INVALID],
      ['subsets[0].ports[1].protocol', Codes.FIELD_INVALID],
      ['subsets[0].ports[3]', Codes.FIELD_INVALID],
      ['subsets[0].ports[4].port', Codes.FIELD_REQUIRED],
      ['subsets[0].ports[5]', Codes.FIELD_INVALID],
      ['subsets[0].addresses[0].ip', Codes.BAD_ADDRESS],
      ['subsets[0].addresses[1].ip', Codes.FIELD_REQUIRED],
      ['subsets[0].addresses[2]', Codes.FIELD_INVALID],
      ['subsets[1]', Codes.FIELD_INVALID],
    ],
  },
  {
    name: 'an EndpointSlice',
    obj: slice({ endpoints: [{ addresses: ['198.51.100.23'], nodeName: 'n2' }] }),
    want: [],
  },
  {
    name: 'an EndpointSlice without its Service label',
    obj: slice({ endpoints: [] }, {}),
    want: [['metadata.labels', Codes.FIELD_REQUIRED]],
  },
  {
    name: 'an FQDN slice',
    obj: slice({ addressType: 'FQDN', endpoints: [{ addresses: ['web.example'] }] }),
    want: [['addressType', Codes.FIELD_INVALID]],
  },
  {
    name: 'an EndpointSlice address of the wrong family, two addresses, none, bad condition',
    obj: slice({
      endpoints: [
        { addresses: ['2001:db8::1'] },
        { addresses: ['198.51.100.1', '198.51.100.2'] },
        { addresses: ['nope'], conditions: { ready: 'yes' } },
        { zone: 'a' },
        { addresses: ['198.51.100.3'], topology: {} },
      ],
    }),
    want: [
      ['endpoints[4].topology', Codes.FIELD_UNKNOWN],
      ['endpoints[0].addresses[0]', Codes.FIELD_INVALID],
      ['endpoints[1].addresses', Codes.FIELD_INVALID],
      ['endpoints[2].conditions.ready', Codes.FIELD_INVALID],
      ['endpoints[2].addresses[0]', Codes.BAD_ADDRESS],
      ['endpoints[3].addresses', Codes.FIELD_REQUIRED],
    ],
  },
  {
    name: 'an EndpointSlice with too many endpoints',
    obj: slice({ endpoints: Array.from({ length: 1001 }, () => ({ addresses: ['198.51.100.1'] })) }),
    want: [['endpoints', Codes.FIELD_INVALID]],
  },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const got = validateObject(c.obj).map((p) => [p.path, p.code]);
    t.same(got, c.want);
  });
}

t.test('the settings of a Service: defaults, and what the annotations say', async (t) => {
  const d = lbSettingsOf(service({ ports: [{ port: 80 }, { port: 5000, protocol: 'SCTP' }] }))!;
  t.same(d, {
    ports: [{ protocol: 'TCP', port: 80, targetPort: 80 }],
    externalTrafficPolicy: 'Cluster',
    sessionAffinity: 'None',
    affinityTimeoutSeconds: 10800,
    algorithm: 'random',
    healthCheck: DEFAULT_HEALTH_CHECK,
  });
  const s = lbSettingsOf(
    service(
      {
        externalTrafficPolicy: 'Local',
        sessionAffinity: 'ClientIP',
        ports: [
          { name: 'http', port: 80, targetPort: 'web' },
          { port: 53, protocol: 'UDP', targetPort: '5353' },
        ],
      },
      {
        'vipmesh.io/health-check': 'http',
        'vipmesh.io/health-check-status': '204',
        'vipmesh.io/health-check-interval': '1s',
        'vipmesh.io/lb-algorithm': 'hash',
        'vipmesh.io/health-check-rise': 'bad',
      },
    ),
  )!;
  t.same(s.ports, [
    { name: 'http', protocol: 'TCP', port: 80, targetPort: 'web' },
    { protocol: 'UDP', port: 53, targetPort: 5353 },
  ]);
  t.equal(s.externalTrafficPolicy, 'Local');
  t.equal(s.sessionAffinity, 'ClientIP');
  t.equal(s.algorithm, 'hash');
  t.same(s.healthCheck, {
    ...DEFAULT_HEALTH_CHECK,
    type: 'http',
    expectStatus: [204, 204],
    intervalMs: 1000,
    rise: 2, // the bad value falls back to the default on a stored object
  });
  t.equal(lbSettingsOf(service({ type: 'ClusterIP' })), undefined);
  t.equal(lbSettingsOf('x'), undefined);
});

t.test('backends: Endpoints and slices merged, one per address', async (t) => {
  const a = backendSetOf(
    endpoints([
      {
        addresses: [{ ip: '198.51.100.21', nodeName: 'n1' }],
        notReadyAddresses: [{ ip: '198.51.100.22' }],
        ports: [{ name: 'http', port: 8080 }],
      },
    ]),
  )!;
  t.same(a.namespace, 'shop');
  t.same(a.service, 'web');
  const b = backendSetOf(
    slice({
      endpoints: [
        { addresses: ['198.51.100.22'], nodeName: 'n2' },
        { addresses: ['198.51.100.23'], conditions: { ready: false } },
        { addresses: ['198.51.100.21'] },
      ],
      ports: [{ name: 'alt', port: 8081 }],
    }),
  )!;
  t.equal(b.service, 'web');
  t.same(mergeBackends([a, b]), [
    {
      ip: '198.51.100.21',
      nodeName: 'n1',
      ports: [
        { name: 'http', port: 8080, protocol: 'TCP' },
        { name: 'alt', port: 8081, protocol: 'TCP' },
      ],
      ready: true,
    },
    {
      ip: '198.51.100.22',
      nodeName: 'n2',
      ports: [
        { name: 'http', port: 8080, protocol: 'TCP' },
        { name: 'alt', port: 8081, protocol: 'TCP' },
      ],
      ready: true,
    },
    { ip: '198.51.100.23', ports: [{ name: 'alt', port: 8081, protocol: 'TCP' }], ready: false },
  ]);
  t.equal(backendSetOf({ kind: 'Service' }), undefined);
  t.equal(backendSetOf(null), undefined);
});
