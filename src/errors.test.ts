import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { errnoOf, isVipmeshError, VipmeshError } from './errors.js';

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

t.test('every error code used in src/ is documented in docs/errors.md', async (t) => {
  const doc = readFileSync('docs/errors.md', 'utf8');
  // Environment variable names share the prefix but are not error codes.
  const envVars = new Set([
    'VIPMESH_LOG_LEVEL',
    'VIPMESH_LOG_FORMAT',
    'VIPMESH_CONFIG',
    'VIPMESH_URL',
    'VIPMESH_TOKEN',
    'VIPMESH_ADMIN_CONFIG',
    'VIPMESH_LAB_CLI',
    'VIPMESH_DEBUG_HEAP_CHURN',
    'VIPMESH_V8_FLAGS',
  ]);
  const used = new Set<string>();
  for (const file of sources('src')) {
    for (const m of readFileSync(file, 'utf8').matchAll(/'(VIPMESH_[A-Z0-9_]+)'/g))
      if (!envVars.has(m[1]!)) used.add(m[1]!);
  }
  t.ok(used.size > 0, 'the source uses error codes');
  for (const code of used) t.ok(doc.includes(`\`${code}\``), `${code} is in docs/errors.md`);
});

t.test('VipmeshError keeps code, cause and details', async (t) => {
  const cause = Object.assign(new Error('File exists'), { code: 'EEXIST' });
  const err = new VipmeshError('VIPMESH_TEST', 'adding 198.51.100.1 to lo failed', {
    cause,
    details: { iface: 'lo' },
  });
  t.equal(err.code, 'VIPMESH_TEST');
  t.equal(err.cause, cause);
  t.ok(isVipmeshError(err, 'VIPMESH_TEST'));
  t.notOk(isVipmeshError(err, 'VIPMESH_OTHER'));
  t.notOk(isVipmeshError(cause));
  t.equal(errnoOf(err.cause), 'EEXIST');
  t.equal(errnoOf('nope'), undefined);
  t.same(err.toJSON(), { code: 'VIPMESH_TEST', message: 'adding 198.51.100.1 to lo failed', iface: 'lo' });
});
