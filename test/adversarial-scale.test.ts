/**
 * Scale on loopback: more objects than one datastore message holds. The datastore client's largest answer
 * and its list page size are lowered here so a few hundred objects play the part of the thousands that
 * used to exceed gRPC's 4 MiB: every list still succeeds (paged), `limit`/`continue` page through the API
 * and the CLI at one revision, one failed call does not fail the next, and a server restarts on that data.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ApiClient, type KubeObject, type Service } from '../src/api/index.js';
import { run } from '../src/cli/program.js';
import { VipmeshError } from '../src/errors.js';
import { startDatastore } from '../src/kine/index.js';
import { silentLogger } from '../src/log.js';
import { startServer } from '../src/server/index.js';
import { captureCli } from '../src/testing/cli.js';
import { creds, svc } from '../src/testing/controlplane.js';
import { startTestApi } from '../src/testing/datastores.js';
import { until } from '../src/testing/until.js';

/** Small enough that the 120 Services below (about 1.3 KiB each) need several messages. */
const TUNING = { pageSize: 50, maxReceiveBytes: 32 << 10 };
const COUNT = 120;

/** A Service with a 1 KiB annotation, so a few dozen of them fill one datastore message. */
function bigSvc(i: number): Service {
  const s = svc(`svc-${String(i).padStart(3, '0')}`);
  s.metadata.annotations = { 'example.com/padding': 'x'.repeat(1024) };
  return s;
}

async function rejection(p: Promise<unknown>): Promise<VipmeshError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof VipmeshError) return err;
    throw err;
  }
  throw new Error('expected a rejection');
}

t.test('lists larger than one datastore message, paged with limit and continue', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-scale-'));
  const ds = await startDatastore({ dataDir: dir, listenAddress: '127.0.0.1:0', logger: silentLogger() });
  t.teardown(async () => {
    await ds.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const c = await creds();
  const a = await startTestApi(ds.url, c, TUNING);
  t.teardown(() => a.close());
  const api = new ApiClient(a.srv.url, c.adminToken, c.caCertPem);
  t.teardown(() => api.close());
  for (let i = 0; i < COUNT; i++) await api.create('services', bigSvc(i));

  // The whole list is about 160 KiB, five times the client's largest answer: it is read in pages.
  const all = await api.list('services');
  t.equal(all.items.length, COUNT, 'a list without limit returns every object');
  t.notOk(all.metadata.continue, 'and no continue token');

  const first = await api.list('services', undefined, { limit: 50 });
  t.equal(first.items.length, 50, 'limit 50: 50 items');
  t.type(first.metadata.continue, 'string', 'and a continue token');
  // Changes after the first page do not show in the next ones: they are read at the first page's revision.
  await api.delete('services', 'svc-119');
  await api.create('services', bigSvc(200));
  const names = first.items.map((s) => s.metadata.name);
  let cont = first.metadata.continue;
  let pages = 1;
  while (cont !== undefined) {
    const page = await api.list('services', undefined, { limit: 50, continue: cont });
    t.equal(page.metadata.resourceVersion, first.metadata.resourceVersion, 'same revision on every page');
    names.push(...page.items.map((s) => s.metadata.name));
    cont = page.metadata.continue;
    pages++;
  }
  t.equal(pages, 3, '120 objects in pages of 50: three pages');
  t.same(
    names,
    Array.from({ length: COUNT }, (_, i) => `svc-${String(i).padStart(3, '0')}`),
    'every object once, in order, as of the first page',
  );

  // A label selector fills the page from as many datastore pages as it takes.
  const one = await api.request<{ items: KubeObject[]; metadata: { continue?: string } }>(
    'GET',
    '/api/v1/services?limit=1&labelSelector=app%3Dsvc-100',
  );
  t.same(
    one.items.map((s) => s.metadata.name),
    ['svc-100'],
    'a selector matching one object late in the list',
  );

  // The CLI pages through too.
  const cli = captureCli(silentLogger);
  const code = await run(
    ['get', 'services', '--server', a.srv.url, '--token', c.adminToken, '--chunk-size', '7', '-o', 'name'],
    cli,
  );
  t.equal(code, 0, cli.err());
  t.equal(cli.out().trim().split('\n').length, COUNT, 'vipmesh get services lists all of them');

  // Tokens are checked; an expired revision is 410 Expired.
  const bad = await rejection(api.list('services', undefined, { limit: 5, continue: 'not-a-token' }));
  t.equal(bad.code, 'VIPMESH_API_BAD_REQUEST', 'a malformed continue token is a bad request');
  const badLimit = await rejection(api.request('GET', '/api/v1/services?limit=-1'));
  t.equal(badLimit.code, 'VIPMESH_API_BAD_REQUEST', 'a negative limit is a bad request');
  const old = await api.list('services', undefined, { limit: 10 });
  await api.create('services', bigSvc(201));
  await ds.backend.compact(ds.backend.revision, true);
  const gone = await rejection(
    api.list('services', undefined, { limit: 10, continue: old.metadata.continue! }),
  );
  t.equal(gone.code, 'VIPMESH_API_GONE', 'a continue token of a compacted revision is 410');
  t.match(gone.message, /start a new list/);
});

t.test('one failed datastore call does not fail the next one', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-scale-'));
  const ds = await startDatastore({ dataDir: dir, listenAddress: '127.0.0.1:0', logger: silentLogger() });
  t.teardown(async () => {
    await ds.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const c = await creds();
  const a = await startTestApi(ds.url, c, TUNING);
  t.teardown(() => a.close());
  const api = new ApiClient(a.srv.url, c.adminToken, c.caCertPem);
  t.teardown(() => api.close());
  await api.create('services', svc('web'));
  // One object larger than the client's largest answer: reading it must fail, alone.
  await api.create('configmaps', {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'huge', namespace: 'default' },
    data: { blob: 'x'.repeat(64 << 10) },
  } as KubeObject);
  for (let i = 0; i < 3; i++) {
    const err = await rejection(api.get('configmaps', 'huge'));
    t.equal(err.code, 'VIPMESH_STORE_UNAVAILABLE', `read ${i + 1} of the oversized object fails`);
    t.match(err.message, /RESOURCE_EXHAUSTED|larger than max/i, 'naming the message limit');
  }
  const listErr = await rejection(api.list('configmaps'));
  t.equal(listErr.code, 'VIPMESH_STORE_UNAVAILABLE', 'a list holding it fails too, even one key per page');
  t.equal((await api.get('services', 'web')).metadata.name, 'web', 'the next unrelated call succeeds');
  t.equal((await api.list('services')).items.length, 1, 'and the next list');
});

t.test('a server restarts on more objects than one message holds', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-scale-srv-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const start = () =>
    startServer({
      dataDir: dir,
      nodeName: 'srv',
      httpsListenPort: 0,
      bindAddress: '127.0.0.1',
      clusterCidr: ['198.18.0.0/16'],
      heartbeatMs: 50,
      nodeLostAfter: 3,
      electionTtlSeconds: 2,
      datastoreClient: TUNING,
      logger: silentLogger(),
    });
  let srv = await start();
  let closed = false;
  t.teardown(() => (closed ? undefined : srv.close()));
  await srv.store.create('ipaddresspools', {
    apiVersion: 'metallb.io/v1beta1',
    kind: 'IPAddressPool',
    metadata: { name: 'lan', namespace: 'default' },
    spec: { addresses: ['198.51.100.0/24'] },
  } as KubeObject);
  for (let i = 0; i < COUNT; i++) await srv.store.create('services', bigSvc(i));
  const allocated = async () => {
    const ctl = srv.controllers();
    if (ctl === undefined) return false;
    await ctl.idle();
    const list = await srv.store.list('services');
    return (
      list.items.length === COUNT &&
      list.items.every((s) => (s.status?.loadBalancer?.ingress?.length ?? 0) > 0) &&
      list
    );
  };
  const before = await until('every Service allocated', allocated, { timeoutMs: 60_000 });
  const ips = (l: typeof before) =>
    Object.fromEntries(l.items.map((s) => [s.metadata.name, s.status?.loadBalancer?.ingress?.[0]?.ip]));
  await srv.close();
  closed = true;
  srv = await start();
  closed = false;
  t.equal(srv.informers.services.items.size, COUNT, 'the informers loaded every Service');
  const after = await until('the master idle after the restart', allocated, { timeoutMs: 60_000 });
  t.same(ips(after), ips(before), 'every Service keeps its address across the restart');
  const api = new ApiClient(srv.url, srv.credentials.adminToken, srv.credentials.caCertPem);
  t.teardown(() => api.close());
  t.equal((await api.listAll('services', undefined, 25)).items.length, COUNT, 'the API lists them all');
});
