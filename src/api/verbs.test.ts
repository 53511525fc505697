/**
 * The Kubernetes request options and verbs kubectl relies on, over real HTTPS: PATCH in its three media
 * types, dryRun, fieldValidation, field and set-based label selectors, the Table form, watch bookmarks
 * and timeouts, and the Status wording of errors.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { silentLogger } from '../log.js';
import { ensureServerCredentials } from '../pki/index.js';
import { createApiServer } from '../testing/api-server.js';
import { until } from '../testing/until.js';
import { poolConflicts, validateObject } from '../vip-pool/index.js';
import { MemoryKv } from './memory-kv.js';
import { ResourceStore } from './store.js';
import type { Service } from './types.js';

const dir = mkdtempSync(join(tmpdir(), 'vipmesh-verbs-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const credsP = ensureServerCredentials(dir);

/** A parsed JSON answer, read field by field in the assertions. */
// biome-ignore lint/suspicious/noExplicitAny: the tests read arbitrary JSON answers field by field
type Loose = any;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Loose;
  text: string;
}

async function setup(t: { teardown(fn: () => unknown): void }) {
  const c = await credsP;
  const store = new ResourceStore({
    kv: new MemoryKv(),
    validate: validateObject,
    validateSet: poolConflicts,
  });
  const srv = await createApiServer({
    store,
    logger: silentLogger(),
    tls: c,
    adminToken: c.adminToken,
  });
  t.teardown(() => srv.close());
  const send = (
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
      const req = request(
        new URL(path, srv.url),
        {
          method,
          ca: c.caCertPem,
          headers: {
            authorization: `Bearer ${c.adminToken}`,
            ...(data === undefined ? {} : { 'content-type': 'application/json' }),
            ...headers,
          },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => {
            text += d;
          });
          res.on('end', () => {
            let parsed: unknown;
            try {
              parsed = JSON.parse(text);
            } catch {
              parsed = undefined;
            }
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed, text });
          });
        },
      );
      req.on('error', reject);
      req.end(data);
    });
  return { store, srv, send, c };
}

const SVC = '/api/v1/namespaces/default/services';
const POOLS = '/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools';

function svc(name: string, labels: Record<string, string> = {}): Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, labels },
    spec: { type: 'LoadBalancer', ports: [{ name: 'http', port: 80 }] },
  };
}

const JSON_PATCH = { 'content-type': 'application/json-patch+json' };
const MERGE = { 'content-type': 'application/merge-patch+json' };
const STRATEGIC = { 'content-type': 'application/strategic-merge-patch+json' };

t.test('PATCH: the three media types, validation of the result, conflicts, 415', async (t) => {
  const { send, store } = await setup(t);
  t.equal((await send('POST', SVC, svc('web', { app: 'web' }))).status, 201);
  let r = await send('PATCH', `${SVC}/web`, { spec: { ports: [{ port: 443, name: 'https' }] } }, STRATEGIC);
  t.equal(r.status, 200);
  t.same(
    r.body.spec.ports.map((p: { port: number }) => p.port),
    [80, 443],
    'strategic: spec.ports merge by port',
  );
  r = await send('PATCH', `${SVC}/web`, { spec: { ports: [{ port: 8080 }] } }, MERGE);
  t.same(r.body.spec.ports, [{ port: 8080 }], 'merge patch: a list is replaced');
  r = await send(
    'PATCH',
    `${SVC}/web`,
    [{ op: 'add', path: '/metadata/labels/env', value: 'prod' }],
    JSON_PATCH,
  );
  t.same(r.body.metadata.labels, { app: 'web', env: 'prod' }, 'json patch');
  t.same((await store.get('services', 'web')).metadata.labels, { app: 'web', env: 'prod' }, 'stored');

  r = await send(
    'PATCH',
    `${SVC}/web`,
    [{ op: 'replace', path: '/spec/ports/0/port', value: 70000 }],
    JSON_PATCH,
  );
  t.equal(r.status, 422, 'the result is validated as an update is');
  t.equal(r.body.reason, 'Invalid');
  t.match(r.body.details.causes, [{ field: 'spec.ports[0].port' }]);
  r = await send('PATCH', `${SVC}/web`, [{ op: 'test', path: '/spec/type', value: 'ClusterIP' }], JSON_PATCH);
  t.equal(r.status, 422, 'a failed json-patch test is refused');

  r = await send(
    'PATCH',
    `${SVC}/web`,
    { metadata: { resourceVersion: '1' }, spec: { type: 'NodePort' } },
    MERGE,
  );
  t.equal(r.status, 409, 'a stale resourceVersion in the patch is a conflict');
  t.equal(r.body.reason, 'Conflict');
  t.match(r.body.message, /Operation cannot be fulfilled on services "web": the object has been modified/);

  r = await send('PATCH', `${SVC}/web`, { spec: {} }, { 'content-type': 'application/json' });
  t.equal(r.status, 415, 'a PATCH needs a patch media type');
  r = await send('PATCH', `${SVC}/nope`, {}, MERGE);
  t.equal(r.status, 404);
  t.equal(r.body.message, 'services "nope" not found');

  const pool = {
    apiVersion: 'metallb.io/v1beta1',
    kind: 'IPAddressPool',
    metadata: { name: 'lan' },
    spec: { addresses: ['198.51.100.0/28'] },
  };
  t.equal((await send('POST', POOLS, pool)).status, 201);
  r = await send('PATCH', `${POOLS}/lan`, { spec: { autoAssign: false } }, STRATEGIC);
  t.equal(r.status, 415, 'no strategic merge patch on a metallb.io kind, as for any custom resource');
  t.match(r.body.message, /application\/merge-patch\+json/);
  r = await send('PATCH', `${POOLS}/lan`, { spec: { autoAssign: false } }, MERGE);
  t.equal(r.body.spec.autoAssign, false, 'a merge patch is taken');
  r = await send('PATCH', `${POOLS}/lan`, { spec: { addresses: ['not-an-ip'] } }, MERGE);
  t.equal(r.status, 422, 'pool validation runs on the patched pool');
  r = await send('GET', `${POOLS}/gone`);
  t.equal(r.body.message, 'ipaddresspools.metallb.io "gone" not found', 'the group names a metallb.io kind');
  t.same(r.body.details, { name: 'gone', kind: 'ipaddresspools', group: 'metallb.io' });
});

t.test('dryRun=All: every write answers as it would and stores nothing', async (t) => {
  const { send, store } = await setup(t);
  let r = await send('POST', `${SVC}?dryRun=All`, svc('web'));
  t.equal(r.status, 201);
  t.equal(r.body.metadata.name, 'web');
  t.equal((await store.list('services')).items.length, 0, 'create: nothing stored');
  await send('POST', SVC, svc('web'));
  r = await send('POST', `${SVC}?dryRun=All`, svc('web'));
  t.equal(r.status, 409, 'a dry-run create still sees what exists');
  const before = await store.get('services', 'web');
  r = await send('PATCH', `${SVC}/web?dryRun=All`, { metadata: { labels: { x: 'y' } } }, MERGE);
  t.same(r.body.metadata.labels, { x: 'y' }, 'patch: the answer shows the result');
  r = await send('PUT', `${SVC}/web?dryRun=All`, { ...before, spec: { type: 'NodePort' } });
  t.equal(r.body.spec.type, 'NodePort', 'update: the answer shows the result');
  r = await send('DELETE', `${SVC}/web?dryRun=All`);
  t.equal(r.status, 200);
  const after = await store.get('services', 'web');
  t.same(after, before, 'patch, update and delete stored nothing');
  r = await send('POST', `${SVC}?dryRun=Some`, svc('x'));
  t.equal(r.status, 400, 'only All is a dry run');
  r = await send('PATCH', `${SVC}/web?dryRun=All`, { spec: { ports: [{ port: 0 }] } }, MERGE);
  t.equal(r.status, 422, 'a dry run validates');
});

t.test(
  'fieldValidation: Strict refuses, Warn warns, Ignore drops unknown and duplicate fields',
  async (t) => {
    const { send, store } = await setup(t);
    const bogus = { ...svc('a'), spec: { ...svc('a').spec, bogus: 1 } };
    let r = await send('POST', `${SVC}?fieldValidation=Strict`, bogus);
    t.equal(r.status, 400);
    t.equal(
      r.body.message,
      'Service in version "v1" cannot be handled as a Service: strict decoding error: unknown field "spec.bogus"',
    );
    r = await send('POST', `${SVC}?fieldValidation=Warn`, bogus);
    t.equal(r.status, 201);
    t.same(
      r.headers['warning'],
      '299 - "unknown field \\"spec.bogus\\""',
      'the Warning header kubectl prints',
    );
    t.notOk('bogus' in (await store.get('services', 'a')).spec!, 'the unknown field is dropped');
    r = await send('POST', `${SVC}?fieldValidation=Ignore`, { ...bogus, metadata: { name: 'b' } });
    t.equal(r.status, 201);
    t.equal(r.headers['warning'], undefined, 'Ignore says nothing');
    r = await send('POST', SVC, { ...bogus, metadata: { name: 'c' } });
    t.equal(r.status, 422, 'without the parameter an unknown field is invalid, as before');
    const dup =
      '{"apiVersion":"v1","kind":"Service","metadata":{"name":"d","name":"e"},"spec":{"ports":[{"port":1}]}}';
    r = await send('POST', `${SVC}?fieldValidation=Strict`, dup);
    t.equal(r.status, 400);
    t.match(r.body.message, /duplicate field "metadata.name"/);
    r = await send('POST', `${SVC}?fieldValidation=Warn`, dup);
    t.equal(r.status, 201);
    t.equal(r.body.metadata.name, 'e', 'the last value wins');
    t.match(r.headers['warning'], /duplicate field \\"metadata.name\\"/);
    r = await send('POST', `${SVC}?fieldValidation=Loose`, svc('f'));
    t.equal(r.status, 400);
    r = await send('PATCH', `${SVC}/a?fieldValidation=Strict`, { spec: { other: 1 } }, MERGE);
    t.equal(r.status, 400, 'a patch result is checked too');
    t.match(r.body.message, /unknown field "spec.other"/);
  },
);

t.test('selectors: set-based labels and metadata fields on lists and watches', async (t) => {
  const { send } = await setup(t);
  await send('POST', SVC, svc('a', { env: 'prod' }));
  await send('POST', SVC, svc('b', { env: 'dev' }));
  await send('POST', SVC, svc('c'));
  const names = async (q: string) =>
    ((await send('GET', `${SVC}?${q}`)).body.items as Service[]).map((s) => s.metadata.name);
  t.same(await names('labelSelector=env%20in%20(prod,staging)'), ['a']);
  t.same(await names('labelSelector=env%20notin%20(prod)'), ['b', 'c']);
  t.same(await names('labelSelector=!env'), ['c']);
  t.same(await names('fieldSelector=metadata.name%3Db'), ['b']);
  t.same(await names('fieldSelector=metadata.name!%3Db,metadata.namespace%3Ddefault'), ['a', 'c']);
  const bad = await send('GET', `${SVC}?fieldSelector=spec.type%3DLoadBalancer`);
  t.equal(bad.status, 400);
  t.equal(bad.body.message, 'field label not supported: spec.type');
});

function watchLines(
  srv: { url: string },
  c: { caCertPem: string; adminToken: string },
  path: string,
  headers: Record<string, string> = {},
) {
  const lines: Loose[] = [];
  let ended = false;
  const req = request(new URL(path, srv.url), {
    ca: c.caCertPem,
    headers: { authorization: `Bearer ${c.adminToken}`, ...headers },
  });
  req.on('response', (res) => {
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
    });
    res.on('end', () => {
      ended = true;
    });
  });
  req.on('error', () => undefined);
  req.end();
  return { lines, ended: () => ended, close: () => req.destroy() };
}

t.test('watch: bookmarks when allowed, timeoutSeconds ends the stream, field selector', async (t) => {
  const c = await credsP;
  const store = new ResourceStore({ kv: new MemoryKv() });
  const srv = await createApiServer({
    store,
    logger: silentLogger(),
    tls: c,
    adminToken: c.adminToken,
    bookmarkIntervalMs: 20,
  });
  t.teardown(() => srv.close());
  const url = srv.url;
  const a = await store.create('services', svc('a'));
  const w = watchLines(
    { url },
    c,
    `${SVC}?watch=1&allowWatchBookmarks=true&resourceVersion=${a.metadata.resourceVersion}`,
  );
  t.teardown(w.close);
  const mark = await until('a bookmark', () => w.lines.find((l) => l.type === 'BOOKMARK'));
  t.same(mark.object, {
    kind: 'Service',
    apiVersion: 'v1',
    metadata: { resourceVersion: a.metadata.resourceVersion },
  });
  const b = await store.create('services', svc('b'));
  await until('a bookmark at b', () =>
    w.lines.find(
      (l) => l.type === 'BOOKMARK' && l.object.metadata.resourceVersion === b.metadata.resourceVersion,
    ),
  );
  t.ok(w.lines.some((l) => l.type === 'ADDED' && l.object.metadata.name === 'b'));
  const plain = watchLines({ url }, c, `${SVC}?watch=1&fieldSelector=metadata.name%3Db`);
  t.teardown(plain.close);
  await until('the initial state', () => plain.lines.length >= 1);
  await store.update('services', {
    ...(await store.get('services', 'a')),
    metadata: { name: 'a', labels: { x: 'y' } },
  });
  await store.update('services', {
    ...(await store.get('services', 'b')),
    metadata: { name: 'b', labels: { x: 'y' } },
  });
  await until('b modified', () => plain.lines.find((l) => l.type === 'MODIFIED'));
  t.same(
    plain.lines.map((l) => `${l.type} ${l.object.metadata.name}`),
    ['ADDED b', 'MODIFIED b'],
    'the field selector filters the watch; no bookmarks unless asked',
  );
  const timed = watchLines({ url }, c, `${SVC}?watch=1&timeoutSeconds=1`);
  await until('the server to end the watch after timeoutSeconds', () => timed.ended());
});

t.test('Table: columns for kubectl get, wide columns at priority 1, includeObject, watch rows', async (t) => {
  const { send, srv, c, store } = await setup(t);
  await send('POST', SVC, svc('web', { app: 'web' }));
  await store.updateStatus('services', {
    ...(await store.get('services', 'web')),
    status: { loadBalancer: { ingress: [{ ip: '198.51.100.7' }] } },
  });
  await store.create('nodes', {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: 'pi1', labels: { 'node-role.kubernetes.io/control-plane': 'true' } },
    status: {
      vips: ['198.51.100.7'],
      nodeInfo: { version: 'v0.1.0' },
      conditions: [{ type: 'Ready', status: 'True' }],
    },
  });
  const TABLE = { accept: 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json' };
  let r = await send('GET', SVC, undefined, TABLE);
  t.equal(r.body.kind, 'Table');
  t.equal(r.body.apiVersion, 'meta.k8s.io/v1');
  t.same(
    r.body.columnDefinitions.map((d: { name: string; priority: number }) => `${d.name}:${d.priority}`),
    [
      'Name:0',
      'Type:0',
      'Cluster-IP:0',
      'External-IP:0',
      'Port(s):0',
      'Age:0',
      'Selector:1',
      'Pool:1',
      'Holder:1',
    ],
  );
  t.match(r.body.rows[0].cells, [
    'web',
    'LoadBalancer',
    '<none>',
    '198.51.100.7',
    '80/TCP',
    /^\d+s$/,
    '<none>',
    '<none>',
    'pi1',
  ]);
  t.same(r.body.rows[0].object.kind, 'PartialObjectMetadata', 'rows carry the metadata by default');
  t.same(r.body.rows[0].object.metadata.labels, { app: 'web' });
  t.ok(r.body.metadata.resourceVersion, 'the list resourceVersion, for the watch that follows');
  r = await send('GET', `${SVC}/web?includeObject=Object`, undefined, {
    accept: 'application/json;as=Table;v=v1beta1;g=meta.k8s.io',
  });
  t.equal(r.body.apiVersion, 'meta.k8s.io/v1beta1', 'the v1beta1 fallback');
  t.equal(r.body.rows[0].object.kind, 'Service', 'includeObject=Object');
  r = await send('GET', `${SVC}?includeObject=Everything`, undefined, TABLE);
  t.equal(r.status, 400, 'includeObject is None, Metadata or Object');
  r = await send('GET', `${SVC}?includeObject=None`, undefined, TABLE);
  t.notOk('object' in r.body.rows[0]);
  r = await send('GET', '/api/v1/nodes', undefined, TABLE);
  t.match(r.body.rows[0].cells, ['pi1', 'Ready', 'control-plane', /s$/, 'v0.1.0']);
  r = await send('GET', SVC, undefined, { accept: 'application/json' });
  t.equal(r.body.kind, 'ServiceList', 'plain JSON otherwise');
  const w = watchLines(srv, c, `${SVC}?watch=1`, TABLE);
  t.teardown(w.close);
  await until('the initial row', () => w.lines.length >= 1);
  t.equal(w.lines[0].type, 'ADDED');
  t.equal(w.lines[0].object.kind, 'Table', 'watch events carry one-row Tables');
  t.equal(w.lines[0].object.rows[0].cells[0], 'web');
});
