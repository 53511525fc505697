/**
 * The control plane on loopback with real TLS: the resource store on a REAL etcd (the Debian binary) and on
 * the embedded datastore (src/kine), and the HTTPS API in front of it. (The CLI: controlplane-cli.test.ts.)
 */

import { request } from 'node:https';
import { Etcd3 } from 'etcd3';
import t from 'tap';
import { createResourceStore, type Service, type Status, type WatchEvent } from '../src/api/index.js';
import type { ApiServer } from '../src/testing/api-server.js';
import { api, datastore, svc } from '../src/testing/controlplane.js';
import { until } from '../src/testing/until.js';

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

    await until('four watch events', () => events.length >= 4, { timeoutMs: 5000 });
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
    (await call(srv, ca, 'PATCH', '/api/v1/namespaces/default/services', { token: admin })).status,
    405,
    'no PATCH on a collection',
  );
  t.equal(
    (await call(srv, ca, 'PATCH', '/api/v1/namespaces/default/services/web', { token: admin, body: {} }))
      .status,
    415,
    'a PATCH of an object needs a patch media type',
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
