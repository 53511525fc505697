/**
 * Hostile and careless input to the HTTPS API, on loopback with real TLS and the production store on the
 * embedded datastore: every bad body is refused with the status and reason kube-apiserver gives, the field
 * is named, and nothing is stored.
 */
import { request } from 'node:https';
import t from 'tap';
import { stringify } from 'yaml';
import { parseObjects } from '../src/api/apply.js';
import type { Status } from '../src/api/index.js';
import { run } from '../src/cli/program.js';
import { captureCli } from '../src/testing/cli.js';
import { api, datastore, svc } from '../src/testing/controlplane.js';

interface Reply {
  status: number;
  body: string;
}

const endpoint = await datastore(t, 'kine');
const { srv, c, store } = await api(t, endpoint);

function send(
  method: string,
  path: string,
  body: string,
  contentType: string | undefined = 'application/json',
  url: string = srv.url,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const payload = Buffer.from(body);
    const headers: Record<string, string> = {
      Authorization: `Bearer ${c.adminToken}`,
      'Content-Length': String(payload.length),
    };
    if (contentType !== undefined) headers['Content-Type'] = contentType;
    const req = request(new URL(path, url), { method, headers, ca: c.caCertPem }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

const SERVICES = '/api/v1/namespaces/default/services';
const POOLS = '/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools';
const NODES = '/api/v1/nodes';

async function stored(resource: 'services' | 'nodes' | 'ipaddresspools', name: string, ns?: string) {
  return store.get(resource, name, ns).then(
    () => true,
    () => false,
  );
}

function nested(depth: number): unknown {
  let v: unknown = 'leaf';
  for (let i = 0; i < depth; i++) v = { n: v };
  return v;
}

t.test(
  'a body nested 3,000 (or 101) deep is a 400 naming the limit, not a 500; nothing stored',
  async (t) => {
    for (const depth of [3000, 2000, 100]) {
      const node = {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: `deep${depth}` },
        status: nested(depth),
      };
      const r = await send('POST', NODES, JSON.stringify(node));
      const s = JSON.parse(r.body) as Status;
      t.equal(r.status, 400, `${depth} deep: 400`);
      t.equal(s.reason, 'BadRequest');
      t.match(s.message, /nests deeper than 100 levels \(at \.status\.n\.n/);
      t.notOk(await stored('nodes', `deep${depth}`), `${depth} deep: nothing stored`);
    }
    // The deepest accepted body is stored and prints as YAML.
    const ok = { apiVersion: 'v1', kind: 'Node', metadata: { name: 'deep99' }, status: nested(99) };
    const r = await send('POST', NODES, JSON.stringify(ok));
    t.equal(r.status, 201, 'a body exactly 100 levels deep is accepted');
    const yaml = stringify(await store.get('nodes', 'deep99'));
    t.match(yaml, /leaf/, 'and `get -o yaml` prints it');
    // The real command, one object and the list; what it prints is read back by `apply -f`.
    for (const args of [['nodes', 'deep99'], ['nodes']]) {
      const ctx = captureCli();
      const conn = ['--server', srv.url, '--token', c.adminToken];
      t.equal(await run(['get', ...args, '-o', 'yaml', ...conn], ctx), 0, `get ${args.join(' ')} -o yaml`);
      const back = parseObjects(ctx.out(), 'out.yaml');
      t.same(
        back.find((o) => o.obj.metadata.name === 'deep99')?.obj['status'],
        nested(99),
        `get ${args.join(' ')} -o yaml printed it whole and apply -f reads it back`,
      );
    }
  },
);

t.test('unknown and misspelt fields: 422 Invalid naming the field; nothing stored', async (t) => {
  const cases: Array<[string, Record<string, unknown>, string, RegExp]> = [
    [
      'misspelt loadBalancerIp',
      { spec: { type: 'LoadBalancer', loadBalancerIp: '198.51.100.7', ports: [{ port: 80 }] } },
      'spec.loadBalancerIp',
      /did you mean loadBalancerIP/,
    ],
    [
      'loadBalancerIP indented under ports[0]',
      { spec: { type: 'LoadBalancer', ports: [{ port: 80, loadBalancerIP: '198.51.100.7' }] } },
      'spec.ports[0].loadBalancerIP',
      /unknown field/,
    ],
    ['a top-level typo', { sepc: {} }, 'sepc', /unknown field/],
  ];
  for (const [what, extra, field, message] of cases) {
    const body = { ...svc('typo'), ...extra };
    const r = await send('POST', SERVICES, JSON.stringify(body));
    const s = JSON.parse(r.body) as Status;
    t.equal(r.status, 422, `${what}: 422`);
    t.equal(s.reason, 'Invalid');
    t.same(
      s.details?.causes?.map((x) => x.field),
      [field],
      `${what}: the field is named`,
    );
    t.equal(s.details?.causes?.[0]?.reason, 'VIPMESH_FIELD_UNKNOWN');
    t.match(s.details?.causes?.[0]?.message, message);
    t.notOk(await stored('services', 'typo'), `${what}: nothing stored`);
  }
  // What kubectl sends in metadata is fine.
  const kubectl = svc('fine');
  kubectl.metadata.annotations = { 'kubectl.kubernetes.io/last-applied-configuration': '{"a":1}' };
  kubectl.metadata['managedFields'] = [
    { manager: 'kubectl', operation: 'Apply', fieldsV1: { 'f:spec': {} } },
  ];
  kubectl.metadata['finalizers'] = ['service.kubernetes.io/load-balancer-cleanup'];
  const ok = await send('POST', SERVICES, JSON.stringify(kubectl));
  t.equal(ok.status, 201, 'a Service with kubectl metadata is stored');
});

t.test('names Kubernetes refuses are refused', async (t) => {
  const bad: Array<[string, string, RegExp]> = [
    [SERVICES, '1web', /DNS-1035 label/],
    [SERVICES, 'web.example', /DNS-1035 label/],
    [SERVICES, `a${'b'.repeat(63)}`, /no more than 63 characters/],
    [NODES, 'Node_1', /DNS-1123 subdomain/],
  ];
  for (const [path, name, message] of bad) {
    const body =
      path === NODES
        ? { apiVersion: 'v1', kind: 'Node', metadata: { name } }
        : { ...svc('x'), metadata: { name } };
    const r = await send('POST', path, JSON.stringify(body));
    const s = JSON.parse(r.body) as Status;
    t.equal(r.status, 422, `${name}: 422`);
    t.equal(s.details?.causes?.[0]?.field, 'metadata.name');
    t.match(s.details?.causes?.[0]?.message, message);
  }
  t.notOk(await stored('services', '1web'));
  t.notOk(await stored('nodes', 'Node_1'));
});

t.test('Content-Type text/plain is 415; duplicate JSON keys are 400 naming the key', async (t) => {
  const plain = await send('POST', SERVICES, JSON.stringify(svc('plain')), 'text/plain');
  t.equal(plain.status, 415);
  t.equal((JSON.parse(plain.body) as Status).reason, 'UnsupportedMediaType');
  t.notOk(await stored('services', 'plain'));

  const dup =
    '{"apiVersion":"v1","kind":"Service","metadata":{"name":"dup","labels":{"a":"1","a":"2"}},' +
    '"spec":{"type":"LoadBalancer","ports":[{"port":80}]}}';
  const r = await send('POST', SERVICES, dup);
  const s = JSON.parse(r.body) as Status;
  t.equal(r.status, 400);
  t.equal(s.reason, 'BadRequest');
  t.equal(s.message, 'strict decoding error: duplicate field "metadata.labels.a"');
  t.notOk(await stored('services', 'dup'));
  // The same key in two different maps is not a duplicate.
  const twoMaps =
    '{"apiVersion":"v1","kind":"Service","metadata":{"name":"dup","labels":{"name":"x"}},' +
    '"spec":{"type":"LoadBalancer","ports":[{"name":"a","port":80},{"name":"b","port":81}]}}';
  t.equal((await send('POST', SERVICES, twoMaps, 'application/json; charset=utf-8')).status, 201);
});

t.test('a pool overlapping a stored pool is refused, naming both', async (t) => {
  const pool = (name: string, addresses: string[]) => ({
    apiVersion: 'metallb.io/v1beta1',
    kind: 'IPAddressPool',
    metadata: { name, namespace: 'metallb-system' },
    spec: { addresses },
  });
  t.equal((await send('POST', POOLS, JSON.stringify(pool('office', ['198.51.100.0/29'])))).status, 201);
  const r = await send('POST', POOLS, JSON.stringify(pool('lab', ['198.51.100.64/26', '198.51.100.4/30'])));
  const s = JSON.parse(r.body) as Status;
  t.equal(r.status, 422);
  t.equal(s.reason, 'Invalid');
  t.equal(s.details?.causes?.[0]?.field, 'spec.addresses[1]');
  t.equal(s.details?.causes?.[0]?.reason, 'VIPMESH_POOL_OVERLAP');
  t.match(
    s.message,
    /IPAddressPool "lab" is invalid: .*198\.51\.100\.4\/30 overlaps pool office \(198\.51\.100\.0\/29\)/,
  );
  t.notOk(await stored('ipaddresspools', 'lab', 'metallb-system'));
  // A second pool named like the first is refused too; the first may still be updated.
  const same = await send(
    'POST',
    '/apis/metallb.io/v1beta1/namespaces/default/ipaddresspools',
    JSON.stringify({ ...pool('office', ['198.51.100.128/29']), metadata: { name: 'office' } }),
  );
  t.equal(same.status, 422);
  t.equal((JSON.parse(same.body) as Status).details?.causes?.[0]?.reason, 'VIPMESH_POOL_DUPLICATE');
  const upd = await send('PUT', `${POOLS}/office`, JSON.stringify(pool('office', ['198.51.100.0/28'])));
  t.equal(upd.status, 200, 'updating a pool does not overlap with its own stored version');
});

t.test(
  'overlapping pools created at the same moment through two servers: exactly one is stored',
  async (t) => {
    // A second API server on the same datastore, as two servers on one etcd.
    const other = await api(t, endpoint);
    const pool = (name: string, addresses: string[]) =>
      JSON.stringify({
        apiVersion: 'metallb.io/v1beta1',
        kind: 'IPAddressPool',
        metadata: { name, namespace: 'metallb-system' },
        spec: { addresses },
      });
    for (let round = 0; round < 3; round++) {
      const names = Array.from({ length: 24 }, (_, i) => `race${round}-${i}`);
      // Each overlaps every other in 198.51.100.(200 + 8 round)/29, and has an address of its own besides.
      const shared = `198.51.100.${200 + round * 8}/29`;
      const replies = await Promise.all(
        names.map((name, i) =>
          send(
            'POST',
            POOLS,
            pool(name, [shared, `2001:db8::${round}:${i}/128`]),
            'application/json',
            [srv.url, other.srv.url][i % 2],
          ),
        ),
      );
      const created = names.filter((_, i) => replies[i]!.status === 201);
      t.equal(created.length, 1, `round ${round}: exactly one of 24 is created (${created.join(', ')})`);
      const winner = created[0] ?? '';
      const refused = replies.filter((r) => r.status !== 201);
      t.ok(
        refused.every((r) => r.status === 422 && new RegExp(`overlaps pool ${winner} `).test(r.body)),
        `round ${round}: the other 23 are 422 naming ${winner}: ${refused.find((r) => r.status !== 422 || !r.body.includes(winner))?.body ?? 'yes'}`,
      );
      const stored = (await store.list('ipaddresspools')).items.filter((p) =>
        (p.spec?.addresses ?? []).includes(shared),
      );
      t.same(
        stored.map((p) => p.metadata.name),
        [winner],
        `round ${round}: one pool holds ${shared}`,
      );
    }
  },
);
