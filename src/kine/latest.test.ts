import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { SqliteDialect } from './dialect.js';
import { keyRange, tombstoneKv } from './keys.js';
import { LatestIndex } from './latest.js';
import { Mvcc, type WriteTxn } from './mvcc.js';
import { req } from './requests.js';
import type { Event, KeyValue } from './types.js';

const kv = (key: string, rev: number, value = `v${rev}`): KeyValue => ({
  key: Buffer.from(key, 'latin1'),
  create_revision: rev,
  mod_revision: rev,
  version: 1,
  value: Buffer.from(value),
  lease: 0,
});
const put = (key: string, rev: number): Event => ({ type: 0, kv: kv(key, rev) });
const del = (key: string, rev: number): Event => ({
  type: 1,
  kv: tombstoneKv(Buffer.from(key, 'latin1'), rev),
});
const names = (kvs: KeyValue[]) => kvs.map((k) => k.key.toString('latin1'));
const range = (key: string, end?: string) =>
  keyRange(Buffer.from(key, 'latin1'), end === undefined ? undefined : Buffer.from(end, 'latin1'));

t.test('ranges read the newest versions in byte order, with limits, counts and keys only', async (t) => {
  // 0x80 and 0xff sort after every ASCII byte, as etcd orders keys by their bytes.
  const index = new LatestIndex([kv('b', 2), kv('a/\xff', 3), kv('a/1', 4), kv('a/\x80', 5), kv('c', 6)], 6);
  t.equal(index.size, 5);
  t.same(names(index.range(range('a/', 'a0'), 0, false, false).kvs), ['a/1', 'a/\x80', 'a/\xff']);
  t.same(names(index.range(range('\0', '\0'), 0, false, false).kvs), ['a/1', 'a/\x80', 'a/\xff', 'b', 'c']);
  const limited = index.range(range('a', '\0'), 2, false, false);
  t.same(
    [names(limited.kvs), limited.count],
    [['a/1', 'a/\x80'], 5],
    'the limit cuts the list, not the count',
  );
  const counted = index.range(range('a/', 'a0'), 0, false, true);
  t.same([counted.kvs, counted.count], [[], 3], 'a count returns no KeyValues');
  const keysOnly = index.range(range('b'), 0, true, false);
  t.same([names(keysOnly.kvs), keysOnly.kvs[0]!.value.length], [['b'], 0], 'keys only: no value');
  t.equal(index.range(range('b'), 0, false, false).kvs[0]!.value.toString(), 'v2', 'the value is still held');
  t.equal(index.range(range('bb'), 0, false, false).count, 0, 'a missing key');
  t.equal(index.range(range('c', 'a'), 0, false, false).count, 0, 'an end before the start');
  t.equal(index.range(range('d', '\0'), 0, false, false).count, 0, 'a start past every key');
  t.equal(new LatestIndex([], 1).range(range('\0', '\0'), 0, false, false).count, 0, 'an empty index');
});

t.test('events move the index on, and events it already holds are skipped', async (t) => {
  const index = new LatestIndex([kv('a', 2), kv('b', 3)], 3);
  index.apply([put('c', 4), del('a', 5)], 5);
  t.same(names(index.range(range('\0', '\0'), 0, false, false).kvs), ['b', 'c']);
  t.equal(index.rev, 5);
  // Built anew from a log that ran ahead (rev 5): a batch of revision 4 arriving afterwards changes nothing.
  index.apply([put('a', 4)], 4);
  t.same(
    names(index.range(range('\0', '\0'), 0, false, false).kvs),
    ['b', 'c'],
    'a deleted key stays deleted',
  );
  t.equal(index.rev, 5, 'the revision does not go back');
});

t.test('a rebuild after a failed commit is not undone by the batches that were still syncing', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-kine-latest-'));
  const db = new SqliteDialect(join(dir, 'state.db'));
  t.teardown(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const mvcc = new Mvcc(db, { has: () => false, attach() {}, detach() {} });
  const batch = (fn: (tx: WriteTxn) => unknown) => {
    mvcc.beginBatch();
    db.transaction(() => mvcc.write(fn));
    return mvcc.takeBatch();
  };
  const read = (key: string) => mvcc.range(req.range(key)).kvs.map((k) => k.value.toString());
  const first = batch((tx) => mvcc.put(tx, req.put('k', 'one')));
  const second = batch((tx) => mvcc.deleteRange(tx, req.del('k')));
  t.same([mvcc.rev, read('k')], [1, []], 'neither batch is readable before its sync');
  // A third batch's COMMIT failed: the log is read again, with both batches above in it.
  mvcc.reload();
  t.same([mvcc.rev, read('k')], [3, []]);
  mvcc.durable(first);
  t.same(read('k'), [], "the first batch's sync does not bring the deleted key back");
  mvcc.durable(second);
  t.same([mvcc.rev, read('k')], [3, []]);
  const third = batch((tx) => mvcc.put(tx, req.put('k', 'three')));
  mvcc.durable(third);
  t.same([mvcc.rev, read('k')], [4, ['three']]);
  t.equal(mvcc.liveKeys, 1);
});

t.test('a key and value are held in memory of their own, not in the buffer the write came in', async (t) => {
  const index = new LatestIndex([], 1);
  // As a gRPC message or Buffer.from's shared pool delivers them: views of one larger buffer.
  const message = Buffer.alloc(8192, 'x');
  message.write('key', 100);
  message.write('value', 200);
  const written: KeyValue = {
    ...kv('key', 2),
    key: message.subarray(100, 103),
    value: message.subarray(200, 205),
  };
  index.apply([{ type: 0, kv: written }], 2);
  const held = index.range(range('key'), 0, false, false).kvs[0]!;
  t.same([held.key.toString(), held.value.toString()], ['key', 'value']);
  t.equal(held.value.buffer.byteLength, 8, 'one allocation of the key and value size');
  message.fill(0);
  t.equal(held.value.toString(), 'value', 'later changes to the message do not reach the index');
});
