import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { silentLogger } from '../log.js';
import { createRegistry } from '../metrics.js';
import { ensureServerCredentials } from '../pki/index.js';
import { createApiServer } from '../testing/api-server.js';
import { until } from '../testing/until.js';
import { readAdminConfig, resolveConnection, writeAdminConfig } from './admin-config.js';
import { ApiClient } from './client.js';
import type { Kv } from './kv.js';
import { MemoryKv } from './memory-kv.js';
import { age, describeService, formatTable, printTable } from './printers.js';
import { ResourceStore } from './store.js';
import { RESOURCES, type Service } from './types.js';

const dir = mkdtempSync(join(tmpdir(), 'vipmesh-cp-unit-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const credsP = ensureServerCredentials(dir);

async function setup(t: { teardown(fn: () => unknown): void }, kv: Kv = new MemoryKv()) {
  const c = await credsP;
  const registry = createRegistry();
  const store = new ResourceStore({ kv });
  let ready = false;
  const srv = await createApiServer({
    store,
    logger: silentLogger(),
    tls: c,
    adminToken: c.adminToken,
    registry,
    ready: () => ready,
    maxBodyBytes: 64 << 10,
  });
  t.teardown(() => srv.close());
  const client = await ApiClient.connect({ server: srv.url, token: c.adminToken });
  t.teardown(() => client.close());
  return { c, store, srv, client, registry, setReady: (v: boolean) => (ready = v) };
}

function svc(name: string, labels: Record<string, string> = {}): Service {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, labels }, spec: { type: 'LoadBalancer' } };
}

t.test('readyz follows the ready hook; metrics count requests', async (t) => {
  const { srv, client, registry, setReady, c } = await setup(t);
  const get = (path: string) =>
    new Promise<number>((resolve, reject) => {
      request(new URL(path, srv.url), { ca: c.caCertPem }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
        .on('error', reject)
        .end();
    });
  t.equal(await get('/readyz'), 503, 'not ready until the hook says so');
  setReady(true);
  t.equal(await get('/readyz'), 200);
  t.equal(await get('/livez'), 200);
  await client.create('services', svc('a'));
  await t.rejects(client.get('services', 'b'), { code: 'VIPMESH_API_NOT_FOUND' });
  const text = await registry.metrics();
  t.match(text, /vipmesh_controlplane_api_requests_total\{verb="POST",resource="services",code="201"\} 1/);
  t.match(text, /vipmesh_controlplane_api_requests_total\{verb="GET",resource="unknown",code="404"\} 1/);
});

t.test('client verbs, watch with initial state, too-large bodies, method errors', async (t) => {
  const { client, store, registry } = await setup(t);
  const a = await client.create('services', svc('a', { app: 'x' }));
  await t.rejects(client.request('POST', '/api/v1/services', svc('b')), {
    code: 'VIPMESH_API_METHOD_NOT_ALLOWED',
  });
  await t.rejects(client.request('GET', '/api/v1/namespaces/default/services/a/status'), {
    code: 'VIPMESH_API_METHOD_NOT_ALLOWED',
  });
  await t.rejects(
    client.request('PUT', '/api/v1/namespaces/default/services/a', { ...a, metadata: { name: 'b' } }),
    {
      code: 'VIPMESH_API_BAD_REQUEST',
    },
  );
  await t.rejects(client.request('PUT', '/api/v1/namespaces/default/services/a', [1]), {
    code: 'VIPMESH_API_BAD_REQUEST',
  });
  await t.rejects(
    client.request('POST', '/api/v1/namespaces/default/services', {
      ...svc('big'),
      pad: 'x'.repeat(100 << 10),
    }),
    { code: 'VIPMESH_API_TOO_LARGE' },
  );
  const lb = await client.request<Service>('PUT', '/api/v1/namespaces/default/services/a/status', {
    ...a,
    status: { loadBalancer: { ingress: [{ ip: '198.51.100.7' }] } },
  });
  t.equal(lb.status?.loadBalancer?.ingress?.[0]?.ip, '198.51.100.7', 'PUT /status writes the status');
  const events: string[] = [];
  const w = await client.watch('services', {}, (e) => events.push(`${e.type} ${e.object.metadata.name}`));
  await client.create('services', svc('b'));
  await client.update('services', {
    ...(await client.get('services', 'b')),
    spec: { type: 'LoadBalancer', x: 1 },
  });
  await client.delete('services', 'b');
  await until('four watch events', () => events.length >= 4);
  t.match(await registry.metrics(), /vipmesh_controlplane_api_watches 1/);
  w.close();
  await w.done;
  t.same(events, ['ADDED a', 'ADDED b', 'MODIFIED b', 'DELETED b'], 'initial state, then changes');
  await until('the watch to end on the server', async () => !/api_watches 1/.test(await registry.metrics()));
  t.match(
    await registry.metrics(),
    /vipmesh_controlplane_api_watches 0/,
    'a client that goes away ends its watch',
  );
  const sel = await client.request<{ items: unknown[] }>('GET', '/api/v1/services?labelSelector=app%3Dx');
  t.equal(sel.items.length, 1, 'labelSelector filters lists');
  await t.rejects(
    client.watch('services', { resourceVersion: 'abc' }, () => undefined),
    {
      code: 'VIPMESH_API_BAD_REQUEST',
    },
  );
  t.equal((await store.list('services')).items.length, 1);
});

t.test('a compacted watch answers 410; a broken datastore 503', async (t) => {
  const kv = new MemoryKv();
  const { client } = await setup(t, kv);
  await client.create('services', svc('a'));
  await client.create('services', svc('b'));
  kv.compact(await kv.revision());
  await t.rejects(
    client.watch('services', { resourceVersion: '1' }, () => undefined),
    { code: 'VIPMESH_API_GONE' },
  );
  const broken = new MemoryKv();
  broken.list = async () => {
    throw new Error('disk on fire');
  };
  const b = await setup(t, broken);
  await t.rejects(b.client.list('services'), { code: 'VIPMESH_API_ERROR', details: { httpStatus: 500 } });
});

t.test('closing the server ends open watch streams', async (t) => {
  const { client, srv } = await setup(t);
  const w = await client.watch('nodes', {}, () => undefined);
  await srv.close();
  await w.done;
  t.pass('the watch stream ended');
  await t.rejects(client.list('nodes'), { code: 'VIPMESH_API_UNREACHABLE' });
});

t.test('admin config: written private, read back, flags win', async (t) => {
  const p = join(dir, 'etc', 'vipmesh.yaml');
  const ca = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
  writeAdminConfig(p, { server: 'https://198.51.100.1:6443', token: 'K10abc::admin:x', caCertPem: ca });
  t.same(readAdminConfig(p), { server: 'https://198.51.100.1:6443', token: 'K10abc::admin:x' });
  t.equal(statSync(p).mode & 0o777, 0o600, 'private: it holds the admin token');
  const kc = parseYaml(readFileSync(p, 'utf8')) as Record<string, unknown>;
  t.match(kc, {
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': 'vipmesh',
    contexts: [{ name: 'vipmesh', context: { cluster: 'vipmesh', user: 'vipmesh-admin' } }],
    clusters: [{ name: 'vipmesh', cluster: { server: 'https://198.51.100.1:6443' } }],
    users: [{ name: 'vipmesh-admin', user: { token: 'K10abc::admin:x' } }],
  });
  const cluster = (kc['clusters'] as Array<{ cluster: Record<string, string> }>)[0]!.cluster;
  t.equal(Buffer.from(cluster['certificate-authority-data']!, 'base64').toString(), ca);
  // The older map form, as existing installs have it, is still read.
  const old = join(dir, 'old.yaml');
  writeFileSync(old, 'server: https://198.51.100.2:6443\ntoken: K10abc::admin:y\n');
  t.same(readAdminConfig(old), { server: 'https://198.51.100.2:6443', token: 'K10abc::admin:y' });
  // A kubeconfig written by hand: its only context is used even without current-context.
  writeFileSync(
    old,
    'clusters: [{name: c, cluster: {server: "https://h:1"}}]\nusers: [{name: u, user: {token: T}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n',
  );
  t.same(readAdminConfig(old), { server: 'https://h:1', token: 'T' });
  t.equal(readAdminConfig(join(dir, 'missing.yaml')), undefined);
  t.same(resolveConnection({ server: 'https://other:6443' }, p), {
    server: 'https://other:6443',
    token: 'K10abc::admin:x',
  });
  t.throws(() => resolveConnection({ server: 'https://x' }, join(dir, 'missing.yaml')), {
    code: 'VIPMESH_API_NO_SERVER',
  });
  const bad = join(dir, 'bad.yaml');
  for (const text of [
    'a: [',
    '- x\n',
    'server: 1\n',
    'kind: Config\ncontexts: []\n',
    'kind: Config\ncurrent-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n',
    'kind: Config\ncurrent-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\nclusters: [{name: c}]\n',
  ]) {
    writeFileSync(bad, text);
    t.throws(() => readAdminConfig(bad), { code: 'VIPMESH_ADMIN_CONFIG_INVALID' }, text);
  }
});

t.test('printers: ages, tables, describe', async (t) => {
  const now = Date.parse('2026-01-10T00:00:00Z');
  t.equal(age('2026-01-09T23:59:15Z', now), '45s');
  t.equal(age('2026-01-09T23:30:00Z', now), '30m');
  t.equal(age('2026-01-09T00:00:00Z', now), '24h');
  t.equal(age('2026-01-01T00:00:00Z', now), '9d');
  t.equal(age(undefined, now), '<unknown>');
  t.equal(age('garbage', now), '<unknown>');
  t.equal(formatTable(['A', 'BB'], [['xxx', 'y']]), 'A     BB\nxxx   y\n');
  t.equal(printTable(RESOURCES.services, [], { now }), '');
  const ev = printTable(
    RESOURCES.events,
    [
      {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name: 'e' },
        type: 'Warning',
        reason: 'AllocationFailed',
        message: 'no pool',
        lastTimestamp: '2026-01-09T23:59:00Z',
        involvedObject: { kind: 'Service', name: 'web' },
      },
    ],
    { now },
  );
  t.match(ev, /60s\s+Warning\s+AllocationFailed\s+service\/web\s+no pool/);
  const cm = printTable(
    RESOURCES.configmaps,
    [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'config' } }],
    {
      now,
    },
  );
  t.match(cm, /^NAME\s+AGE\nconfig\s+<unknown>\n$/);
  const l2 = printTable(
    RESOURCES.l2advertisements,
    [
      {
        apiVersion: 'metallb.io/v1beta1',
        kind: 'L2Advertisement',
        metadata: { name: 'l2' },
        spec: { nodeSelectors: [{ matchLabels: { a: 'b' } }], interfaces: ['eth0'] },
      },
    ],
    { now, wide: true },
  );
  t.match(l2, /l2\s+<none>\s+<none>\s+eth0\s+\[\{"matchLabels":\{"a":"b"\}\}\]/);
  const nodes = printTable(
    RESOURCES.nodes,
    [
      {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: 'n', labels: { 'node-role.kubernetes.io/control-plane': 'true' } },
        spec: { unschedulable: true },
        status: { conditions: [{ type: 'Ready', status: 'False' }] },
      },
    ],
    { now },
  );
  t.match(nodes, /n\s+NotReady,SchedulingDisabled\s+control-plane/);
  const text = describeService(
    {
      ...svc('web', { app: 'web' }),
      metadata: { name: 'web', namespace: 'default', annotations: { a: '1', b: '2' } },
      spec: { type: 'LoadBalancer', loadBalancerIP: '198.51.100.9', ports: [{ port: 53, protocol: 'UDP' }] },
      status: { conditions: [{ type: 'Allocated', status: 'False', reason: 'NoPool', message: 'no pool' }] },
    },
    [],
    [],
    now,
  );
  t.match(text, /Annotations:\s+a: 1\n\s+b: 2\n/);
  t.match(text, /LoadBalancer IP:\s+198\.51\.100\.9/);
  t.match(text, /LoadBalancer Ingress:\s+<pending>/);
  t.match(text, /Port:\s+<unset>\s+53\/UDP/);
  t.match(text, /Condition Allocated:\s+False \(NoPool\): no pool/);
  t.match(text, /Events:\s+<none>/);
});
