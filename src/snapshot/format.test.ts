import { createHash } from 'node:crypto';
import { readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import { tempDir } from '../testing/tmp.js';
import { checkSnapshotFile, TRAILER_BYTES } from './format.js';

/** A small SQLite database file, and the same with etcd's SHA-256 trailer appended. */
function sqliteFiles(dir: string): { plain: string; trailed: string } {
  const plain = join(dir, 'plain.db');
  const db = new Database(plain);
  db.exec('CREATE TABLE x (v TEXT)');
  for (let i = 0; i < 200; i++) db.prepare('INSERT INTO x VALUES (?)').run(`value ${i}`.repeat(20));
  db.close();
  const body = readFileSync(plain);
  const trailed = join(dir, 'trailed.db');
  writeFileSync(trailed, Buffer.concat([body, createHash('sha256').update(body).digest()]));
  return { plain, trailed };
}

t.test('a SQLite file with and without the trailer is accepted', async (t) => {
  const { plain, trailed } = sqliteFiles(tempDir('vipmesh-snapfmt-'));
  const a = checkSnapshotFile(trailed);
  t.equal(a.kind, 'sqlite');
  t.equal(a.checksummed, true);
  t.equal(a.dataBytes, statSync(trailed).size - TRAILER_BYTES);
  const b = checkSnapshotFile(plain);
  t.equal(b.checksummed, false);
  t.equal(b.dataBytes, statSync(plain).size);
});

t.test('a bbolt file is told apart by its meta page magic', async (t) => {
  const dir = tempDir('vipmesh-snapfmt-');
  const page = Buffer.alloc(4096);
  page.writeUInt32LE(0xed0cdaed, 16);
  const body = Buffer.concat([page, Buffer.alloc(4096)]);
  const f = join(dir, 'etcd.db');
  writeFileSync(f, Buffer.concat([body, createHash('sha256').update(body).digest()]));
  t.equal(checkSnapshotFile(f).kind, 'bbolt');
});

t.test('damaged, truncated and foreign files are refused, naming the file', async (t) => {
  const dir = tempDir('vipmesh-snapfmt-');
  const { plain, trailed } = sqliteFiles(dir);
  const size = statSync(trailed).size;

  const flipped = join(dir, 'flipped.db');
  const bytes = readFileSync(trailed);
  bytes[size - TRAILER_BYTES - 100]! ^= 0xff;
  writeFileSync(flipped, bytes);
  t.throws(() => checkSnapshotFile(flipped), {
    code: 'VIPMESH_SNAPSHOT_INVALID',
    message: /SHA-256 trailer/,
  });

  const cut = join(dir, 'cut.db');
  writeFileSync(cut, readFileSync(trailed).subarray(0, size - 1000));
  t.throws(() => checkSnapshotFile(cut), { code: 'VIPMESH_SNAPSHOT_INVALID', message: /cut\.db/ });

  // Cut at a page boundary without a trailer: the SQLite header's page count gives it away.
  const pageCut = join(dir, 'page-cut.db');
  writeFileSync(pageCut, readFileSync(plain));
  truncateSync(pageCut, statSync(plain).size - 4096);
  t.throws(() => checkSnapshotFile(pageCut), { code: 'VIPMESH_SNAPSHOT_INVALID', message: /truncated/ });

  const foreign = join(dir, 'foreign.db');
  writeFileSync(foreign, Buffer.alloc(8192, 7));
  t.throws(() => checkSnapshotFile(foreign), { code: 'VIPMESH_SNAPSHOT_INVALID', message: /neither/ });

  const empty = join(dir, 'empty.db');
  writeFileSync(empty, '');
  t.throws(() => checkSnapshotFile(empty), { code: 'VIPMESH_SNAPSHOT_INVALID', message: /empty/ });

  t.throws(() => checkSnapshotFile(join(dir, 'missing.db')), {
    code: 'VIPMESH_SNAPSHOT_INVALID',
    message: /ENOENT/,
  });
  t.throws(() => checkSnapshotFile(dir), { code: 'VIPMESH_SNAPSHOT_INVALID', message: /regular file/ });
});
