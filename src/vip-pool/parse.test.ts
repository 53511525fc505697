import fc from 'fast-check';
import t from 'tap';
import { stringify } from 'yaml';
import { Codes } from './codes.js';
import { checkPools, formatProblem, lineOfField, parseDocuments } from './parse.js';

const POOLS = `# two pools
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: office
spec:
  addresses:
  - 10.0.0.0/28
  - 10.0.0.9-10.0.0.5
---
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: lab
spec:
  addresses: [10.0.1.0/24]
`;

t.test('problems carry file, line, object and field; objects carry their line', async (t) => {
  const { objects, problems } = parseDocuments(POOLS, 'pools.yaml');
  t.same(
    objects.map((o) => [o.kind, o.name, o.line, o.decoded !== undefined]),
    [
      ['IPAddressPool', 'office', 2, false],
      ['IPAddressPool', 'lab', 12, true],
    ],
  );
  t.same(problems.map(formatProblem), [
    'pools.yaml:9 IPAddressPool/office spec.addresses[1]: range start 10.0.0.9 is after end 10.0.0.5',
  ]);
  t.equal(problems[0]!.code, Codes.RANGE_REVERSED);
  t.equal(lineOfField(objects[1]!, ['spec', 'addresses', 0]), 17, 'flow lists have lines too');
  t.equal(lineOfField(objects[1]!, ['spec', 'nothing', 'here']), 16, 'a missing field points at its parent');
});

t.test('legacy ConfigMap problems point inside the data.config block', async (t) => {
  const text = [
    'apiVersion: v1',
    'kind: ConfigMap',
    'metadata: {name: config, namespace: metallb-system}',
    'data:',
    '  config: |',
    '    address-pools:',
    '    - name: default',
    '      protocol: layer2',
    '      addresses:',
    '      - 10.0.0.1-10.0.0.0',
    '',
  ].join('\n');
  const { problems } = parseDocuments(text, 'cm.yaml');
  t.same(problems.map(formatProblem), [
    'cm.yaml:10 ConfigMap/config data.config.address-pools[0].addresses[0]: range start 10.0.0.1 is after end 10.0.0.0',
  ]);
});

t.test('YAML errors, non-map documents, aliases and kind: List', async (t) => {
  const bad = parseDocuments('a: [1\nb: 2\n', 'bad.yaml');
  t.ok(bad.problems.length > 0);
  t.ok(bad.problems.every((p) => p.code === Codes.YAML_INVALID && p.file === 'bad.yaml' && p.line >= 1));
  t.same(
    parseDocuments('a: 1\na: 2\n', 'dup.yaml').problems.map((p) => p.code),
    [Codes.YAML_INVALID],
    'duplicate keys',
  );
  t.same(
    parseDocuments('- just\n- a list\n', 'l.yaml').problems.map((p) => [p.line, p.code]),
    [[1, Codes.YAML_INVALID]],
  );
  t.same(parseDocuments('# only a comment\n---\n', 'e.yaml'), { objects: [], problems: [] });
  const bomb =
    'a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n';
  t.same(
    parseDocuments(bomb, 'bomb.yaml').problems.map((p) => p.code),
    [Codes.YAML_INVALID],
    'alias bombs are refused',
  );
  const list = stringify({
    apiVersion: 'v1',
    kind: 'List',
    items: [
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'a' } },
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 's' },
        spec: { type: 'Nodeport', ports: [{ port: 1 }] },
      },
      'junk',
    ],
  });
  const r = parseDocuments(list, 'list.yaml');
  t.same(
    r.objects.map((o) => o.kind),
    ['Namespace', 'Service'],
  );
  t.same(
    r.problems.map((p) => [p.line, p.path, p.code]),
    [
      [13, 'spec.type', Codes.FIELD_INVALID],
      [16, '', Codes.YAML_INVALID],
    ],
  );
});

t.test('pool-set problems are located at the offending entry or name', async (t) => {
  const text = `${POOLS.replace('10.0.0.9-10.0.0.5', '10.0.0.16/28')}---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: lab
spec:
  addresses: [10.0.2.0/24, 10.0.0.8-10.0.0.20]
`;
  const { objects, problems } = parseDocuments(text, 'p.yaml');
  t.same(problems, []);
  t.same(checkPools(objects).map(formatProblem), [
    'p.yaml:22 IPAddressPool/lab metadata.name: another pool is already named lab',
    'p.yaml:24 IPAddressPool/lab spec.addresses[1]: 10.0.0.8-10.0.0.20 overlaps pool office (10.0.0.0/28)',
    'p.yaml:9 IPAddressPool/office spec.addresses[1]: 10.0.0.16/28 overlaps pool lab (10.0.0.8-10.0.0.20)',
  ]);
});

t.test('formatProblem without a line, kind or path', async (t) => {
  const p = {
    file: 'x.yaml',
    line: 0,
    kind: '',
    name: '',
    path: '',
    code: 'VIPMESH_YAML_INVALID',
    message: 'm',
  };
  t.equal(formatProblem(p), 'x.yaml: m');
  t.equal(formatProblem({ ...p, file: '', kind: 'Service' }), 'Service/<unnamed>: m');
  t.equal(formatProblem({ ...p, file: '' }), 'm');
});

t.test('parseDocuments never throws, whatever the text', async (t) => {
  const yamlish = fc.array(
    fc.constantFrom(
      'apiVersion: v1\n',
      'kind: Service\n',
      'kind: ConfigMap\n',
      '---\n',
      '- ',
      ': ',
      '  ',
      '[',
      ']',
      '{',
      '}',
      '&a ',
      '*a ',
      '!!str ',
      '|\n',
      '"',
      "'",
      '\n',
      'x',
      '10.0.0.1-10.0.0.0',
      '#',
    ),
    { maxLength: 40 },
  );
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string({ maxLength: 200 }),
        yamlish.map((a) => a.join('')),
      ),
      (text) => {
        const r = parseDocuments(text, 'f.yaml');
        return r.problems.every((p) => p.line >= 1 && p.code.startsWith('VIPMESH_'));
      },
    ),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(fc.anything(), (v) => {
      const r = parseDocuments(stringify(v), 'g.yaml');
      return Array.isArray(r.objects) && Array.isArray(r.problems);
    }),
    { numRuns: 500 },
  );
  t.pass();
});

t.test(
  'nesting: objects up to the API limit of 100 levels parse, in a List too; deeper is one problem',
  async (t) => {
    const nested = (depth: number): unknown => {
      let v: unknown = 'leaf';
      for (let i = 0; i < depth; i++) v = { n: v };
      return v;
    };
    // A Service map (1) with spec (2) holding `depth` more maps.
    const svc = (name: string, depth: number) => ({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name },
      spec: nested(depth),
    });
    const ok = parseDocuments(
      stringify({ apiVersion: 'v1', kind: 'List', items: [svc('ok', 99)] }),
      'l.yaml',
    );
    t.notOk(
      ok.problems.some((p) => /deeper/.test(p.message)),
      'a List of objects 100 levels deep is not too deep',
    );
    t.equal(ok.objects.length, 1);
    const deep = parseDocuments(`# one\n# two\n${stringify(svc('deep', 100))}`, 'd.yaml');
    t.same(
      deep.problems.map((p) => formatProblem(p)),
      ['d.yaml:3 Service/deep: nests maps and lists deeper than 100 levels; refused'],
      'an object 101 levels deep: named, at its line, nothing else said about it',
    );
    t.equal(deep.objects.length, 0);
    const huge = parseDocuments(`x: ${'['.repeat(50_000)}${']'.repeat(50_000)}\n`, 'h.yaml');
    t.same(
      huge.problems.map((p) => [p.line, p.code]),
      [[1, Codes.YAML_INVALID]],
    );
    t.match(huge.problems[0]?.message, /deeper than 100 levels/, 'not a stack overflow message');
  },
);
