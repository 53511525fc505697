import t from 'tap';
import { createRegistry } from '../metrics.js';
import { FakeClock } from '../testing/fake-clock.js';
import { until } from '../testing/until.js';
import { MemoryKv } from './memory-kv.js';
import type { FieldProblem } from './status.js';
import { ResourceStore } from './store.js';
import type { KubeObject, Service, WatchEvent } from './types.js';

function svc(name: string, extra: Partial<Service> = {}): Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name },
    spec: { type: 'LoadBalancer', ports: [{ port: 80, protocol: 'TCP' }] },
    ...extra,
  };
}

function setup(validate?: (o: unknown) => FieldProblem[]) {
  const kv = new MemoryKv();
  const registry = createRegistry();
  const store = new ResourceStore({
    kv,
    clock: new FakeClock(Date.UTC(2026, 0, 1)),
    registry,
    ...(validate ? { validate } : {}),
  });
  return { kv, store, registry };
}

t.test('create, get, list: resourceVersion is the datastore revision', async (t) => {
  const { store, kv, registry } = setup();
  const a = await store.create('services', svc('a'));
  t.equal(a.metadata.namespace, 'default', 'namespaced objects default to "default"');
  t.equal(a.metadata.creationTimestamp, '2026-01-01T00:00:00Z', 'creationTimestamp from the injected clock');
  t.equal(a.metadata.resourceVersion, String(await kv.revision()));
  t.ok(a.metadata.uid);
  const b = await store.create('services', svc('b', { metadata: { name: 'b', namespace: 'prod' } }));
  t.same(await store.get('services', 'a'), a, 'get returns what create returned');
  const all = await store.list('services');
  t.equal(all.kind, 'ServiceList');
  t.same(
    all.items.map((s) => s.metadata.name),
    ['a', 'b'],
  );
  t.equal(all.metadata.resourceVersion, b.metadata.resourceVersion, 'list resourceVersion = store revision');
  t.same(
    (await store.list('services', { namespace: 'prod' })).items.map((s) => s.metadata.name),
    ['b'],
  );
  const node = await store.create('nodes', {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: 'pi1', namespace: 'ignored' },
  });
  t.equal(node.metadata.namespace, undefined, 'cluster-scoped objects have no namespace');
  t.equal((await kv.get('/registry/nodes/pi1'))?.modRevision, Number(node.metadata.resourceVersion));
  t.ok(await kv.get('/registry/services/prod/b'), 'keys are /registry/<resource>/<ns>/<name>');
  await t.rejects(store.create('services', svc('a')), { code: 'VIPMESH_API_ALREADY_EXISTS' });
  await t.rejects(store.get('services', 'zzz'), { code: 'VIPMESH_API_NOT_FOUND' });
  t.match(
    await registry.metrics(),
    /vipmesh_controlplane_store_ops_total\{op="create",result="VIPMESH_API_ALREADY_EXISTS"\} 1/,
  );
});

t.test('update: optimistic concurrency, status kept, no-op writes nothing', async (t) => {
  const { store } = setup();
  const a = await store.create('services', svc('a'));
  const withStatus = await store.updateStatus('services', {
    ...a,
    status: { loadBalancer: { ingress: [{ ip: '198.51.100.10' }] } },
  });
  t.not(withStatus.metadata.resourceVersion, a.metadata.resourceVersion);
  await t.rejects(
    store.update('services', { ...a, spec: { type: 'ClusterIP' } }),
    { code: 'VIPMESH_API_CONFLICT' },
    'stale resourceVersion is 409',
  );
  const u = await store.update('services', {
    ...withStatus,
    spec: { type: 'LoadBalancer', ports: [{ port: 81 }] },
    status: {},
  });
  t.same(u.status, withStatus.status, 'a spec update keeps the stored status');
  t.equal(u.metadata.generation, 2, 'generation bumps on a spec change');
  t.equal(u.metadata.uid, a.metadata.uid);
  const same = await store.update('services', {
    ...u,
    metadata: { ...u.metadata, resourceVersion: undefined } as never,
  });
  t.equal(same.metadata.resourceVersion, u.metadata.resourceVersion, 'an unchanged update writes nothing');
  const unconditional = await store.update(
    'services',
    svc('a', { spec: { type: 'LoadBalancer', loadBalancerIP: '198.51.100.20' } }),
  );
  t.equal(unconditional.spec?.loadBalancerIP, '198.51.100.20', 'no resourceVersion: unconditional');
  const st = await store.updateStatus('services', {
    ...unconditional,
    spec: { type: 'ClusterIP' },
    status: undefined,
  });
  t.equal(st.spec?.type, 'LoadBalancer', 'updateStatus never changes the spec');
  t.equal(st.status, undefined, 'and can clear the status');
  await t.rejects(store.update('services', svc('nope')), { code: 'VIPMESH_API_NOT_FOUND' });
  const ev = await store.create('events', {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name: 'e1' },
    reason: 'A',
  } as KubeObject);
  const ev2 = await store.update('events', { ...ev, reason: 'B' });
  const g1 = await store.create('events', {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name: '', generateName: 'web.' },
  });
  const g2 = await store.create('events', {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { generateName: 'web.' },
  } as never);
  t.match(g1.metadata.name, /^web\.[a-z0-9]{5}$/, 'generateName names the object');
  t.not(g1.metadata.name, g2.metadata.name);
  t.equal(
    (ev2 as { reason?: string }).reason,
    'B',
    'resources without status subresource replace everything',
  );
});

t.test('delete: returns the object, resourceVersion precondition', async (t) => {
  const { store } = setup();
  const a = await store.create('services', svc('a'));
  await store.update('services', svc('a', { spec: { type: 'ClusterIP' } }));
  await t.rejects(
    store.delete('services', 'a', 'default', { resourceVersion: a.metadata.resourceVersion! }),
    {
      code: 'VIPMESH_API_CONFLICT',
    },
  );
  const gone = await store.delete('services', 'a');
  t.equal(gone.spec?.type, 'ClusterIP');
  await t.rejects(store.delete('services', 'a'), { code: 'VIPMESH_API_NOT_FOUND' });
});

t.test('validation: 422 names the field; kind mismatch is 400', async (t) => {
  const seen: unknown[] = [];
  const { store } = setup((o) => {
    seen.push(o);
    const s = o as Service;
    return s.spec?.loadBalancerIP === 'bogus'
      ? [{ path: 'spec.loadBalancerIP', code: 'VIPMESH_POOL_BAD_IP', message: 'not an IP address' }]
      : [];
  });
  await t.rejects(store.create('services', svc('Bad_Name')), {
    code: 'VIPMESH_API_INVALID',
    details: { causes: [{ field: 'metadata.name' }] },
  });
  await t.rejects(store.create('services', svc('x', { metadata: {} as never })), {
    code: 'VIPMESH_API_INVALID',
    details: { causes: [{ field: 'metadata.name', reason: 'Required' }] },
  });
  await t.rejects(store.create('services', svc('x', { metadata: { name: 'x', namespace: 'Not OK' } })), {
    code: 'VIPMESH_API_INVALID',
    details: { causes: [{ field: 'metadata.namespace' }] },
  });
  await t.rejects(store.create('services', svc('x', { spec: { loadBalancerIP: 'bogus' } })), {
    code: 'VIPMESH_API_INVALID',
    details: { causes: [{ field: 'spec.loadBalancerIP', reason: 'VIPMESH_POOL_BAD_IP' }] },
  });
  await t.rejects(store.create('services', { ...svc('x'), kind: 'Node' }), {
    code: 'VIPMESH_API_BAD_REQUEST',
  });
  await t.rejects(store.create('services', 'nope' as never), { code: 'VIPMESH_API_BAD_REQUEST' });
  await store.create('nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' } });
  t.equal(seen.length, 1, 'the validator is asked about Services (and pools), not Nodes');
});

t.test('watch: from a resourceVersion, initial state, labels, compaction', async (t) => {
  const { store, kv } = setup();
  const a = await store.create('services', svc('a', { metadata: { name: 'a', labels: { app: 'web' } } }));
  const got: WatchEvent<Service>[] = [];
  const w = await store.watch('services', { resourceVersion: a.metadata.resourceVersion! });
  w.on('event', (e) => got.push(e));
  const fresh: WatchEvent<Service>[] = [];
  const w2 = await store.watch('services', { labelSelector: 'app=web' });
  w2.on('event', (e) => fresh.push(e));
  const b = await store.create('services', svc('b'));
  const a2 = await store.update(
    'services',
    svc('a', { metadata: { name: 'a', labels: { app: 'web' } }, spec: { type: 'ClusterIP' } }),
  );
  await store.delete('services', 'b');
  await new Promise((r) => setImmediate(r));
  t.same(
    got.map((e) => [e.type, e.object.metadata.name]),
    [
      ['ADDED', 'b'],
      ['MODIFIED', 'a'],
      ['DELETED', 'b'],
    ],
  );
  t.equal(got[0]!.object.metadata.resourceVersion, b.metadata.resourceVersion);
  t.equal(got[1]!.object.metadata.resourceVersion, a2.metadata.resourceVersion);
  t.same(
    fresh.map((e) => [e.type, e.object.metadata.name]),
    [
      ['ADDED', 'a'],
      ['MODIFIED', 'a'],
    ],
    'no resourceVersion: current state first, then changes; label selector applies',
  );
  await w.close();
  await w2.close();
  await store.create('services', svc('c'));
  await new Promise((r) => setImmediate(r));
  t.equal(got.length, 3, 'nothing after close');
  kv.compact(await kv.revision());
  await t.rejects(store.watch('services', { resourceVersion: '1' }), { code: 'VIPMESH_API_GONE' });
  await t.rejects(store.watch('services', { resourceVersion: 'x' }), { code: 'VIPMESH_API_BAD_REQUEST' });
  await t.rejects(store.list('services', { labelSelector: 'a in (b c)' }), {
    code: 'VIPMESH_API_BAD_REQUEST',
  });
  await t.rejects(store.list('services', { fieldSelector: 'spec.type=x' }), {
    code: 'VIPMESH_API_BAD_REQUEST',
  });
  await store.close();
});

t.test('watch with a selector: leaving the selection is DELETED, entering it ADDED', async (t) => {
  const { store } = setup();
  const labelled = (name: string, labels: Record<string, string>) =>
    svc(name, { metadata: { name, labels } });
  await store.create('services', labelled('a', { env: 'prod' }));
  const b = await store.create('services', labelled('b', { env: 'dev' }));
  const fromList: string[] = [];
  const w1 = await store.watch('services', { labelSelector: 'env in (prod)' });
  w1.on('event', (e) => fromList.push(`${e.type} ${e.object.metadata.name}`));
  const fromRv: string[] = [];
  const w2 = await store.watch('services', {
    labelSelector: 'env=prod',
    resourceVersion: b.metadata.resourceVersion!,
  });
  w2.on('event', (e) => fromRv.push(`${e.type} ${e.object.metadata.name}`));
  const byName: string[] = [];
  const w3 = await store.watch('services', { fieldSelector: 'metadata.name=b' });
  w3.on('event', (e) => byName.push(`${e.type} ${e.object.metadata.name}`));
  await store.update('services', labelled('a', { env: 'dev' }));
  await store.update('services', labelled('b', { env: 'prod' }));
  await store.update('services', labelled('b', { env: 'prod', x: 'y' }));
  await store.delete('services', 'b');
  await store.delete('services', 'a');
  await store.create('services', labelled('z', { env: 'prod' }));
  const want = ['DELETED a', 'ADDED b', 'MODIFIED b', 'DELETED b', 'ADDED z'];
  await until('the events up to z', () => fromList.includes('ADDED z') && fromRv.includes('ADDED z'));
  t.same(fromList, ['ADDED a', ...want], 'from the current state; deleting a when it was out sends nothing');
  t.same(fromRv, want, 'from a resourceVersion: the selection at that revision is known');
  t.same(byName, ['ADDED b', 'MODIFIED b', 'MODIFIED b', 'DELETED b'], 'a field selector');
  await w1.close();
  await w2.close();
  await w3.close();
});

t.test(
  'set-checked writes are serialised by a guard key: racing creates and updates cannot both pass',
  async (t) => {
    type P = { metadata: { name: string }; spec: { addresses: string[] } };
    const validateSet = (obj: unknown, existing: readonly unknown[]): FieldProblem[] => {
      const mine = (obj as P).spec.addresses[0];
      const other = (existing as P[]).find((e) => e.spec.addresses[0] === mine);
      return other === undefined
        ? []
        : [
            {
              path: 'spec.addresses[0]',
              code: 'VIPMESH_POOL_OVERLAP',
              message: `overlaps pool ${other.metadata.name}`,
            },
          ];
    };
    const kv = new MemoryKv();
    // Two stores on one datastore: two API servers.
    const [a, b] = [new ResourceStore({ kv, validateSet }), new ResourceStore({ kv, validateSet })];
    const pool = (name: string, address: string) => ({
      apiVersion: 'metallb.io/v1beta1',
      kind: 'IPAddressPool',
      metadata: { name, namespace: 'metallb-system' },
      spec: { addresses: [address] },
    });
    const created = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) =>
        (i % 2 ? a : b).create('ipaddresspools', pool(`p${i}`, `198.51.100.${i}/32`)),
      ),
    );
    t.ok(
      created.every((r) => r.status === 'fulfilled'),
      'pools that do not overlap are all created',
    );
    const updates = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) =>
        (i % 2 ? a : b).update('ipaddresspools', pool(`p${i}`, '198.51.100.200/32')),
      ),
    );
    const ok = updates.filter((r) => r.status === 'fulfilled');
    t.equal(ok.length, 1, 'ten updates onto one address: one succeeds');
    t.ok(
      updates.every(
        (r) => r.status === 'fulfilled' || /overlaps pool p\d/.test(String((r.reason as Error).message)),
      ),
      'the others are refused naming the pool that got it',
    );
    const holders = (await a.list('ipaddresspools')).items.filter(
      (p) => p.spec?.addresses?.[0] === '198.51.100.200/32',
    );
    t.equal(holders.length, 1);
    t.ok((await kv.get('/vipmesh/guards/address-pools')) !== undefined, 'the guard key is in the datastore');
  },
);
