import fc from 'fast-check';
import t from 'tap';
import { stringify } from 'yaml';
import { VipmeshError } from '../errors.js';
import { parseObjects } from './apply.js';
import { pathFor } from './client.js';
import { prefixEnd } from './etcd-kv.js';
import { parsePath } from './handler.js';
import { matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector } from './selector.js';
import { errorFromStatus, statusFor } from './status.js';
import { canonicalJson } from './store.js';
import { RESOURCES, type ResourceName, resourceFor } from './types.js';

const dnsLabel = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?$/);
const dnsName = fc.array(dnsLabel, { minLength: 1, maxLength: 3 }).map((xs) => xs.join('.'));
const labelKey = fc
  .tuple(
    fc.option(dnsName, { nil: undefined }),
    fc.stringMatching(/^[A-Za-z0-9]([-A-Za-z0-9_.]{0,10}[A-Za-z0-9])?$/),
  )
  .map(([p, n]) => (p === undefined ? n : `${p}/${n}`));
const labelValue = fc.stringMatching(/^([A-Za-z0-9]([-A-Za-z0-9_.]{0,10}[A-Za-z0-9])?)?$/);
const resourceName = fc.constantFrom(...(Object.keys(RESOURCES) as ResourceName[]));

t.test('label selectors: what is printed parses back to the same requirements', async (t) => {
  const req = fc.oneof(
    fc.record({ key: labelKey, op: fc.constantFrom('=' as const, '!=' as const), value: labelValue }),
    fc.record({ key: labelKey, op: fc.constantFrom('exists' as const, '!exists' as const) }),
  );
  fc.assert(
    fc.property(fc.array(req, { minLength: 1, maxLength: 5 }), (reqs) => {
      const text = reqs
        .map((r) =>
          r.op === 'exists'
            ? r.key
            : r.op === '!exists'
              ? `!${r.key}`
              : `${r.key}${r.op}${(r as { value: string }).value}`,
        )
        .join(',');
      t.same(parseLabelSelector(text), reqs);
    }),
    { numRuns: 300 },
  );
  t.same(parseLabelSelector('a==b'), [{ key: 'a', op: '=', value: 'b' }], '== is =');
  t.same(parseLabelSelector('  '), []);
  t.same(parseLabelSelector('env in (a, b),tier notin (db),x'), [
    { key: 'env', op: 'in', values: ['a', 'b'] },
    { key: 'tier', op: 'notin', values: ['db'] },
    { key: 'x', op: 'exists' },
  ]);
  t.throws(() => parseLabelSelector('env in (a,b c)'), { code: 'VIPMESH_API_BAD_REQUEST' });
  t.throws(() => parseLabelSelector('a=b c'), { code: 'VIPMESH_API_BAD_REQUEST' });
});

t.test('label selectors never throw anything but a VipmeshError, and match consistently', async (t) => {
  fc.assert(
    fc.property(fc.string(), fc.dictionary(labelKey, labelValue), (text, labels) => {
      let reqs: ReturnType<typeof parseLabelSelector>;
      try {
        reqs = parseLabelSelector(text);
      } catch (err) {
        return err instanceof VipmeshError && err.code === 'VIPMESH_API_BAD_REQUEST';
      }
      // Each requirement alone decides the same way as within the whole selector.
      const all = matchesLabels(reqs, labels);
      return all === reqs.every((r) => matchesLabels([r], labels));
    }),
    { numRuns: 500 },
  );
  t.ok(matchesLabels(parseLabelSelector('app=web,!legacy,tier!=db'), { app: 'web', tier: 'fe' }));
  t.notOk(matchesLabels(parseLabelSelector('app=web'), undefined));
  t.ok(matchesLabels(parseLabelSelector('tier!=db'), undefined), '!= matches an absent label');
  const sel = parseLabelSelector('env in (prod,staging),tier notin (db)');
  t.ok(matchesLabels(sel, { env: 'prod' }), 'in matches a listed value; notin matches an absent label');
  t.ok(matchesLabels(sel, { env: 'staging', tier: 'web' }));
  t.notOk(matchesLabels(sel, { env: 'dev' }), 'in refuses an unlisted value');
  t.notOk(matchesLabels(sel, { tier: 'web' }), 'in refuses an absent label');
  t.notOk(matchesLabels(sel, { env: 'prod', tier: 'db' }), 'notin refuses a listed value');
});

t.test('field selectors: metadata fields for all, involvedObject for events, others refused', async (t) => {
  const web = { metadata: { name: 'web', namespace: 'prod' } };
  t.ok(matchesFields(parseFieldSelector('metadata.name=web'), web));
  t.ok(matchesFields(parseFieldSelector('metadata.name==web,metadata.namespace!=dev'), web));
  t.notOk(matchesFields(parseFieldSelector('metadata.namespace=default'), web));
  t.throws(() => parseFieldSelector('spec.type=LoadBalancer'), {
    code: 'VIPMESH_API_BAD_REQUEST',
    message: 'field label not supported: spec.type',
  });
  t.throws(() => parseFieldSelector('metadata.name'), { code: 'VIPMESH_API_BAD_REQUEST' });
  const ev = { metadata: { name: 'e1' }, involvedObject: { kind: 'Service', name: 'web' } };
  t.ok(matchesFields(parseFieldSelector('involvedObject.kind=Service,involvedObject.name=web', 'Event'), ev));
  t.notOk(matchesFields(parseFieldSelector('involvedObject.uid=abc', 'Event'), ev), 'absent is ""');
  t.throws(() => parseFieldSelector('involvedObject.name=web', 'Service'), {
    code: 'VIPMESH_API_BAD_REQUEST',
  });
});

t.test('API paths: pathFor and parsePath agree for every resource', async (t) => {
  fc.assert(
    fc.property(
      resourceName,
      dnsLabel,
      fc.option(dnsName, { nil: undefined }),
      fc.boolean(),
      (res, ns, name, status) => {
        const r = RESOURCES[res];
        const sub = status && name !== undefined && r.hasStatus ? ('status' as const) : undefined;
        const route = parsePath(pathFor(r, r.namespaced ? ns : undefined, name, sub));
        t.equal(route.r, r);
        t.equal(route.namespace, r.namespaced ? ns : undefined);
        t.equal(route.name, name);
        t.equal(route.status, sub === 'status');
      },
    ),
    { numRuns: 200 },
  );
  t.equal(
    pathFor(RESOURCES.ipaddresspools, 'lb', 'p'),
    '/apis/metallb.io/v1beta1/namespaces/lb/ipaddresspools/p',
  );
  t.equal(pathFor(RESOURCES.nodes, 'ignored', 'n'), '/api/v1/nodes/n');
  for (const bad of [
    '/',
    '/api/v2/nodes',
    '/api/v1/namespaces/default/nodes',
    '/api/v1/services/web',
    '/api/v1/events/x/status',
    '/apis/metallb.io/v1beta1/nodes',
    '/api/v1/namespaces/default/services/web/status/extra',
  ]) {
    t.throws(() => parsePath(bad), { code: 'VIPMESH_API_NOT_FOUND' }, bad);
  }
  fc.assert(
    fc.property(fc.string(), (p) => {
      try {
        parsePath(`/${p}`);
      } catch (err) {
        if (!(err instanceof VipmeshError)) throw err;
      }
    }),
  );
});

t.test('apply input: YAML documents of every kind parse back to the objects', async (t) => {
  const obj = fc.record({
    res: resourceName,
    name: dnsName,
    ns: fc.option(dnsLabel, { nil: undefined }),
    labels: fc.dictionary(labelKey, labelValue, { maxKeys: 3 }),
    spec: fc.dictionary(fc.stringMatching(/^[a-z]{1,8}$/), fc.jsonValue(), { maxKeys: 3 }),
  });
  fc.assert(
    fc.property(fc.array(obj, { minLength: 1, maxLength: 4 }), fc.boolean(), (objs, asList) => {
      const docs = objs.map((o) => {
        const r = RESOURCES[o.res];
        return {
          apiVersion: r.group === '' ? 'v1' : `${r.group}/${r.version}`,
          kind: r.kind,
          metadata: { name: o.name, labels: o.labels, ...(o.ns === undefined ? {} : { namespace: o.ns }) },
          spec: o.spec,
        };
      });
      const text = asList
        ? stringify({ apiVersion: 'v1', kind: 'List', items: docs })
        : docs.map((d) => stringify(d)).join('---\n');
      const parsed = parseObjects(text, 'f.yaml', 'dflt');
      t.equal(parsed.length, docs.length);
      parsed.forEach((p, i) => {
        const o = objs[i]!;
        t.equal(p.r.resource, o.res);
        t.equal(p.obj.metadata.name, o.name);
        t.equal(p.obj.metadata.namespace, p.r.namespaced ? (o.ns ?? 'dflt') : o.ns);
        t.same(JSON.parse(JSON.stringify(p.obj['spec'])), JSON.parse(JSON.stringify(o.spec)));
      });
    }),
    { numRuns: 100 },
  );
  t.throws(() => parseObjects('a: [', 'f.yaml'), { code: 'VIPMESH_CLI_BAD_INPUT' });
  t.throws(() => parseObjects('- 1\n', 'f.yaml'), { code: 'VIPMESH_CLI_BAD_INPUT' });
  t.throws(() => parseObjects('apiVersion: v2\nkind: Service\n', 'f.yaml'), {
    code: 'VIPMESH_CLI_BAD_INPUT',
  });
  t.same(parseObjects('---\n---\n', 'f.yaml'), [], 'empty documents are skipped');
  fc.assert(
    fc.property(fc.string(), (text) => {
      try {
        parseObjects(text, 'fuzz.yaml');
      } catch (err) {
        if (!(err instanceof VipmeshError) || err.code !== 'VIPMESH_CLI_BAD_INPUT') throw err;
      }
    }),
    { numRuns: 300 },
  );
});

t.test('canonicalJson ignores key order and nothing else', async (t) => {
  fc.assert(
    fc.property(fc.jsonValue(), (v) => {
      const shuffled = JSON.parse(JSON.stringify(v), (_k, x: unknown) =>
        typeof x === 'object' && x !== null && !Array.isArray(x)
          ? Object.fromEntries(Object.entries(x).reverse())
          : x,
      );
      t.equal(canonicalJson(shuffled), canonicalJson(v));
      t.same(JSON.parse(canonicalJson(v)), JSON.parse(JSON.stringify(v)));
    }),
    { numRuns: 200 },
  );
  t.not(canonicalJson({ a: [1, 2] }), canonicalJson({ a: [2, 1] }), 'array order matters');
});

t.test('Status codes round-trip from the server to the client', async (t) => {
  const codes = [
    'VIPMESH_API_BAD_REQUEST',
    'VIPMESH_API_UNAUTHORIZED',
    'VIPMESH_API_FORBIDDEN',
    'VIPMESH_API_NOT_FOUND',
    'VIPMESH_API_METHOD_NOT_ALLOWED',
    'VIPMESH_API_ALREADY_EXISTS',
    'VIPMESH_API_CONFLICT',
    'VIPMESH_API_GONE',
    'VIPMESH_API_TOO_LARGE',
    'VIPMESH_API_INVALID',
    'VIPMESH_STORE_UNAVAILABLE',
  ];
  for (const code of codes) {
    const s = statusFor(new VipmeshError(code, 'm', { details: { name: 'x', kind: 'Service' } }));
    t.equal(s.kind, 'Status');
    t.equal(errorFromStatus(s, s.code).code, code, code);
  }
  const internal = statusFor(new Error('boom'));
  t.match(internal, { code: 500, reason: 'InternalError' });
  t.equal(errorFromStatus(internal, 500).code, 'VIPMESH_API_ERROR');
  t.equal(errorFromStatus({}, 502).code, 'VIPMESH_API_ERROR', 'a non-Status error body');
});

t.test('kinds, aliases and the etcd prefix range', async (t) => {
  t.equal(resourceFor('svc')?.resource, 'services');
  t.equal(resourceFor('IPAddressPool')?.resource, 'ipaddresspools');
  t.equal(resourceFor('L2Advertisements')?.resource, 'l2advertisements');
  t.equal(resourceFor('pods'), undefined);
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 8 }), fc.uint8Array({ maxLength: 4 }), (p, tail) => {
      const prefix = Buffer.from(p).toString('latin1');
      const end = prefixEnd(prefix);
      const key = Buffer.concat([Buffer.from(prefix), Buffer.from(tail)]);
      // every key with the prefix sorts before the range end
      return Buffer.compare(key, end) < 0 || end.equals(Buffer.from([0]));
    }),
  );
  t.same(prefixEnd('/registry/services/'), Buffer.from('/registry/services0'));
});

t.test('parseObjects: nesting deeper than the API takes is refused naming file and line', async (t) => {
  let v: unknown = 'leaf';
  for (let i = 0; i < 98; i++) v = { n: v };
  const node = (name: string, status: unknown) => ({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name },
    status,
  });
  t.equal(parseObjects(stringify(node('ok', v)), 'ok.yaml').length, 1, '100 levels are read');
  t.equal(
    parseObjects(stringify({ apiVersion: 'v1', kind: 'List', items: [node('ok', v)] }), 'list.yaml').length,
    1,
    'in a List too (as `get -o yaml` prints them)',
  );
  t.throws(() => parseObjects(`# one\n# two\n${stringify(node('deep', { n: { n: v } }))}`, 'deep.yaml'), {
    code: 'VIPMESH_CLI_BAD_INPUT',
    message: "deep.yaml:3: nests maps and lists deeper than 100 levels (the API's limit); refused",
  });
  t.throws(() => parseObjects(`x: ${'{a: '.repeat(50_000)}1${'}'.repeat(50_000)}\n`, 'huge.json'), {
    code: 'VIPMESH_CLI_BAD_INPUT',
    message: /^huge\.json:1: nests maps and lists deeper than 100 levels/,
  });
});
