import t from 'tap';
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
  t.same(svc.properties.spec.properties.ports.items.properties.targetPort, {
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
    t.same(Object.keys(index['paths']), ['api/v1', 'apis/metallb.io/v1beta1']);
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
