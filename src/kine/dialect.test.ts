import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import t, { type Test } from 'tap';
import { silentLogger } from '../log.js';
import { Backend } from './backend.js';
import { SCHEMA_VERSION, SqliteDialect } from './dialect.js';
import { req } from './requests.js';

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-kine-dialect-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('a new file gets the current schema, WAL mode and full sync', async (t) => {
  const d = new SqliteDialect(join(tempDir(t), 'sub', 'state.db'));
  t.teardown(() => d.close());
  t.equal(d.metaGet('schema_version'), String(SCHEMA_VERSION));
  t.equal(d.db.pragma('journal_mode', { simple: true }), 'wal');
  t.equal(
    d.db.pragma('synchronous', { simple: true }),
    1,
    'synchronous=NORMAL: commits are synced by sync()',
  );
  t.equal(d.integrityCheck(), 'ok');
});

t.test('a file written by kine is migrated, keeping its history', async (t) => {
  const file = join(tempDir(t), 'state.db');
  const k = new Database(file);
  k.exec(`CREATE TABLE kine (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, created INTEGER, deleted INTEGER,
    create_revision INTEGER, prev_revision INTEGER, lease INTEGER, value BLOB, old_value BLOB)`);
  const ins =
    k.prepare(`INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease, value,
    old_value) VALUES (?, ?, 0, ?, ?, 0, ?, NULL)`);
  ins.run('/registry/a', 1, 0, 0, Buffer.from('one'));
  ins.run('/registry/a', 0, 1, 1, Buffer.from('two'));
  ins.run('/registry/b', 1, 0, 0, Buffer.from('bee'));
  k.close();
  const b = new Backend({ file, logger: silentLogger() });
  t.teardown(() => b.close());
  const meta = new Database(file, { readonly: true });
  const version = meta.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as {
    value: string;
  };
  meta.close();
  t.equal(version.value, String(SCHEMA_VERSION));
  t.equal(b.revision, 3);
  const kvs = b.range(req.range('/registry/', { end: '/registry0' })).kvs;
  t.same(
    kvs.map((kv) => [String(kv.key), String(kv.value), kv.mod_revision]),
    [
      ['/registry/a', 'two', 2],
      ['/registry/b', 'bee', 3],
    ],
  );
  t.equal(String(b.range(req.range('/registry/a', { revision: 1 })).kvs[0]!.value), 'one');
});

t.test('a file from a newer vipmesh is refused', async (t) => {
  const file = join(tempDir(t), 'state.db');
  new SqliteDialect(file).close();
  const db = new Database(file);
  db.prepare("UPDATE meta SET value = '99' WHERE key = 'schema_version'").run();
  db.close();
  t.throws(() => new SqliteDialect(file), { code: 'VIPMESH_KINE_SCHEMA_TOO_NEW' });
});

t.test('a corrupt data file gives a clear error naming the file', async (t) => {
  const file = join(tempDir(t), 'state.db');
  writeFileSync(file, Buffer.alloc(8192, 0x5a));
  t.throws(() => new SqliteDialect(file), { code: 'VIPMESH_KINE_DB_CORRUPT' });
  try {
    new SqliteDialect(file);
  } catch (err) {
    t.match((err as Error).message, file, 'the message names the file');
  }
});

t.test('an unopenable data file gives a clear error naming the file', async (t) => {
  const dir = tempDir(t);
  const asDir = join(dir, 'state.db');
  mkdirSync(asDir);
  t.throws(() => new SqliteDialect(asDir), { code: 'VIPMESH_KINE_DB_OPEN' });
  const blocker = join(dir, 'file');
  writeFileSync(blocker, '');
  t.throws(() => new SqliteDialect(join(blocker, 'state.db')), {
    code: 'VIPMESH_KINE_DB_OPEN',
    details: { file: join(blocker, 'state.db') },
  });
  // A read-only file (effective only without CAP_DAC_OVERRIDE, so only asserted when it bites).
  const ro = join(dir, 'ro.db');
  new SqliteDialect(ro).close();
  chmodSync(ro, 0o444);
  chmodSync(dir, 0o555);
  t.teardown(() => chmodSync(dir, 0o755));
  let err: unknown;
  try {
    new Backend({ file: ro, logger: silentLogger() }).close();
  } catch (e) {
    err = e;
  }
  if (process.getuid?.() !== 0) t.match(err, { code: 'VIPMESH_KINE_DB_OPEN' });
  else t.pass('root ignores file modes; covered by the cases above');
});

t.test('defragment and checkpoint shrink the file', async (t) => {
  const d = new SqliteDialect(join(tempDir(t), 'state.db'));
  t.teardown(() => d.close());
  const big = Buffer.alloc(4096, 1);
  d.transaction(() => {
    for (let i = 0; i < 500; i++) {
      d.insert({
        revision: i + 2,
        name: Buffer.from(`k${i}`),
        created: 1,
        deleted: 0,
        create_revision: i + 2,
        prev_revision: 0,
        version: 1,
        lease: 0,
        value: big,
      });
    }
  });
  d.checkpoint();
  const before = d.size().total;
  d.db.exec('DELETE FROM kine');
  t.ok(d.size().inUse < before / 2, 'deleted pages are free, not in use');
  d.vacuum();
  t.ok(d.size().total < before / 2, `the file shrank (${before} -> ${d.size().total})`);
});

t.test('a new file frees pages incrementally; an older file is rebuilt for it once', async (t) => {
  const dir = tempDir(t);
  const d = new SqliteDialect(join(dir, 'new.db'));
  t.equal(d.db.pragma('auto_vacuum', { simple: true }), 2, 'auto_vacuum=INCREMENTAL from the start');
  t.equal(d.metaGet('auto_vacuum'), undefined, 'a new file needs no rebuild');
  d.close();

  // A file as earlier builds made it: same tables, auto_vacuum off, some free pages.
  const old = join(dir, 'old.db');
  const first = new SqliteDialect(old);
  first.close();
  const raw = new Database(old);
  raw.pragma('journal_mode = DELETE');
  raw.pragma('auto_vacuum = NONE');
  raw.exec('VACUUM');
  t.equal(raw.pragma('auto_vacuum', { simple: true }), 0);
  raw.exec('CREATE TABLE filler (x BLOB)');
  const ins = raw.prepare('INSERT INTO filler VALUES (?)');
  for (let i = 0; i < 200; i++) ins.run(Buffer.alloc(4096, i));
  raw.exec('DROP TABLE filler');
  t.ok((raw.pragma('freelist_count', { simple: true }) as number) > 100, 'the old file has free pages');
  raw.close();

  const converted = new SqliteDialect(old);
  t.equal(converted.db.pragma('auto_vacuum', { simple: true }), 2, 'rebuilt with auto_vacuum=INCREMENTAL');
  t.equal(converted.db.pragma('freelist_count', { simple: true }), 0, 'and without its free pages');
  t.equal(converted.metaGet('auto_vacuum'), 'incremental', 'the rebuild is recorded');
  t.equal(converted.integrityCheck(), 'ok');
  converted.close();

  // Recorded: a file that still reports another mode is not rebuilt at every start.
  const again = new Database(old);
  again.pragma('journal_mode = DELETE');
  again.pragma('auto_vacuum = NONE');
  again.exec('VACUUM');
  again.close();
  const reopened = new SqliteDialect(old);
  t.teardown(() => reopened.close());
  t.equal(reopened.db.pragma('auto_vacuum', { simple: true }), 0, 'not rebuilt a second time');
});

t.test('incremental vacuum gives the pages compaction freed back', async (t) => {
  const d = new SqliteDialect(join(tempDir(t), 'state.db'));
  t.teardown(() => d.close());
  const big = Buffer.alloc(4096, 1);
  d.transaction(() => {
    for (let i = 0; i < 300; i++) {
      d.insert({
        revision: i + 2,
        name: Buffer.from('k'),
        created: i === 0 ? 1 : 0,
        deleted: 0,
        create_revision: 2,
        prev_revision: i + 1,
        version: i + 1,
        lease: 0,
        value: big,
      });
    }
  });
  const before = d.size().total;
  const deleted = d.transaction(() => d.compactBatch(0, 300));
  t.equal(deleted, 299, 'every row but the newest of the key is unreachable');
  const freed = d.transaction(() => d.incrementalVacuum());
  t.ok(freed > 250, `${freed} free pages returned`);
  d.checkpoint();
  t.equal(d.db.pragma('freelist_count', { simple: true }), 0);
  t.ok(d.size().total < before / 10, `the file shrank (${before} -> ${d.size().total})`);
  t.equal(
    d.transaction(() => d.incrementalVacuum()),
    0,
    'nothing left to return',
  );
});
