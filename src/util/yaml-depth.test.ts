import t from 'tap';
import { parse, stringify } from 'yaml';
import { MAX_OBJECT_DEPTH, valueTooDeep, yamlTooDeep } from './yaml-depth.js';

/** `depth` maps nested in block style, one per line from line 1. */
function blockMaps(depth: number): string {
  let s = '';
  for (let i = 0; i < depth; i++) s += `${' '.repeat(i)}k${i}:\n`;
  return `${s}${' '.repeat(depth)}leaf: 1\n`;
}

t.test('the limit is the API limit, and exactly the limit passes', async (t) => {
  t.equal(MAX_OBJECT_DEPTH, 100);
  // blockMaps(n) is n + 1 maps deep (the innermost holds leaf).
  t.equal(yamlTooDeep(blockMaps(99)), undefined, '100 levels pass');
  t.same(yamlTooDeep(blockMaps(100)), { line: 101, maxDepth: 100 }, '101 levels: the line of the 101st');
  t.equal(yamlTooDeep(`x: ${'['.repeat(99)}${']'.repeat(99)}`), undefined, 'flow: 100 levels pass');
  t.same(yamlTooDeep(`a: 1\n---\nx: ${'['.repeat(100)}${']'.repeat(100)}`), { line: 3, maxDepth: 100 });
  let seq = '';
  for (let i = 0; i < 150; i++) seq += `${' '.repeat(i)}-\n`;
  t.equal(yamlTooDeep(seq)?.line, 101, 'block lists count too');
  t.equal(yamlTooDeep(`? ${'['.repeat(120)}${']'.repeat(120)}\n: v\n`)?.line, 1, 'and complex keys');
  t.equal(yamlTooDeep(blockMaps(120), 200), undefined, 'a higher limit given');
});

t.test('hostile sizes return instead of overflowing the stack', async (t) => {
  const n = 200_000;
  t.equal(yamlTooDeep(`x: ${'['.repeat(n)}${']'.repeat(n)}`)?.line, 1);
  t.equal(yamlTooDeep(`x: ${'{a: '.repeat(n)}1${'}'.repeat(n)}`)?.line, 1);
  t.equal(yamlTooDeep(blockMaps(20_000))?.line, 101);
  t.equal(yamlTooDeep(': : : ]]] [[[ {{'), undefined, 'garbage is for the parser to name');
});

t.test('valueTooDeep: what aliases multiply is measured on the value', async (t) => {
  const a = `${'['.repeat(60)}1${']'.repeat(60)}`;
  const text = `a: &a ${a}\nb: ${'['.repeat(50)}*a${']'.repeat(50)}\n`;
  t.equal(yamlTooDeep(text), undefined, 'the text is 61 levels deep');
  t.ok(valueTooDeep(parse(text)), 'its value 111');
  t.notOk(valueTooDeep(parse(stringify({ x: [[[{ y: 'z' }]]] }))));
  let v: unknown = 'leaf';
  for (let i = 0; i < 100; i++) v = { n: v };
  t.notOk(valueTooDeep(v), '100 levels pass');
  t.ok(valueTooDeep({ n: v }), '101 do not');
  const cyclic: Record<string, unknown> = {};
  cyclic['self'] = cyclic;
  t.ok(valueTooDeep(cyclic), 'a cycle is too deep, and the walk ends');
});
