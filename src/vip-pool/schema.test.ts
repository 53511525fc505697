import t from 'tap';
import { nameProblem, nameRuleOf } from './checker.js';
import { Codes } from './codes.js';
import { validateObject } from './decode.js';

const service = (spec: Record<string, unknown>, metadata: Record<string, unknown> = { name: 'web' }) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata,
  spec: { type: 'LoadBalancer', ports: [{ port: 80 }], ...spec },
});

const problems = (obj: unknown) => validateObject(obj).map((p) => [p.path, p.code, p.message]);

t.test('a misspelt Service field is refused, with the right spelling suggested', async (t) => {
  t.same(problems(service({ loadBalancerIp: '10.0.0.1' })), [
    [
      'spec.loadBalancerIp',
      Codes.FIELD_UNKNOWN,
      'unknown field: not declared in the Service spec schema; did you mean loadBalancerIP?',
    ],
  ]);
});

t.test('a field indented under the wrong parent is refused where it is', async (t) => {
  const svc = service({ ports: [{ port: 80, loadBalancerIP: '10.0.0.1' }] });
  t.same(problems(svc), [
    [
      'spec.ports[0].loadBalancerIP',
      Codes.FIELD_UNKNOWN,
      'unknown field (expected one of: name, protocol, appProtocol, port, targetPort, nodePort)',
    ],
  ]);
});

t.test('unknown top-level, metadata, selector and ConfigMap fields are refused', async (t) => {
  const pool = {
    apiVersion: 'metallb.io/v1beta1',
    kind: 'IPAddressPool',
    metadata: { name: 'p', lables: { a: 'b' } },
    spec: {
      addresses: ['10.0.0.0/24'],
      serviceAllocation: { serviceSelectors: [{ matchLabels: { a: 'b' }, matchLabel: {} }] },
    },
    extra: 1,
  };
  t.same(
    validateObject(pool).map((p) => p.path),
    ['metadata.lables', 'spec.serviceAllocation.serviceSelectors[0].matchLabel', 'extra'],
  );
  const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' }, data: {}, spec: {} };
  t.same(
    validateObject(cm).map((p) => p.path),
    ['spec'],
  );
});

t.test('what kubectl and the API server put in metadata, and any status, are accepted', async (t) => {
  const svc = service(
    { clusterIP: '10.43.0.10', clusterIPs: ['10.43.0.10'], sessionAffinity: 'None' },
    {
      name: 'web',
      namespace: 'default',
      uid: 'u',
      resourceVersion: '12',
      generation: 3,
      creationTimestamp: '2026-01-01T00:00:00Z',
      labels: { app: 'web' },
      annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{}' },
      managedFields: [{ manager: 'kubectl', fieldsV1: { 'f:spec': {} } }],
      finalizers: ['service.kubernetes.io/load-balancer-cleanup'],
      ownerReferences: [{ apiVersion: 'v1', kind: 'X', name: 'x', uid: 'u', controller: true }],
    },
  );
  t.same(problems({ ...svc, status: { loadBalancer: { ingress: [{ ip: '10.0.0.1', future: 1 }] } } }), []);
});

t.test('names follow the kind: Services are DNS-1035 labels, the rest DNS-1123 subdomains', async (t) => {
  t.equal(nameRuleOf('Service'), 'dns1035-label');
  t.equal(nameRuleOf('Namespace'), 'dns1123-label');
  t.equal(nameRuleOf('IPAddressPool'), 'dns1123-subdomain');
  t.match(nameProblem('1web', 'dns1035-label'), /DNS-1035 label/);
  t.match(nameProblem('web.example', 'dns1035-label'), /DNS-1035 label/);
  t.match(nameProblem('a'.repeat(64), 'dns1035-label'), /no more than 63 characters/);
  t.equal(nameProblem('a'.repeat(63), 'dns1035-label'), undefined);
  t.equal(nameProblem('pool.example', 'dns1123-subdomain'), undefined);
  t.match(nameProblem('Pool', 'dns1123-subdomain'), /DNS-1123 subdomain/);
  t.same(
    validateObject(service({}, { name: '1web' })).map((p) => [p.path, p.code]),
    [['metadata.name', Codes.FIELD_INVALID]],
  );
});
