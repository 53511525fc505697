import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { SCHEMAS } from '../vip-pool/index.js';
import { PATCH_QUERY_PARAMS } from './discovery.js';
import { definitionName, openApiV2, openApiV3Doc, openApiV3Index } from './openapi.js';
import { encodeOpenApiV2 } from './openapi-proto.js';
import { openApiDocument } from './openapi-route.js';
import { RESOURCES } from './types.js';

// biome-ignore lint/suspicious/noExplicitAny: the assertions walk JSON documents by path
type Json = Record<string, any>;

t.test('every served kind has a definition tagged with its group/version/kind', async (t) => {
  const defs = openApiV2('1.2.3')['definitions'] as Json;
  for (const r of Object.values(RESOURCES)) {
    const d = defs[definitionName(r)];
    t.ok(d, `${r.kind} is defined`);
    t.same(d['x-kubernetes-group-version-kind'], [{ group: r.group, version: r.version, kind: r.kind }]);
  }
  t.equal(definitionName(RESOURCES.ipaddresspools), 'io.metallb.v1beta1.IPAddressPool');
  t.equal(definitionName(RESOURCES.services), 'io.k8s.api.core.v1.Service');
});

t.test('the documents declare exactly the fields the API validates with', async (t) => {
  const defs = openApiV2('1.2.3')['definitions'] as Json;
  const svc = defs['io.k8s.api.core.v1.Service'];
  const spec = (SCHEMAS['Service'] as Json)['fields']['spec'];
  t.same(Object.keys(svc.properties.spec.properties), Object.keys(spec.fields));
  t.match(svc.properties.spec.properties.loadBalancerIP, { type: 'string', description: /pool/ });
  t.match(svc.properties.spec.properties.ports.items.properties.targetPort, {
    description: /name of a port/,
    type: 'string',
    format: 'int-or-string',
  });
  t.same(svc.properties.metadata.$ref, '#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta');
  const pool = defs['io.metallb.v1beta1.IPAddressPool'];
  t.same(pool.properties.spec.properties.addresses, {
    description: pool.properties.spec.properties.addresses.description,
    type: 'array',
    items: { type: 'string' },
  });
  t.same(pool.properties.metadata.$ref.split('/').at(-1), 'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta');
  t.same(defs['io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta'].properties.labels, {
    description: defs['io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta'].properties.labels.description,
    type: 'object',
    additionalProperties: { type: 'string' },
  });
  // Node is written by agents, not validated: an object of anything in v2, documented fields plus any in v3.
  t.match(defs['io.k8s.api.core.v1.Node'], { type: 'object', properties: undefined });
  const v3node = (openApiV3Doc('api/v1', '1.2.3') as Json)['components'].schemas['io.k8s.api.core.v1.Node'];
  t.match(v3node.properties.spec, {
    'x-kubernetes-preserve-unknown-fields': true,
    properties: { podCIDRs: {} },
  });
});

t.test(
  'v3: an index of group/version documents, each with the PATCH operation kubectl inspects',
  async (t) => {
    const index = openApiV3Index('1.2.3') as Json;
    t.same(Object.keys(index['paths']), ['api/v1', 'apis/metallb.io/v1beta1', 'apis/discovery.k8s.io/v1']);
    const discovery = openApiV3Doc('apis/discovery.k8s.io/v1', '1.2.3') as Json;
    t.match(discovery['components'].schemas['io.k8s.api.discovery.v1.EndpointSlice'], {
      'x-kubernetes-group-version-kind': [
        { group: 'discovery.k8s.io', version: 'v1', kind: 'EndpointSlice' },
      ],
      properties: { addressType: { type: 'string' }, endpoints: { type: 'array' } },
    });
    t.match(index['paths']['api/v1'].serverRelativeURL, /^\/openapi\/v3\/api\/v1\?hash=[0-9A-F]{32}$/);
    const doc = openApiV3Doc('apis/metallb.io/v1beta1', '1.2.3') as Json;
    t.same(Object.keys(doc['components'].schemas).sort(), [
      'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta',
      'io.metallb.v1beta1.IPAddressPool',
      'io.metallb.v1beta1.L2Advertisement',
    ]);
    const one = doc['paths']['/apis/metallb.io/v1beta1/namespaces/{namespace}/ipaddresspools/{name}'];
    t.same(one.patch['x-kubernetes-group-version-kind'], {
      group: 'metallb.io',
      version: 'v1beta1',
      kind: 'IPAddressPool',
    });
    t.same(
      one.patch.parameters.map((p: Json) => p['name']),
      [...PATCH_QUERY_PARAMS],
    );
    t.ok(doc['paths']['/apis/metallb.io/v1beta1/namespaces/{namespace}/ipaddresspools'].post);
    const core = openApiV3Doc('api/v1', '1.2.3') as Json;
    t.ok(core['paths']['/api/v1/nodes/{name}'].get, 'cluster-scoped paths have no namespace');
    t.equal(openApiV3Doc('apis/example.com/v1', '1.2.3'), undefined);
  },
);

t.test('v2 answers protobuf to the protobuf Accept kubectl sends, JSON otherwise', async (t) => {
  const pb = openApiDocument(
    '/openapi/v2',
    'application/com.github.proto-openapi.spec.v2@v1.0+protobuf',
    'x',
  );
  t.equal(pb?.contentType, 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf');
  t.ok(Buffer.isBuffer(pb?.body));
  const json = openApiDocument('/openapi/v2', 'application/json', 'x');
  t.match(json, { contentType: 'application/json', body: { swagger: '2.0' } });
  t.equal(openApiDocument('/openapi/v4', undefined, 'x'), undefined);
  t.equal(openApiDocument('/api/v1', undefined, 'x'), undefined);
  t.match(openApiDocument('/openapi/v3', undefined, 'x'), { body: { paths: {} } });
  t.match(openApiDocument('/openapi/v3/api/v1', undefined, 'x'), { body: { openapi: '3.0.0' } });
  t.equal(openApiDocument('/openapi/v3/apis/example.com/v1', undefined, 'x'), undefined);
  // Field 1 (swagger) then field 2 (info); lengths as varints, also past 127 bytes.
  const bytes = encodeOpenApiV2({ swagger: '2.0', info: { title: 't', version: 'v' }, definitions: {} });
  t.same([...bytes.subarray(0, 5)], [0x0a, 3, 0x32, 0x2e, 0x30]);
  const long = encodeOpenApiV2({
    swagger: 'x'.repeat(300),
    info: { title: '', version: '' },
    definitions: {},
  });
  t.same([...long.subarray(0, 3)], [0x0a, 0xac, 0x02]);
});

/** A protobuf message as field number -> raw values (varints as numbers, length-delimited as bytes). */
function fieldsOf(b: Buffer): Map<number, Buffer[]> {
  const out = new Map<number, Buffer[]>();
  let i = 0;
  const varint = () => {
    let v = 0;
    let mul = 1;
    for (;;) {
      const byte = b[i++]!;
      v += (byte & 0x7f) * mul;
      mul *= 128;
      if (byte < 0x80) return v;
    }
  };
  while (i < b.length) {
    const key = varint();
    if ((key & 7) !== 2) throw new Error(`field ${key >> 3}: wire type ${key & 7}, not length-delimited`);
    const len = varint();
    const no = key >> 3;
    out.set(no, [...(out.get(no) ?? []), b.subarray(i, i + len)]);
    i += len;
  }
  return out;
}

/** The `NamedSchema` entries of a repeated field, by name. */
function named(list: Buffer[] | undefined): Map<string, Buffer> {
  return new Map(
    (list ?? []).map((e) => {
      const f = fieldsOf(e);
      return [f.get(1)![0]!.toString(), f.get(2)?.[0] ?? Buffer.alloc(0)];
    }),
  );
}

t.test('the protobuf v2 document decodes to the same definitions', async (t) => {
  const doc = fieldsOf(encodeOpenApiV2(openApiV2('9.9.9')));
  t.equal(doc.get(1)![0]!.toString(), '2.0');
  t.equal(fieldsOf(doc.get(2)![0]!).get(2)![0]!.toString(), '9.9.9');
  const defs = named(fieldsOf(doc.get(9)![0]!).get(1));
  t.same([...defs.keys()].sort(), Object.keys(openApiV2('x')['definitions'] as Json).sort());
  const svc = fieldsOf(defs.get('io.k8s.api.core.v1.Service')!);
  const ext = fieldsOf(svc.get(31)![0]!);
  t.equal(ext.get(1)![0]!.toString(), 'x-kubernetes-group-version-kind');
  t.same(parseYaml(fieldsOf(ext.get(2)![0]!).get(2)![0]!.toString()), [
    { group: '', version: 'v1', kind: 'Service' },
  ]);
  const props = named(fieldsOf(svc.get(25)![0]!).get(1));
  t.match(fieldsOf(props.get('metadata')!).get(1)![0]!.toString(), /ObjectMeta$/, '$ref');
  const spec = named(fieldsOf(fieldsOf(props.get('spec')!).get(25)![0]!).get(1));
  const lbip = fieldsOf(spec.get('loadBalancerIP')!);
  t.equal(fieldsOf(lbip.get(22)![0]!).get(1)![0]!.toString(), 'string', 'type');
  t.match(lbip.get(4)![0]!.toString(), /pool/, 'description');
  const ports = fieldsOf(spec.get('ports')!);
  t.equal(fieldsOf(ports.get(22)![0]!).get(1)![0]!.toString(), 'array');
  const item = fieldsOf(fieldsOf(ports.get(23)![0]!).get(1)![0]!);
  const port = named(fieldsOf(item.get(25)![0]!).get(1));
  t.equal(
    fieldsOf(fieldsOf(port.get('port')!).get(22)![0]!)
      .get(1)![0]!
      .toString(),
    'integer',
  );
  t.equal(fieldsOf(port.get('targetPort')!).get(2)![0]!.toString(), 'int-or-string', 'format');
  const selector = fieldsOf(spec.get('selector')!);
  const values = fieldsOf(fieldsOf(selector.get(21)![0]!).get(1)![0]!);
  t.equal(fieldsOf(values.get(22)![0]!).get(1)![0]!.toString(), 'string', 'additionalProperties');
});
