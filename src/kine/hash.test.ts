import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import { silentLogger } from '../log.js';
import { Backend } from './backend.js';
import { Crc32c } from './hash.js';
import { req } from './requests.js';

t.test('CRC-32C', async (t) => {
  // An empty etcd answers HashKV with the CRC-32C of its bucket name "key".
  t.equal(new Crc32c().update(Buffer.from('key')).digest(), 1084519789);
  t.equal(new Crc32c().update(Buffer.from('123456789')).digest(), 0xe3069283, 'the standard check value');
});

t.test('HashKV is the same after a restart and after compacted rows are deleted', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-kine-hash-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'state.db');
  let b = new Backend({ file, logger: silentLogger() });
  for (let i = 0; i < 20; i++) await b.put(req.put(`k${i % 5}`, `v${i}`));
  await b.deleteRange(req.del('k0'));
  const before = b.hashKv(0);
  const at10 = b.hashKv(10);
  t.equal(before.rev, 22);
  t.equal(before.compactRev, -1, 'never compacted: -1, as etcd');
  t.not(at10.hash, before.hash, 'an older revision hashes differently');
  await b.close();
  b = new Backend({ file, logger: silentLogger() });
  t.same(b.hashKv(0), before, 'same hash after a restart');
  t.same(b.hashKv(10), at10);
  // Compaction at 12: one store hashed before its compacted rows are deleted, one after.
  await b.compact(12, false);
  const rowsLeft = rowCount(file);
  const scheduled = b.hashKv(0);
  const other = join(dir, 'other.db');
  const c = new Backend({ file: other, logger: silentLogger() });
  for (let i = 0; i < 20; i++) await c.put(req.put(`k${i % 5}`, `v${i}`));
  await c.deleteRange(req.del('k0'));
  await c.compact(12, true);
  t.ok(rowCount(other) < rowsLeft, `compacted rows deleted (${rowCount(other)} rows against ${rowsLeft})`);
  t.same(c.hashKv(0), scheduled, 'same hash before and after the compacted rows are deleted');
  t.equal(scheduled.compactRev, 12);
  t.not(scheduled.hash, before.hash, 'compaction changes the hash, as in etcd');
  t.throws(() => b.hashKv(12), { message: 'etcdserver: mvcc: required revision has been compacted' });
  t.throws(() => b.hashKv(23), { message: 'etcdserver: mvcc: required revision is a future revision' });
  await b.close();
  await c.close();
});

function rowCount(file: string): number {
  const db = new Database(file, { readonly: true });
  try {
    return (db.prepare('SELECT COUNT(*) AS n FROM kine').get() as { n: number }).n;
  } finally {
    db.close();
  }
}
