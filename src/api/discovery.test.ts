import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { silentLogger } from '../log.js';
import { ensureServerCredentials } from '../pki/index.js';
import { createApiServer } from '../testing/api-server.js';
import { MemoryKv } from './memory-kv.js';
import { ResourceStore } from './store.js';

const dir = mkdtempSync(join(tmpdir(), 'vipmesh-discovery-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const AGG = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList';

interface Reply {
  code: number;
  type: string;
  body: Record<string, unknown>;
}

t.test('discovery and /version: what kubectl reads to find the resources', async (t) => {
  const c = await ensureServerCredentials(dir);
  const store = new ResourceStore({ kv: new MemoryKv() });
  const srv = await createApiServer({
    store,
    logger: silentLogger(),
    tls: c,
    adminToken: c.adminToken,
    joinToken: c.joinToken,
  });
  t.teardown(() => srv.close());
  const get = (path: string, token = c.adminToken, accept?: string) =>
    new Promise<Reply>((resolve, reject) => {
      const headers: Record<string, string> = {};
      if (token !== '') headers['authorization'] = `Bearer ${token}`;
      if (accept !== undefined) headers['accept'] = accept;
      request(new URL(path, srv.url), { ca: c.caCertPem, headers }, (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () =>
          resolve({
            code: res.statusCode ?? 0,
            type: String(res.headers['content-type']),
            body: JSON.parse(text) as Record<string, unknown>,
          }),
        );
      })
        .on('error', reject)
        .end();
    });

  const version = await get('/version');
  t.equal(version.code, 200);
  t.match(version.body, { major: '1', minor: '32', gitVersion: 'v1.32.0+vipmesh-0.0.0', compiler: 'node' });

  t.same((await get('/api')).body, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] });
  const apis = await get('/apis/');
  t.match(apis.body, {
    kind: 'APIGroupList',
    groups: [{ name: 'metallb.io', preferredVersion: { groupVersion: 'metallb.io/v1beta1' } }],
  });
  t.match((await get('/apis/metallb.io')).body, { kind: 'APIGroup', name: 'metallb.io' });

  const core = (await get('/api/v1')).body as {
    groupVersion: string;
    resources: Array<Record<string, unknown>>;
  };
  t.equal(core.groupVersion, 'v1');
  const byName = new Map(core.resources.map((r) => [r['name'], r]));
  t.match(byName.get('services'), {
    singularName: 'service',
    namespaced: true,
    kind: 'Service',
    shortNames: ['svc'],
    categories: ['all'],
    verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
  });
  t.match(byName.get('services/status'), { kind: 'Service', verbs: ['patch', 'update'] });
  t.match(byName.get('nodes'), { namespaced: false, shortNames: ['no'] });
  t.match(byName.get('namespaces'), { namespaced: false, shortNames: ['ns'] });
  t.match(byName.get('configmaps'), { shortNames: ['cm'] });
  t.match(byName.get('events'), { shortNames: ['ev'] });
  t.notOk(byName.has('configmaps/status'), 'no status subresource where the handler serves none');
  t.notOk(byName.has('ipaddresspools'), 'metallb kinds are in their own group');

  const metallb = (await get('/apis/metallb.io/v1beta1')).body as { resources: Array<{ name: string }> };
  t.same(
    metallb.resources.map((r) => r.name),
    ['ipaddresspools', 'ipaddresspools/status', 'l2advertisements', 'l2advertisements/status'],
  );
  t.match(metallb.resources[0], { kind: 'IPAddressPool', shortNames: ['pool'], namespaced: true });

  // The aggregated form kubectl asks for first; anything else in the Accept header gets the plain form.
  const agg = await get('/apis', c.adminToken, `${AGG},application/json`);
  t.equal(agg.type, AGG);
  t.match(agg.body, {
    kind: 'APIGroupDiscoveryList',
    apiVersion: 'apidiscovery.k8s.io/v2',
    items: [
      {
        metadata: { name: 'metallb.io' },
        versions: [
          {
            version: 'v1beta1',
            resources: [
              {
                resource: 'ipaddresspools',
                scope: 'Namespaced',
                responseKind: { group: 'metallb.io', version: 'v1beta1', kind: 'IPAddressPool' },
                subresources: [{ subresource: 'status', verbs: ['patch', 'update'] }],
              },
              { resource: 'l2advertisements' },
            ],
          },
        ],
      },
    ],
  });
  const aggCore = (await get('/api', c.adminToken, AGG)).body as {
    items: Array<{ metadata: object; versions: Array<{ resources: Array<Record<string, unknown>> }> }>;
  };
  t.same(aggCore.items[0]!.metadata, {}, 'the core group has no name');
  t.match(
    aggCore.items[0]!.versions[0]!.resources.find((r) => r['resource'] === 'nodes'),
    { scope: 'Cluster', singularResource: 'node', shortNames: ['no'] },
  );
  t.equal(
    (await get('/api', c.adminToken, 'application/json;g=apidiscovery.k8s.io;v=v2beta1')).body['kind'],
    'APIVersions',
  );

  // Authentication as for everything else: none is 401; the join token may discover but not read objects.
  t.equal((await get('/api/v1', '')).code, 401);
  t.equal((await get('/version', 'K10nope::admin:nope')).code, 401);
  t.equal((await get('/apis', c.joinToken)).code, 200);
  t.equal((await get('/api/v1/nodes', c.joinToken)).code, 403);
  t.equal((await get('/apis/example.com/v1')).code, 404);
  t.equal((await get('/apis/metallb.io/v1')).code, 404);
});
