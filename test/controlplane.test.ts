/**
 * The control plane on loopback with real TLS: the resource store on a REAL etcd (the Debian binary) and on
 * the embedded datastore (src/kine), the HTTPS API in front of it, and the CLI (apply/get/delete/describe)
 * run in-process against the API with the CA pinned from the admin token.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Etcd3 } from 'etcd3';
import t, { type Test } from 'tap';
import type { CliContext } from '../src/cli/context.js';
import { run } from '../src/cli/program.js';
import {
  type ApiServer,
  createApiServer,
  createResourceStore,
  type ResourceStore,
  type Service,
  type Status,
  type WatchEvent,
  writeAdminConfig,
} from '../src/controlplane/index.js';
import { startEtcd } from '../src/controlplane/testing.js';
import { startDatastore } from '../src/kine/index.js';
import { silentLogger } from '../src/log.js';
import { createRegistry } from '../src/metrics.js';
import { ensureServerCredentials, type ServerCredentials } from '../src/tunnel/index.js';

function tmp(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

let credsP: Promise<ServerCredentials> | undefined;
/** One set of server credentials for the whole file (made by the tunnel's PKI). */
function creds(): Promise<ServerCredentials> {
  credsP ??= (async () => {
    const dir = tmp('vipmesh-cp-pki-');
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    return ensureServerCredentials(dir);
  })();
  return credsP;
}

/** A datastore endpoint: a real etcd process, or the embedded datastore. */
async function datastore(t: Test, which: 'etcd' | 'kine'): Promise<string> {
  if (which === 'etcd') {
    const etcd = await startEtcd();
    t.teardown(() => etcd.stop());
    return etcd.endpoint;
  }
  const dir = tmp('vipmesh-cp-kine-');
  const ds = await startDatastore({ dataDir: dir, listenAddress: '127.0.0.1:0', logger: silentLogger() });
  t.teardown(async () => {
    await ds.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return ds.url;
}

function svc(name: string, ip?: string): Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, labels: { app: name } },
    spec: {
      type: 'LoadBalancer',
      ...(ip === undefined ? {} : { loadBalancerIP: ip }),
      ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
    },
  };
}

for (const which of ['etcd', 'kine'] as const) {
  t.test(`resource store on ${which}`, async (t) => {
    const endpoint = await datastore(t, which);
    const store = createResourceStore({ endpoints: endpoint });
    t.teardown(() => store.close());
    const raw = new Etcd3({ hosts: endpoint });
    t.teardown(() => raw.close());

    const a = await store.create('services', svc('web', '198.51.100.10'));
    const stored = await raw.get('/registry/services/default/web').exec();
    t.equal(
      stored.kvs[0]?.mod_revision,
      a.metadata.resourceVersion,
      'resourceVersion is the key mod revision',
    );
    t.notOk(JSON.parse(stored.kvs[0]!.value.toString()).metadata.resourceVersion, 'not stored in the value');

    const events: WatchEvent<Service>[] = [];
    const w = await store.watch('services', { resourceVersion: a.metadata.resourceVersion! });
    w.on('event', (e) => events.push(e));

    // Ten writers race with the same resourceVersion: exactly one wins, the others get 409.
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) =>
        store.update('services', { ...a, spec: { ...a.spec, ports: [{ port: 8000 + i }] } }),
      ),
    );
    const won = results.filter((r) => r.status === 'fulfilled');
    t.equal(won.length, 1, 'one concurrent update wins');
    for (const r of results) {
      if (r.status === 'rejected') t.equal((r.reason as { code: string }).code, 'VIPMESH_API_CONFLICT');
    }
    const winner = (won[0] as PromiseFulfilledResult<Service>).value;

    const st = await store.updateStatus('services', {
      ...winner,
      status: { loadBalancer: { ingress: [{ ip: '198.51.100.10' }] } },
    });
    await store.create('services', { ...svc('db'), metadata: { name: 'db', namespace: 'prod' } });
    const list = await store.list('services');
    const head = await raw.get('/nonexistent').exec();
    t.equal(list.metadata.resourceVersion, head.header.revision, 'list resourceVersion = header revision');
    t.same(
      list.items.map((s) => `${s.metadata.namespace}/${s.metadata.name}`),
      ['default/web', 'prod/db'],
    );
    await store.delete('services', 'db', 'prod');

    const until = Date.now() + 5000;
    while (events.length < 4 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    await w.close();
    t.same(
      events.map((e) => [e.type, e.object.metadata.name, e.object.metadata.resourceVersion]),
      [
        ['MODIFIED', 'web', winner.metadata.resourceVersion],
        ['MODIFIED', 'web', st.metadata.resourceVersion],
        ['ADDED', 'db', list.metadata.resourceVersion],
        ['DELETED', 'db', String(Number(list.metadata.resourceVersion) + 1)],
      ],
      'the watch sees every change after its resourceVersion, in order, with its revision',
    );
    t.equal(events[3]!.object.spec?.type, 'LoadBalancer', 'a DELETED event carries the object as it was');

    // A compacted revision: the watch ends with 410 Gone, so a controller relists.
    await raw.kv.compact({ revision: Number(list.metadata.resourceVersion) + 1 });
    // etcd refuses it either when the watch is created or right after: both must read as 410 Gone.
    const err = await Promise.race([
      store.watch('services', { resourceVersion: a.metadata.resourceVersion! }).then(
        (gone) =>
          new Promise<{ code: string }>((resolve) => {
            gone.on('error', (e) => void gone.close().then(() => resolve(e)));
            gone.on('event', () => undefined);
          }),
        (e: { code: string }) => e,
      ),
      new Promise<{ code: string }>((resolve) => setTimeout(() => resolve({ code: 'timed out' }), 10_000)),
    ]);
    t.equal(err.code, 'VIPMESH_API_GONE');
  });
}

/** An API server on `endpoint` with the shared credentials. */
async function api(
  t: Test,
  endpoint: string,
): Promise<{ srv: ApiServer; store: ResourceStore; c: ServerCredentials }> {
  const c = await creds();
  const registry = createRegistry();
  const store = createResourceStore({ endpoints: endpoint, registry });
  let ready = true;
  const srv = await createApiServer({
    store,
    logger: silentLogger(),
    tls: c,
    adminToken: c.adminToken,
    joinToken: c.joinToken,
    ready: () => ready,
    registry,
    extraRoutes: (req, res) => {
      if (req.url !== '/v1/connect') return false;
      res.writeHead(426).end();
      return true;
    },
  });
  t.teardown(async () => {
    ready = false;
    await srv.close();
    await store.close();
  });
  return { srv, store, c };
}

interface Reply {
  status: number;
  body: string;
  json: () => Status & Record<string, unknown>;
}

function call(
  srv: ApiServer,
  ca: string,
  method: string,
  path: string,
  opts: { token?: string; body?: unknown } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (opts.token !== undefined) headers['Authorization'] = `Bearer ${opts.token}`;
    const payload = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
    // Node sends a DELETE body neither chunked nor with a length unless told: give the length.
    if (payload !== undefined) headers['Content-Length'] = String(payload.length);
    const req = request(new URL(path, srv.url), { method, headers, ca }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, json: () => JSON.parse(body) }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

t.test('HTTPS API: auth, Kubernetes paths, Status errors, watch stream', async (t) => {
  const endpoint = await datastore(t, 'etcd');
  const { srv, c } = await api(t, endpoint);
  const ca = c.caCertPem;
  const admin = c.adminToken;

  t.equal((await call(srv, ca, 'GET', '/healthz')).status, 200, '/healthz is open');
  t.equal((await call(srv, ca, 'GET', '/readyz')).status, 200, '/readyz is open');
  t.equal((await call(srv, ca, 'GET', '/cacerts')).body, ca, '/cacerts serves the CA the token pins');
  t.equal((await call(srv, ca, 'GET', '/v1/connect')).status, 426, 'extra routes (the tunnel) are mounted');

  const anon = await call(srv, ca, 'GET', '/api/v1/nodes');
  t.equal(anon.status, 401, 'no token: 401');
  t.match(anon.json(), { kind: 'Status', status: 'Failure', reason: 'Unauthorized', code: 401 });
  const wrong = admin.replace(/:([^:]+)$/, ':0000000000000000');
  t.equal((await call(srv, ca, 'GET', '/api/v1/nodes', { token: wrong })).status, 401, 'wrong secret: 401');
  const join = await call(srv, ca, 'GET', '/api/v1/nodes', { token: c.joinToken });
  t.equal(join.status, 403, 'the join token is not an admin token');

  const posted = await call(srv, ca, 'POST', '/api/v1/namespaces/default/services', {
    token: admin,
    body: svc('web', '198.51.100.10'),
  });
  t.equal(posted.status, 201);
  const web = posted.json() as unknown as Service;
  t.match(web.metadata, { name: 'web', namespace: 'default', resourceVersion: /^\d+$/ });

  const dup = await call(srv, ca, 'POST', '/api/v1/namespaces/default/services', {
    token: admin,
    body: svc('web'),
  });
  t.match([dup.status, dup.json().reason], [409, 'AlreadyExists']);
  const newer = await call(srv, ca, 'PUT', '/api/v1/namespaces/default/services/web', {
    token: admin,
    body: { ...web, spec: { ...web.spec, ports: [{ port: 443 }] } },
  });
  t.equal(newer.status, 200);
  const stale = await call(srv, ca, 'PUT', '/api/v1/namespaces/default/services/web', {
    token: admin,
    body: web,
  });
  t.match([stale.status, stale.json().reason], [409, 'Conflict'], 'a stale resourceVersion is 409 Conflict');
  const missing = await call(srv, ca, 'GET', '/api/v1/namespaces/default/services/nope', { token: admin });
  t.match(
    [missing.status, missing.json()],
    [404, { kind: 'Status', reason: 'NotFound', details: { name: 'nope' } }],
  );
  const invalid = await call(srv, ca, 'POST', '/api/v1/namespaces/default/services', {
    token: admin,
    body: svc('bad', '198.51.100.300'),
  });
  t.equal(invalid.status, 422, 'invalid objects are 422 (vip-pool validation)');
  t.match(invalid.json(), { reason: 'Invalid', details: { causes: [{ field: 'spec.loadBalancerIP' }] } });
  const badPool = await call(
    srv,
    ca,
    'POST',
    '/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools',
    {
      token: admin,
      body: {
        apiVersion: 'metallb.io/v1beta1',
        kind: 'IPAddressPool',
        metadata: { name: 'p' },
        spec: { addresses: ['x'] },
      },
    },
  );
  t.match([badPool.status, badPool.json().details?.causes?.[0]?.field], [422, 'spec.addresses[0]']);
  const pool = await call(
    srv,
    ca,
    'POST',
    '/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools',
    {
      token: admin,
      body: {
        apiVersion: 'metallb.io/v1beta1',
        kind: 'IPAddressPool',
        metadata: { name: 'lan' },
        spec: { addresses: ['198.51.100.10-198.51.100.20'] },
      },
    },
  );
  t.equal(pool.status, 201, 'pools live under /apis/metallb.io/v1beta1');
  t.equal(
    (pool.json() as unknown as { metadata: { namespace: string } }).metadata.namespace,
    'metallb-system',
  );
  const mismatch = await call(srv, ca, 'POST', '/api/v1/namespaces/other/services', {
    token: admin,
    body: { ...svc('x'), metadata: { name: 'x', namespace: 'default' } },
  });
  t.equal(mismatch.status, 400, 'namespace in the body must match the path');
  t.equal(
    (await call(srv, ca, 'PATCH', '/api/v1/namespaces/default/services/web', { token: admin })).status,
    405,
  );
  t.equal((await call(srv, ca, 'GET', '/api/v1/widgets', { token: admin })).status, 404, 'unknown resource');
  t.equal((await call(srv, ca, 'GET', '/apis/metallb.io/v1beta1/services', { token: admin })).status, 404);
  t.equal(
    (await call(srv, ca, 'POST', '/api/v1/namespaces/default/services', { token: admin, body: '{' })).status,
    400,
  );

  // Nodes are cluster-scoped; their status goes through /status.
  const node = await call(srv, ca, 'POST', '/api/v1/nodes', {
    token: admin,
    body: { apiVersion: 'v1', kind: 'Node', metadata: { name: 'pi1' } },
  });
  t.equal(node.status, 201);
  const ns = await call(srv, ca, 'PUT', '/api/v1/nodes/pi1/status', {
    token: admin,
    body: { ...node.json(), status: { conditions: [{ type: 'Ready', status: 'True' }] } },
  });
  t.equal(ns.status, 200);
  const nodes = (await call(srv, ca, 'GET', '/api/v1/nodes', { token: admin })).json() as unknown as {
    kind: string;
    items: Array<{ status: { conditions: Array<{ status: string }> } }>;
  };
  t.equal(nodes.kind, 'NodeList');
  t.equal(nodes.items[0]?.status.conditions[0]?.status, 'True');

  // Events, across namespaces and in one.
  const ev = await call(srv, ca, 'POST', '/api/v1/namespaces/default/events', {
    token: admin,
    body: {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: 'web.1' },
      reason: 'IPAllocated',
      involvedObject: { kind: 'Service', name: 'web' },
    },
  });
  t.equal(ev.status, 201);
  const all = (await call(srv, ca, 'GET', '/api/v1/services', { token: admin })).json() as unknown as {
    kind: string;
    items: unknown[];
    metadata: { resourceVersion: string };
  };
  t.equal(all.kind, 'ServiceList');
  t.equal(all.items.length, 1);

  // Watch from the list's resourceVersion: JSON lines {type, object}.
  const lines: Array<{ type: string; object: Service }> = [];
  const watchReq = request(
    new URL(`/api/v1/services?watch=1&resourceVersion=${all.metadata.resourceVersion}`, srv.url),
    { ca, headers: { Authorization: `Bearer ${admin}` } },
  );
  const streaming = new Promise<void>((resolve) => {
    watchReq.on('response', (res) => {
      t.equal(res.statusCode, 200);
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        buf += d;
        let i = buf.indexOf('\n');
        while (i >= 0) {
          lines.push(JSON.parse(buf.slice(0, i)));
          buf = buf.slice(i + 1);
          i = buf.indexOf('\n');
        }
        if (lines.length >= 2) resolve();
      });
      // the headers arrived: the watch is registered, so make the changes now
      void (async () => {
        await call(srv, ca, 'POST', '/api/v1/namespaces/prod/services', { token: admin, body: svc('db') });
        await call(srv, ca, 'DELETE', '/api/v1/namespaces/prod/services/db', { token: admin });
      })();
    });
    watchReq.on('error', () => undefined);
  });
  watchReq.end();
  await streaming;
  watchReq.destroy();
  t.same(
    lines.map((l) => [l.type, l.object.metadata.namespace, l.object.metadata.name]),
    [
      ['ADDED', 'prod', 'db'],
      ['DELETED', 'prod', 'db'],
    ],
  );
  const del = await call(srv, ca, 'DELETE', '/api/v1/namespaces/default/services/web', {
    token: admin,
    body: { preconditions: { resourceVersion: '1' } },
  });
  t.equal(del.status, 409, 'DELETE honours preconditions.resourceVersion');
  t.equal(
    (await call(srv, ca, 'DELETE', '/api/v1/namespaces/default/services/web', { token: admin })).status,
    200,
  );
  t.equal(
    (await call(srv, ca, 'GET', '/api/v1/namespaces/default/services/web', { token: admin })).status,
    404,
  );
});

function capture(): CliContext & { out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d) => (out += d));
  stderr.on('data', (d) => (err += d));
  return { stdout, stderr, exitCode: 0, logger: silentLogger, out: () => out, err: () => err };
}

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const ctx = capture();
  const code = await run(argv, ctx);
  return { code, out: ctx.out(), err: ctx.err() };
}

t.test('CLI: apply, get, describe, delete against the API (CA pinned from the token)', async (t) => {
  const endpoint = await datastore(t, 'etcd');
  const { srv, store, c } = await api(t, endpoint);
  const dir = tmp('vipmesh-cp-cli-');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const conn = ['--server', srv.url, '--token', c.adminToken, '--admin-config', join(dir, 'none.yaml')];
  const file = join(dir, 'cluster.yaml');
  writeFileSync(
    file,
    `apiVersion: v1
kind: Namespace
metadata: {name: metallb-system, labels: {team: net}}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: metallb-system}
spec:
  addresses: [198.51.100.10-198.51.100.20]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: metallb-system}
spec: {ipAddressPools: [lan]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: LoadBalancer
  loadBalancerIP: 198.51.100.15
  selector: {app: web}
  ports: [{name: http, port: 80, protocol: TCP}]
`,
  );
  const first = await cli(['apply', '-f', file, ...conn]);
  t.equal(first.code, 0, first.err);
  t.equal(
    first.out,
    'namespace/metallb-system created\nipaddresspool.metallb.io/lan created\nl2advertisement.metallb.io/lan created\nservice/web created\n',
  );
  const again = await cli(['apply', '-f', file, ...conn]);
  t.match(again.out, /service\/web unchanged/, 'applying the same file again changes nothing');
  writeFileSync(file, (await import('node:fs')).readFileSync(file, 'utf8').replace('port: 80', 'port: 8080'));
  t.match((await cli(['apply', '-f', file, ...conn])).out, /service\/web configured/);

  // The controllers (second wave) fill status and node state; stand in for them through the store.
  const web = await store.get('services', 'web');
  await store.updateStatus('services', {
    ...web,
    status: { loadBalancer: { ingress: [{ ip: '198.51.100.15' }] } },
  });
  const n = await store.create('nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'pi1' } });
  await store.updateStatus('nodes', {
    ...n,
    status: {
      conditions: [{ type: 'Ready', status: 'True' }],
      addresses: [{ type: 'InternalIP', address: '198.51.100.2' }],
      vips: ['198.51.100.15'],
    },
  });
  await store.create('events', {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name: 'web.a', namespace: 'default' },
    involvedObject: { kind: 'Service', name: 'web', namespace: 'default' },
    reason: 'IPAllocated',
    message: 'Assigned IP ["198.51.100.15"]',
    type: 'Normal',
    lastTimestamp: new Date().toISOString(),
    source: { component: 'vipmesh-ipam' },
  });

  const table = await cli(['get', 'services', ...conn]);
  t.equal(table.code, 0, table.err);
  t.match(table.out, /^NAMESPACE\s+NAME\s+TYPE\s+CLUSTER-IP\s+EXTERNAL-IP\s+PORT\(S\)\s+AGE\n/);
  t.match(table.out, /default\s+web\s+LoadBalancer\s+<none>\s+198\.51\.100\.15\s+8080\/TCP\s+\d+s\n/);
  const wide = await cli(['get', 'svc', '-o', 'wide', ...conn]);
  t.match(wide.out, /SELECTOR\s+POOL\s+HOLDER/);
  t.match(wide.out, /app=web\s+<none>\s+pi1\n/, 'wide shows which node announces the VIP');
  const json = JSON.parse((await cli(['get', 'services', '-o', 'json', ...conn])).out);
  t.match(json, { kind: 'ServiceList', items: [{ metadata: { name: 'web' } }] });
  const nodes = JSON.parse((await cli(['get', 'nodes', '-o', 'json', ...conn])).out);
  t.equal(
    nodes.items[0].status.conditions.find((x: { type: string }) => x.type === 'Ready').status,
    'True',
    "a Node's readiness is status.conditions[type=Ready].status",
  );
  t.match((await cli(['get', 'nodes', ...conn])).out, /pi1\s+Ready\s+<none>\s+\d+s/);
  t.match(
    (await cli(['get', 'nodes', '-o', 'wide', ...conn])).out,
    /198\.51\.100\.2\s+<none>\s+198\.51\.100\.15/,
  );
  t.match(
    (await cli(['get', 'ipaddresspools', ...conn])).out,
    /lan\s+true\s+false\s+198\.51\.100\.10-198\.51\.100\.20/,
  );
  t.match((await cli(['get', 'l2advertisements', '-o', 'yaml', ...conn])).out, /kind: L2AdvertisementList/);
  t.equal((await cli(['get', 'service', 'web', '-o', 'name', ...conn])).out, 'service/web\n');

  const desc = await cli(['describe', 'service', 'web', ...conn]);
  t.equal(desc.code, 0, desc.err);
  t.match(desc.out, /Name:\s+web\n/);
  t.match(desc.out, /LoadBalancer Ingress:\s+198\.51\.100\.15/);
  t.match(desc.out, /Announced by:\s+pi1/);
  t.match(desc.out, /Normal\s+IPAllocated\s+\d+s\s+vipmesh-ipam\s+Assigned IP/);
  const dn = await cli(['describe', 'node', 'pi1', ...conn]);
  t.match(dn.out, /Status:\s+Ready\n/);
  t.match(dn.out, /InternalIP:\s+198\.51\.100\.2\n/);
  t.match(dn.out, /VIPs:\s+198\.51\.100\.15\n/);
  const dp = await cli(['describe', 'ipaddresspool', 'lan', '-n', 'metallb-system', ...conn]);
  t.match(dp.out, /kind: IPAddressPool\n[\s\S]*Events: <none>/, 'other kinds: YAML and events');

  // Errors: printed as `error: ... (CODE)`, exit 1.
  const bad = join(dir, 'bad.yaml');
  writeFileSync(
    bad,
    'apiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec: {type: LoadBalancer, loadBalancerIP: nope}\n',
  );
  const inv = await cli(['apply', '-f', bad, ...conn]);
  t.equal(inv.code, 1);
  t.match(inv.err, /spec\.loadBalancerIP.*\(VIPMESH_API_INVALID\)/);
  writeFileSync(bad, 'apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n');
  t.match((await cli(['apply', '-f', bad, ...conn])).err, /unknown kind "Pod".*VIPMESH_CLI_BAD_INPUT/);
  t.match((await cli(['get', 'widgets', ...conn])).err, /VIPMESH_CLI_BAD_INPUT/);
  t.match((await cli(['get', 'services', '-o', 'xml', ...conn])).err, /VIPMESH_CLI_BAD_INPUT/);
  t.match((await cli(['delete', 'service', 'nope', ...conn])).err, /VIPMESH_API_NOT_FOUND/);

  // Wrong CA hash in the token: refused before any request carries the token.
  const otherHash = c.adminToken.replace(/^K10([0-9a-f])/, (_m, d: string) => `K10${d === '0' ? '1' : '0'}`);
  const pinned = await cli([
    'get',
    'services',
    '--server',
    srv.url,
    '--token',
    otherHash,
    '--admin-config',
    join(dir, 'x'),
  ]);
  t.equal(pinned.code, 1);
  t.match(pinned.err, /VIPMESH_TUNNEL_CA_MISMATCH/);
  t.match(
    (await cli(['get', 'services', '--admin-config', join(dir, 'none.yaml')])).err,
    /VIPMESH_API_NO_SERVER/,
  );

  // VIPMESH_URL / VIPMESH_TOKEN, then the admin config file the server writes.
  process.env['VIPMESH_URL'] = srv.url;
  process.env['VIPMESH_TOKEN'] = c.adminToken;
  const viaEnv = await cli(['get', 'services', '-n', 'default', '--admin-config', join(dir, 'none.yaml')]);
  delete process.env['VIPMESH_URL'];
  delete process.env['VIPMESH_TOKEN'];
  t.match(viaEnv.out, /^NAME\s+TYPE/, 'env works; with -n there is no NAMESPACE column');
  const adminCfg = join(dir, 'vipmesh.yaml');
  writeAdminConfig(adminCfg, { server: srv.url, token: c.adminToken });
  t.equal((await import('node:fs')).statSync(adminCfg).mode & 0o777, 0o600, 'the admin config is private');
  const viaFile = await cli(['delete', 'svc', 'web', '--admin-config', adminCfg]);
  t.equal(viaFile.out, 'service "web" deleted\n');
  t.equal((await cli(['get', 'services', '--admin-config', adminCfg])).err, 'No resources found\n');

  // get -w: the (empty) list, then a row per change, until the server goes away.
  const watchCtx = capture();
  const watching = run(['get', 'services', '-w', '--admin-config', adminCfg], watchCtx);
  const until = async (ok: () => boolean) => {
    for (let i = 0; i < 500 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  };
  await until(() => watchCtx.err().includes('No resources found'));
  await store.create('services', svc('late'));
  await until(() => watchCtx.out().includes('late'));
  await srv.close();
  t.equal(await watching, 0, 'get -w ends when the stream does');
  t.match(watchCtx.out(), /^NAMESPACE\s+NAME\s+TYPE.*\ndefault\s+late\s+LoadBalancer\s+<none>\s+<pending>/);
});
