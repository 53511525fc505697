import t from 'tap';
import { describeService, printTable } from './printers.js';
import { RESOURCES, type Service } from './types.js';

const svc = (status: Service['status'] = {}): Service => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'web', namespace: 'shop' },
  spec: { type: 'LoadBalancer', ports: [{ name: 'http', port: 80, targetPort: 'web' }] },
  status,
});
const backend = (ip: string, ready = true, nodeName?: string) => ({
  ip,
  ready,
  ports: [{ name: 'web', port: 8080, protocol: 'TCP' as const }],
  ...(nodeName === undefined ? {} : { nodeName }),
});

t.test('describe service: each endpoint with the port it serves and its health', async (t) => {
  const out = describeService(
    svc({
      endpointHealth: {
        endpoints: [
          { ip: '198.51.100.22', port: 8080, healthy: false, reason: 'HTTP 503' },
          { ip: '198.51.100.21', port: 8080, healthy: true },
        ],
      },
    }),
    [],
    [],
    0,
    [
      backend('198.51.100.21', true, 'n1'),
      backend('198.51.100.22'),
      backend('198.51.100.23'),
      backend('198.51.100.24', false),
      { ip: '2001:db8::9', ready: true, ports: [] },
    ],
  );
  t.match(out, /Endpoints:\n {2}http 80\/TCP -> web:\n {4}ENDPOINT\s+NODE\s+HEALTH\n/);
  t.match(out, /198\.51\.100\.21:8080\s+n1\s+healthy\n/);
  t.match(out, /198\.51\.100\.22:8080\s+-\s+unhealthy: HTTP 503\n/);
  t.match(out, /198\.51\.100\.23:8080\s+-\s+unknown\n/);
  t.match(out, /198\.51\.100\.24:8080\s+-\s+not ready\n/);
  t.match(out, /2001:db8::9\s+-\s+no port named web\n/);
  t.match(
    describeService(svc(), [], [], 0),
    /Endpoints:\s+<none> \(80\/TCP -> the holder's own port web\)\n/,
  );
  t.notMatch(describeService({ ...svc(), spec: { type: 'ClusterIP' } }, [], [], 0), /Endpoints/);
});

t.test('describe service: a backend the objects give no node is on the node of its pod subnet', async (t) => {
  const nodes = [
    {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: 'a2' },
      spec: { podCIDR: '198.18.0.0/24', podCIDRs: ['198.18.0.0/24'] },
      status: { addresses: [{ type: 'InternalIP', address: '198.51.100.12' }] },
    },
  ];
  const out = describeService(svc(), [], nodes, 0, [
    backend('198.18.0.2'),
    backend('198.51.100.12'),
    backend('198.18.1.2', true, 'n1'),
    backend('198.51.100.21'),
  ]);
  t.match(out, /198\.18\.0\.2:8080\s+a2\s+unknown\n/, 'in its pod subnet');
  t.match(out, /198\.51\.100\.12:8080\s+a2\s+unknown\n/, 'its own address');
  t.match(out, /198\.18\.1\.2:8080\s+n1\s+unknown\n/, 'the nodeName the object gives wins');
  t.match(out, /198\.51\.100\.21:8080\s+-\s+unknown\n/, 'a machine that is no node');
});

t.test('get endpoints and endpointslices: kubectl columns', async (t) => {
  const now = Date.parse('2026-12-05T17:00:00Z');
  const created = '2026-12-05T16:59:00Z';
  const ep = printTable(
    RESOURCES.endpoints,
    [
      {
        apiVersion: 'v1',
        kind: 'Endpoints',
        metadata: { name: 'web', creationTimestamp: created },
        subsets: [
          { addresses: [{ ip: '198.51.100.1' }, { ip: '2001:db8::1' }], ports: [{ port: 80 }, { port: 81 }] },
          { addresses: [{ ip: '198.51.100.2' }] },
        ],
      },
      { apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'none', creationTimestamp: created } },
    ],
    { now },
  );
  t.match(
    ep,
    /^NAME\s+ENDPOINTS\s+AGE\nweb\s+198\.51\.100\.1:80,198\.51\.100\.1:81,\[2001:db8::1\]:80 \+ 2 more\.\.\.\s+60s\nnone\s+<none>\s+60s\n$/,
  );
  const slices = printTable(
    RESOURCES.endpointslices,
    [
      {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name: 'web-1', creationTimestamp: created },
        addressType: 'IPv4',
        ports: [{ port: 8080 }],
        endpoints: [{ addresses: ['198.51.100.1'] }],
      },
      {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name: 'web-2', creationTimestamp: created },
      },
    ],
    { now },
  );
  t.match(
    slices,
    /^NAME\s+ADDRESSTYPE\s+PORTS\s+ENDPOINTS\s+AGE\nweb-1\s+IPv4\s+8080\s+198\.51\.100\.1\s+60s\nweb-2\s+<unset>\s+<unset>\s+<none>\s+60s\n$/,
  );
});
