import t from 'tap';
import { applyJsonPatch, applyMergePatch, applyStrategicMergePatch, mergeKeysOf } from './patch.js';

t.test('JSON patch (RFC 6902): every op, pointers, errors name the path', async (t) => {
  const doc = { a: { b: 1 }, l: [1, 2, 3], 'x/y': { '~z': 0 } };
  t.same(applyJsonPatch(doc, [{ op: 'add', path: '/a/c', value: 2 }]), { ...doc, a: { b: 1, c: 2 } });
  t.same(
    (applyJsonPatch(doc, [{ op: 'add', path: '/l/1', value: 9 }]) as typeof doc).l,
    [1, 9, 2, 3],
    'add inserts',
  );
  t.same((applyJsonPatch(doc, [{ op: 'add', path: '/l/-', value: 4 }]) as typeof doc).l, [1, 2, 3, 4]);
  t.same((applyJsonPatch(doc, [{ op: 'remove', path: '/l/0' }]) as typeof doc).l, [2, 3]);
  t.same((applyJsonPatch(doc, [{ op: 'replace', path: '/a/b', value: 5 }]) as typeof doc).a, { b: 5 });
  t.same(applyJsonPatch(doc, [{ op: 'move', from: '/a/b', path: '/m' }]), { ...doc, a: {}, m: 1 });
  t.same((applyJsonPatch(doc, [{ op: 'copy', from: '/l', path: '/k' }]) as { k: number[] }).k, [1, 2, 3]);
  t.same(
    applyJsonPatch(doc, [{ op: 'replace', path: '/x~1y/~0z', value: 1 }]),
    { ...doc, 'x/y': { '~z': 1 } },
    '~1 is / and ~0 is ~',
  );
  t.same(applyJsonPatch(doc, [{ op: 'test', path: '/a', value: { b: 1 } }]), doc, 'test passes on equal');
  t.same(doc.l, [1, 2, 3], 'the input is not touched');
  const bad: Array<[unknown, RegExp]> = [
    [[{ op: 'test', path: '/a/b', value: 2 }], /test \/a\/b: the value differs/],
    [[{ op: 'remove', path: '/nope' }], /\/nope does not exist/],
    [[{ op: 'replace', path: '/nope', value: 1 }], /\/nope does not exist/],
    [[{ op: 'add', path: '/l/9', value: 1 }], /index 9 is out of range/],
    [[{ op: 'add', path: '/q/r', value: 1 }], /q does not exist/],
    [[{ op: 'add', path: 'a', value: 1 }], /not a JSON pointer/],
    [[{ op: 'add', path: '/a' }], /no value/],
    [[{ op: 'frob', path: '/a' }], /unknown op "frob"/],
    [[{ op: 'move', from: '/a', path: '/a/b' }], /cannot move into itself/],
    [{ op: 'add' }, /must be a list/],
  ];
  for (const [p, msg] of bad)
    t.throws(() => applyJsonPatch(doc, p), { code: 'VIPMESH_API_INVALID', message: msg });
  t.same(
    applyJsonPatch(doc, [
      { op: 'add', path: '/a/c', value: 1 },
      { op: 'test', path: '/a/c', value: 1 },
    ]),
    { ...doc, a: { b: 1, c: 1 } },
    'operations see the ones before them',
  );
});

t.test('merge patch (RFC 7386): maps merge, null deletes, lists replace', async (t) => {
  // The examples of RFC 7386 appendix A, a few of them.
  t.same(applyMergePatch({ a: 'b' }, { a: 'c' }), { a: 'c' });
  t.same(applyMergePatch({ a: 'b' }, { b: 'c' }), { a: 'b', b: 'c' });
  t.same(applyMergePatch({ a: 'b', b: 'c' }, { a: null }), { b: 'c' });
  t.same(applyMergePatch({ a: [{ b: 'c' }] }, { a: [1] }), { a: [1] });
  t.same(applyMergePatch({ a: { b: 'c' } }, { a: { b: 'd', c: null } }), { a: { b: 'd' } });
  t.same(applyMergePatch(['a', 'b'], ['c', 'd']), ['c', 'd']);
  t.same(applyMergePatch({ e: null }, { a: 1 }), { e: null, a: 1 });
  t.same(applyMergePatch({}, { a: { bb: { ccc: null } } }), { a: { bb: {} } });
});

const svc = () => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'web', labels: { app: 'web', tier: 'fe' }, finalizers: ['a'] },
  spec: {
    type: 'LoadBalancer',
    ports: [
      { name: 'http', port: 80, targetPort: 8080 },
      { name: 'https', port: 443 },
    ],
    selector: { app: 'web' },
  },
});

t.test('strategic merge patch: Service ports merge by port, labels merge, directives', async (t) => {
  const keys = mergeKeysOf('Service');
  const smp = (p: unknown) => applyStrategicMergePatch(svc(), p, keys) as ReturnType<typeof svc>;
  t.same(
    smp({ spec: { ports: [{ port: 80, targetPort: 9090 }] } }).spec.ports,
    [
      { name: 'http', port: 80, targetPort: 9090 },
      { name: 'https', port: 443 },
    ],
    'a port merges into the one with its port number; the others stay',
  );
  t.same(smp({ spec: { ports: [{ port: 8443 }] } }).spec.ports.length, 3, 'a new port is added');
  t.same(
    smp({ spec: { ports: [{ port: 443, $patch: 'delete' }] } }).spec.ports,
    [{ name: 'http', port: 80, targetPort: 8080 }],
    '$patch: delete removes the element',
  );
  t.same(
    smp({ spec: { ports: [{ $patch: 'replace' }, { port: 53, protocol: 'UDP' }] } }).spec.ports,
    [{ port: 53, protocol: 'UDP' }],
    '$patch: replace in a list replaces it',
  );
  t.same(
    smp({
      spec: { '$setElementOrder/ports': [{ port: 443 }, { port: 80 }] },
    }).spec.ports.map((p) => p.port),
    [443, 80],
    '$setElementOrder orders the list',
  );
  t.same(
    smp({ metadata: { labels: { tier: null, env: 'prod' } } }).metadata.labels,
    { app: 'web', env: 'prod' },
    'labels merge; null deletes one',
  );
  t.same(
    smp({ spec: { selector: { $patch: 'replace', run: 'x' } } }).spec.selector,
    { run: 'x' },
    'map replace',
  );
  t.notOk('selector' in smp({ spec: { selector: { $patch: 'delete' } } }).spec, 'map delete');
  t.same(
    smp({ spec: { $retainKeys: ['type', 'ports'], type: 'ClusterIP' } }).spec,
    { type: 'ClusterIP', ports: svc().spec.ports },
    '$retainKeys clears the keys it does not list',
  );
  t.same(
    smp({ metadata: { finalizers: ['b', 'a'] } }).metadata.finalizers,
    ['a', 'b'],
    'primitive sets merge',
  );
  t.same(
    smp({ metadata: { '$deleteFromPrimitiveList/finalizers': ['a'] } }).metadata.finalizers,
    [],
    '$deleteFromPrimitiveList',
  );
  t.throws(() => smp({ spec: { ports: [{ name: 'x' }] } }), { message: /merge key "port"/ });
  t.throws(() => smp({ spec: { $patch: 'frob' } }), { message: /unknown \$patch "frob"/ });
  t.same(
    applyStrategicMergePatch({ spec: { addresses: ['a', 'b'] } }, { spec: { addresses: ['c'] } }, keys),
    { spec: { addresses: ['c'] } },
    'a list without a merge key is replaced',
  );
});
