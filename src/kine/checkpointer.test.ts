import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import t, { type Test } from 'tap';
import { silentLogger } from '../log.js';
import { FakeClock } from '../testing/fake-clock.js';
import { Checkpointer } from './checkpointer.js';

/** A WAL-mode database with `rows` rows written and not yet checkpointed. */
function walFile(t: Test, rows: number): { file: string; db: Database.Database } {
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-checkpointer-'));
  const file = join(dir, 'state.db');
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('wal_autocheckpoint = 0');
  db.exec('CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)');
  const insert = db.prepare('INSERT INTO kv (v) VALUES (?)');
  for (let i = 0; i < rows; i++) insert.run('x'.repeat(100));
  t.teardown(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { file, db };
}

t.test('the worker starts with the first checkpoint and stops after an idle spell', async (t) => {
  const { file } = walFile(t, 50);
  const clock = new FakeClock();
  const c = new Checkpointer(file, silentLogger(), { clock, idleMs: 1000 });
  t.teardown(() => c.close());
  t.equal(c.started, false, 'no thread before a checkpoint is asked for');

  const first = await c.request();
  t.ok(first !== undefined && first.checkpointed > 0, 'the WAL frames were copied');
  t.equal(c.started, true);
  clock.advance(999);
  t.equal(c.started, true, 'kept while idle for less than idleMs');
  clock.advance(1);
  t.equal(c.started, false, 'stopped after idleMs without a checkpoint');

  const again = await c.request('TRUNCATE');
  t.not(again, undefined, 'a checkpoint after the stop starts a new worker');
  t.equal(again?.log, 0, 'TRUNCATE emptied the WAL');
  t.equal(c.started, true);
});

t.test('a checkpoint asked for while idle keeps the worker', async (t) => {
  const { file, db } = walFile(t, 10);
  const clock = new FakeClock();
  const c = new Checkpointer(file, silentLogger(), { clock, idleMs: 1000 });
  t.teardown(() => c.close());
  await c.request();
  clock.advance(600);
  db.prepare('INSERT INTO kv (v) VALUES (?)').run('y');
  t.not(await c.request(), undefined);
  clock.advance(600);
  t.equal(c.started, true, 'the idle spell restarted with the last checkpoint');
});

t.test('close stops a running worker, and one that was never started', async (t) => {
  const { file } = walFile(t, 10);
  const never = new Checkpointer(file, silentLogger());
  await never.close();
  t.equal(never.started, false);
  t.equal(await never.request(), undefined, 'no checkpoint after close');

  const used = new Checkpointer(file, silentLogger());
  const pending = used.request();
  await used.close();
  t.not(await pending, undefined, 'the running checkpoint finished before the close');
  t.equal(used.started, false);
});
