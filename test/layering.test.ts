/**
 * The import rule of the source tree (docs/architecture.md): which folder of src/ may import which. A new
 * import that crosses a layer the wrong way fails here, naming the file and what it imported, so the module
 * map stays true as the code grows.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import t from 'tap';
import ts from 'typescript';

const SRC = resolve(import.meta.dirname, '..', 'src');

/** The shared base: every folder may import these. */
const BASE = ['core', 'util'];
/** The lower modules: each stands alone on the base, and never imports another lower module. */
const LOWER = ['vip-pool', 'arp', 'flannel-hostgw', 'tunnel', 'kine', 'pki', 'etcd-member', 'lb'];

/**
 * For each folder of src/ (`core` is the files directly in src/), the folders it may import besides itself.
 * `agent` may import of `api` only the agent protocol (see AGENT_API): the agent entry loads nothing of the
 * server. `testing` is for tests only and is checked separately.
 */
const ALLOWED: Record<string, readonly string[]> = {
  core: [],
  util: ['core'],
  ...Object.fromEntries(LOWER.map((m) => [m, BASE])),
  api: [...BASE, 'vip-pool', 'pki'],
  controllers: [...BASE, 'api', 'vip-pool', 'flannel-hostgw'],
  daemon: BASE,
  agent: [...BASE, 'daemon', 'api', 'arp', 'flannel-hostgw', 'tunnel', 'pki', 'lb'],
  snapshot: [...BASE, 'kine'],
  server: [
    ...BASE,
    'daemon',
    'api',
    'controllers',
    'kine',
    'snapshot',
    'etcd-member',
    'tunnel',
    'pki',
    'vip-pool',
    'flannel-hostgw',
  ],
  lab: BASE,
  cli: [...BASE, ...LOWER, 'daemon', 'api', 'controllers', 'snapshot', 'agent', 'server', 'lab'],
};
/** The only files of src/api the agent may import. */
const AGENT_API = new Set(['api/agent-protocol.ts', 'api/types.ts']);

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'native' ? [] : sourceFiles(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

/** The folder of src/ a file belongs to (`core` for the files directly in src/). */
function folderOf(file: string): string {
  const rel = relative(SRC, file);
  return rel.includes('/') ? rel.slice(0, rel.indexOf('/')) : 'core';
}

/** The files of src/ that `file` imports (relative imports, including `export ... from` and `import()`). */
function importsOf(file: string): string[] {
  const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  return info.importedFiles
    .map((f) => f.fileName)
    .filter((spec) => spec.startsWith('.'))
    .map((spec) => resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
}

/** Why importing `toRel` from `fromRel` (paths under src/) breaks the layering, or undefined when it may. */
function crossing(fromRel: string, toRel: string): string | undefined {
  const from = folderOf(join(SRC, fromRel));
  const to = folderOf(join(SRC, toRel));
  if (to === from) return undefined;
  if (to === 'testing') return `${fromRel} imports test-only ${toRel}`;
  if (!(ALLOWED[from] ?? []).includes(to)) return `${fromRel} imports ${toRel}`;
  if (from === 'agent' && to === 'api' && !AGENT_API.has(toRel)) {
    return `${fromRel} imports ${toRel} (the agent takes only the agent protocol of api/)`;
  }
  return undefined;
}

const files = sourceFiles(SRC);

t.test('every folder of src/ has an import rule', async (t) => {
  const folders = new Set(files.map(folderOf));
  folders.delete('testing');
  t.same([...folders].filter((f) => !(f in ALLOWED)).sort(), [], 'folders without a rule in ALLOWED');
});

t.test('product code imports only the folders its layer allows', async (t) => {
  const bad: string[] = [];
  for (const file of files.filter((f) => !f.endsWith('.test.ts') && folderOf(f) !== 'testing')) {
    for (const target of importsOf(file)) {
      const why = crossing(relative(SRC, file), relative(SRC, target));
      if (why !== undefined) bad.push(why);
    }
  }
  t.same(bad, [], 'imports that cross the layering');
});

t.test('the rule catches what it is for', async (t) => {
  t.match(
    crossing('arp/announcer.ts', 'vip-pool/index.ts'),
    /arp\/announcer.ts imports vip-pool/,
    'lower to lower',
  );
  t.ok(crossing('kine/backend.ts', 'api/store.ts'), 'a lower module importing the API');
  t.ok(crossing('server/server.ts', 'cli/program.ts'), 'the server importing the CLI');
  t.ok(crossing('server/server.ts', 'lab/demo.ts'), 'anything but the CLI importing the lab');
  t.ok(crossing('api/client.ts', 'testing/api-server.ts'), 'product code importing a test double');
  t.match(crossing('agent/agent.ts', 'api/store.ts'), /agent protocol/, 'the agent loading the store');
  t.equal(crossing('agent/agent.ts', 'api/agent-protocol.ts'), undefined, 'the agent protocol is allowed');
  t.equal(crossing('cli/commands/demo.ts', 'lab/demo.ts'), undefined, 'the CLI runs the lab');
  t.equal(crossing('controllers/ipam.ts', 'controllers/informer.ts'), undefined, 'within a folder');
});
