import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import t, { type Test } from 'tap';
import { silentLogger } from '../log.js';
import { createRegistry } from '../metrics.js';
import { FakeClock } from '../testing/fake-clock.js';
import { Backend, type BackendOptions } from './backend.js';
import { prefixEnd } from './keys.js';
import { Mvcc } from './mvcc.js';
import { req } from './requests.js';
import type { Event } from './types.js';

function tempFile(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-kine-unit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'state.db');
}

/**
 * Resolve once every write queued before this call is durable: a write (deleting a key that never exists,
 * so no revision is used) queued after them is acknowledged only after them. Lease expiry and automatic
 * compaction queue their writes synchronously from the timer tick, so this waits for those too.
 */
async function writesSettled(b: Backend): Promise<void> {
  await b.deleteRange(req.del('never-written'));
}

/** The number of rows in the log table, read through a separate read-only connection. */
function rowCount(file: string): number {
  const db = new Database(file, { readonly: true });
  try {
    return (db.prepare('SELECT COUNT(*) AS n FROM kine').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

function open(file: string, extra: Partial<BackendOptions> = {}): Backend {
  return new Backend({ file, logger: silentLogger(), ...extra });
}

const put = (b: Backend, k: string, v: string, lease = 0) => b.put(req.put(k, v, { lease }));
const del = (b: Backend, k: string, end?: string) =>
  b.deleteRange(req.del(k, end === undefined ? {} : { end }));
const getAll = (b: Backend, rev = 0) =>
  b.range(req.range('\0', { end: '\0', revision: rev })).kvs.map((kv) => `${kv.key}=${kv.value}`);

t.test('revisions, versions and create revisions follow etcd', async (t) => {
  const b = open(tempFile(t));
  t.teardown(() => b.close());
  t.equal(b.revision, 1, 'a new store is at revision 1');
  t.equal((await put(b, 'a', '1')).rev, 2);
  t.equal((await put(b, 'a', '2')).rev, 3);
  await put(b, 'b', 'x');
  const a = b.range(req.range('a')).kvs[0]!;
  t.match(a, { create_revision: 2, mod_revision: 3, version: 2 });
  t.equal((await del(b, 'a')).value.deleted, 1);
  t.equal((await del(b, 'a')).rev, 5, 'deleting nothing keeps the revision');
  await put(b, 'a', '3');
  t.match(b.range(req.range('a')).kvs[0], { create_revision: 6, mod_revision: 6, version: 1 });
  t.same(getAll(b, 3), ['a=2'], 'reads at an old revision');
  t.same(getAll(b, 4), ['a=2', 'b=x']);
  t.throws(() => b.range(req.range('a', { revision: 99 })), {
    message: 'etcdserver: mvcc: required revision is a future revision',
  });
  t.throws(() => b.range(req.range('')), { message: 'etcdserver: key is not provided' });
  t.throws(() => b.range(req.range('a', { sort_order: 7 })), {
    message: 'etcdserver: invalid sort option',
  });
  t.same(b.range(req.range('b', { end: 'a' })).kvs, [], 'an end below the key is an empty range');
  const page = b.range(req.range('\0', { end: '\0', limit: 1 }));
  t.equal(page.more, true);
  t.equal(page.count, 2);
  const counted = b.range(req.range('\0', { end: '\0', count_only: true }));
  t.same([counted.kvs.length, counted.count], [0, 2]);
  const filtered = b.range(req.range('\0', { end: '\0', min_mod_revision: 5 }));
  t.same(
    filtered.kvs.map((kv) => String(kv.key)),
    ['a'],
  );
});

t.test('txn compares and nested ops', async (t) => {
  const b = open(tempFile(t));
  t.teardown(() => b.close());
  await put(b, 'k', 'v1');
  const cmp = (target: number, result: number, field: Record<string, unknown>) => ({
    key: Buffer.from('k'),
    range_end: Buffer.alloc(0),
    target,
    result,
    ...field,
  });
  const run = (compare: ReturnType<typeof cmp>[]) =>
    b.txn(req.txn({ compare, success: [{ request_range: req.range('k') }], failure: [] }));
  // target: VERSION 0, CREATE 1, MOD 2, VALUE 3, LEASE 4; result: EQUAL 0, GREATER 1, LESS 2, NOT_EQUAL 3
  const cases: Array<[string, ReturnType<typeof cmp>, boolean]> = [
    ['version = 1', cmp(0, 0, { version: 1 }), true],
    ['version > 1', cmp(0, 1, { version: 1 }), false],
    ['create = 2', cmp(1, 0, { create_revision: 2 }), true],
    ['mod < 3', cmp(2, 2, { mod_revision: 3 }), true],
    ['value = v1', cmp(3, 0, { value: Buffer.from('v1') }), true],
    ['value > v0', cmp(3, 1, { value: Buffer.from('v0') }), true],
    ['value != v1', cmp(3, 3, { value: Buffer.from('v1') }), false],
    ['lease = 0', cmp(4, 0, { lease: 0 }), true],
  ];
  for (const [name, c, want] of cases) t.equal((await run([c])).value.succeeded, want, name);
  const missing = { ...cmp(3, 0, { value: Buffer.alloc(0) }), key: Buffer.from('nope') };
  t.equal((await run([missing])).value.succeeded, false, 'a value compare on a missing key fails');
  const missingVersion = { ...cmp(0, 0, { version: 0 }), key: Buffer.from('nope') };
  t.equal((await run([missingVersion])).value.succeeded, true, 'a missing key has version 0');

  const nested = await b.txn(
    req.txn({
      success: [
        { request_put: req.put('x', '1') },
        {
          request_txn: req.txn({
            success: [{ request_put: req.put('y', '2') }, { request_range: req.range('x') }],
          }),
        },
        { request_delete_range: req.del('k') },
      ],
    }),
  );
  t.equal(nested.rev, 3, 'one revision for the whole txn');
  t.same(getAll(b), ['x=1', 'y=2']);
  const inner = nested.value.responses[1]!.response_txn!.responses[1]!.response_range!;
  t.equal(String(inner.kvs[0]!.value), '1', 'a read inside the txn sees its earlier writes');

  // etcd decides nested branches before the txn writes: the nested compare sees k2 as absent.
  const early = await b.txn(
    req.txn({
      success: [
        { request_put: req.put('k2', 'x') },
        {
          request_txn: req.txn({
            compare: [
              { key: Buffer.from('k2'), range_end: Buffer.alloc(0), target: 0, result: 0, version: 0 },
            ],
            success: [{ request_put: req.put('k3', 'then') }],
            failure: [{ request_put: req.put('k4', 'else') }],
          }),
        },
      ],
    }),
  );
  t.equal(early.value.responses[1]!.response_txn!.succeeded, true);
  t.same(getAll(b), ['k2=x', 'k3=then', 'x=1', 'y=2']);

  t.throws(
    () =>
      Mvcc.checkTxn(
        req.txn({ success: [{ request_put: req.put('d', '1') }, { request_put: req.put('d', '2') }] }),
      ),
    {
      message: 'etcdserver: duplicate key given in txn request',
    },
  );
  t.throws(
    () =>
      Mvcc.checkTxn(
        req.txn({
          success: [
            { request_put: req.put('p/1', '1') },
            { request_delete_range: req.del('p/', { end: 'p0' }) },
          ],
        }),
      ),
    { message: 'etcdserver: duplicate key given in txn request' },
  );
  const many = Array.from({ length: 129 }, (_, i) => ({ request_put: req.put(`m${i}`, 'v') }));
  t.throws(() => Mvcc.checkTxn(req.txn({ success: many })), {
    message: 'etcdserver: too many operations in txn request',
  });
  t.throws(() => Mvcc.checkPut(req.put('a', 'v', { ignore_value: true })), {
    message: 'etcdserver: value is provided',
  });
  t.throws(() => Mvcc.checkPut(req.put('a', '', { ignore_lease: true, lease: 5 })), {
    message: 'etcdserver: lease is provided',
  });
  await t.rejects(put(b, 'a', 'v', 12345), { message: 'etcdserver: requested lease not found' });
});

t.test('concurrent writes are group-committed, each with its own revision', async (t) => {
  const registry = createRegistry();
  const b = open(tempFile(t), { registry });
  t.teardown(() => b.close());
  const results = await Promise.all(Array.from({ length: 16 }, (_, i) => put(b, `k${i}`, 'v')));
  t.same(
    results.map((r) => r.rev).sort((x, y) => x - y),
    Array.from({ length: 16 }, (_, i) => i + 2),
  );
  const text = await registry.metrics();
  const count = Number(/vipmesh_kine_commit_batch_writes_count (\d+)/.exec(text)?.[1]);
  t.equal(count, 1, 'sixteen writes in one transaction');
  // One failing write does not take the others down.
  const mixed = await Promise.allSettled([put(b, 'ok1', 'v'), put(b, 'bad', 'v', 999), put(b, 'ok2', 'v')]);
  t.same(
    mixed.map((m) => m.status),
    ['fulfilled', 'rejected', 'fulfilled'],
  );
  t.equal(b.range(req.range('bad')).count, 0);
});

t.test('model check: random writes read back identically at every revision', async (t) => {
  const key = fc.constantFrom('a', 'ab', 'b', 'b/1', 'b/2', 'c');
  const op = fc.oneof(
    fc.record({ kind: fc.constant('put' as const), key, value: fc.string({ maxLength: 4 }) }),
    fc.record({ kind: fc.constant('del' as const), key }),
    fc.record({ kind: fc.constant('delPrefix' as const), key }),
    fc.record({ kind: fc.constant('txn' as const), key, value: fc.string({ maxLength: 4 }) }),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 25 }), async (ops) => {
      const file = join(mkdtempSync(join(tmpdir(), 'vipmesh-kine-model-')), 'state.db');
      const b = open(file);
      type Kv = { value: string; create: number; mod: number; version: number };
      const model = new Map<string, Kv>();
      const history = new Map<number, string[]>([[1, []]]);
      const events: Event[] = [];
      b.watch({
        range: { key: Buffer.from([0]), end: null, single: false },
        filters: [],
        prevKv: false,
        nextRev: 2,
        synced: true,
        deliver: (evs) => events.push(...evs),
      });
      let rev = 1;
      try {
        for (const o of ops) {
          const next = rev + 1;
          let changed = false;
          const setKey = (k: string, v: string) => {
            const prev = model.get(k);
            model.set(k, {
              value: v,
              create: prev?.create ?? next,
              mod: next,
              version: (prev?.version ?? 0) + 1,
            });
            changed = true;
          };
          const drop = (match: (k: string) => boolean) => {
            for (const k of [...model.keys()]) {
              if (match(k)) {
                model.delete(k);
                changed = true;
              }
            }
          };
          if (o.kind === 'put') {
            await put(b, o.key, o.value);
            setKey(o.key, o.value);
          } else if (o.kind === 'del') {
            await del(b, o.key);
            drop((k) => k === o.key);
          } else if (o.kind === 'delPrefix') {
            await del(b, o.key, prefixEnd(Buffer.from(o.key)).toString('latin1'));
            drop((k) => k.startsWith(o.key));
          } else {
            // if version(key) > 0 then put key+"!" else delete the key's prefix
            const exists = model.has(o.key);
            await b.txn(
              req.txn({
                compare: [
                  { key: Buffer.from(o.key), range_end: Buffer.alloc(0), target: 0, result: 1, version: 0 },
                ],
                success: [{ request_put: req.put(`${o.key}!`, o.value) }],
                failure: [{ request_delete_range: req.del(o.key, { end: prefixEnd(Buffer.from(o.key)) }) }],
              }),
            );
            if (exists) setKey(`${o.key}!`, o.value);
            else drop((k) => k.startsWith(o.key));
          }
          if (changed) rev = next;
          history.set(
            rev,
            [...model.entries()]
              .sort(([x], [y]) => Buffer.compare(Buffer.from(x), Buffer.from(y)))
              .map(([k, v]) => `${k}=${v.value}@${v.create}/${v.mod}/${v.version}`),
          );
          if (b.revision !== rev) return false;
        }
        for (const [r, want] of history) {
          const got = b
            .range(req.range('\0', { end: '\0', revision: r }))
            .kvs.map((kv) => `${kv.key}=${kv.value}@${kv.create_revision}/${kv.mod_revision}/${kv.version}`);
          if (JSON.stringify(got) !== JSON.stringify(want)) return false;
          // A limit: the first keys, `more` and the count of every live key, as etcd answers.
          const limited = b.range(req.range('\0', { end: '\0', revision: r, limit: 2 }));
          const names = (kvs: Array<{ key: Buffer }>) => kvs.map((kv) => String(kv.key));
          const wantNames = want.map((w) => w.slice(0, w.indexOf('=')));
          if (JSON.stringify(names(limited.kvs)) !== JSON.stringify(wantNames.slice(0, 2))) return false;
          if (limited.more !== want.length > 2 || Number(limited.count) !== want.length) return false;
          // Keys only, over a bounded range ['b', 'c'): the keys of that range, no values.
          const bounded = b.range(req.range('b', { end: 'c', revision: r, keys_only: true }));
          if (bounded.kvs.some((kv) => kv.value.length !== 0)) return false;
          const inB = wantNames.filter((k) => k >= 'b' && k < 'c');
          if (JSON.stringify(names(bounded.kvs)) !== JSON.stringify(inB)) return false;
          if (Number(bounded.count) !== inB.length) return false;
        }
        // The current revision is read from the in-memory index of the newest versions; a filter every row
        // passes (min_mod_revision 1) sends the same read to the log instead: both must answer alike.
        const show = (res: ReturnType<Backend['range']>) =>
          JSON.stringify([
            res.kvs.map(
              (kv) => `${kv.key}=${kv.value}@${kv.create_revision}/${kv.mod_revision}/${kv.version}`,
            ),
            Number(res.count),
          ]);
        for (const shape of [
          { key: '\0', end: '\0' },
          { key: 'b', end: 'c' },
          { key: 'b/1' },
          { key: 'ab', end: 'b/2', keys_only: true },
          { key: 'c', end: 'a' },
        ]) {
          const { key, ...rest } = shape;
          const fromIndex = b.range(req.range(key, rest));
          const fromLog = b.range(req.range(key, { ...rest, min_mod_revision: 1 }));
          if (show(fromIndex) !== show(fromLog)) return false;
        }
        // Replaying the published events rebuilds the final state.
        const replay = new Map<string, string>();
        let last = 0;
        for (const ev of events) {
          if (Number(ev.kv.mod_revision) < last) return false;
          last = Number(ev.kv.mod_revision);
          if (ev.type === 0) replay.set(String(ev.kv.key), String(ev.kv.value));
          else replay.delete(String(ev.kv.key));
        }
        const final = [...model.entries()].map(([k, v]) => `${k}=${v.value}`).sort();
        const replayed = [...replay.entries()].map(([k, v]) => `${k}=${v}`).sort();
        return JSON.stringify(final) === JSON.stringify(replayed);
      } finally {
        await b.close();
        rmSync(join(file, '..'), { recursive: true, force: true });
      }
    }),
    { numRuns: 40 },
  );
  t.pass('the store matched the model');
});

t.test('leases expire on the clock, delete their keys in one revision, and survive a restart', async (t) => {
  const file = tempFile(t);
  const clock = new FakeClock();
  let b = open(file, { clock });
  b.start();
  const { id, ttlSeconds } = await b.leaseGrant(0, 1);
  t.equal(ttlSeconds, 2, 'TTLs below the minimum are raised to 2 s as etcd does');
  const long = await b.leaseGrant(42, 10);
  t.equal(long.id, 42, 'a client-chosen ID is kept');
  await t.rejects(b.leaseGrant(42, 10), { message: 'etcdserver: lease already exists' });
  await t.rejects(b.leaseGrant(0, 9_000_000_001), { message: 'etcdserver: too large lease TTL' });
  await put(b, 'l/1', 'v', id);
  await put(b, 'l/2', 'v', id);
  await put(b, 'keep', 'v', 42);
  t.same(b.leaseTimeToLive(id, true)!.keys.map(String), ['l/1', 'l/2']);
  const events: Event[] = [];
  b.watch({
    range: { key: Buffer.from('l/'), end: Buffer.from('l0'), single: false },
    filters: [],
    prevKv: true,
    nextRev: b.revision + 1,
    synced: true,
    deliver: (evs) => events.push(...evs),
  });
  clock.advance(1500);
  t.equal(b.leaseRenew(id), 2, 'keep-alive answers the granted TTL');
  clock.advance(1500); // 3 s after the grant, 1.5 s after the keep-alive
  await writesSettled(b);
  t.equal(b.range(req.range('l/', { end: 'l0' })).count, 2, 'the keep-alive held the lease');
  t.same(events, [], 'nothing was deleted');
  clock.advance(2500);
  await writesSettled(b);
  t.equal(b.range(req.range('l/', { end: 'l0' })).count, 0, 'expired keys are gone');
  t.same(
    events.map((e) => [e.type, String(e.kv.key), Number(e.kv.mod_revision), String(e.prev_kv?.value)]),
    [
      [1, 'l/1', 5, 'v'],
      [1, 'l/2', 5, 'v'],
    ],
    'delete events at one revision',
  );
  t.equal(b.leaseRenew(id), 0, 'an expired lease cannot be renewed');
  t.equal(b.leaseTimeToLive(id, false), undefined);
  await b.close();
  clock.advance(1000);
  b = open(file, { clock });
  t.teardown(() => b.close());
  t.same(b.leaseList(), [42], 'the live lease survived the restart');
  const left = b.leaseTimeToLive(42, true)!;
  t.equal(left.ttlSeconds, 3, 'with its remaining TTL (10 s granted 6.5 s ago)');
  t.same(left.keys.map(String), ['keep']);
  b.start();
  clock.advance(4000);
  await writesSettled(b);
  t.equal(b.range(req.range('keep')).count, 0, 'and it expires on time after the restart');
  await t.rejects(b.leaseRevoke(42), { message: 'etcdserver: requested lease not found' });
});

t.test(
  'compaction removes unreachable history in batches and keeps the compact revision readable',
  async (t) => {
    const file = tempFile(t);
    const b = open(file, { compaction: { retentionRevisions: 0, batchRows: 7 } });
    t.teardown(() => b.close());
    b.start();
    for (let i = 0; i < 50; i++) await put(b, `k${i % 5}`, `v${i}`);
    await del(b, 'k4');
    const before = b
      .range(req.range('\0', { end: '\0', revision: 40 }))
      .kvs.map((kv) => `${kv.key}=${kv.value}`);
    await b.compact(40, true);
    t.same(
      b.range(req.range('\0', { end: '\0', revision: 40 })).kvs.map((kv) => `${kv.key}=${kv.value}`),
      before,
      'the compact revision still reads the same',
    );
    t.throws(() => b.range(req.range('k0', { revision: 39 })), {
      message: 'etcdserver: mvcc: required revision has been compacted',
    });
    t.equal(rowCount(file), 5 + 12, 'one row per key at rev 40 plus the 12 later rows');
    await t.rejects(b.compact(30, false), {
      message: 'etcdserver: mvcc: required revision has been compacted',
    });
    await t.rejects(b.compact(500, false), {
      message: 'etcdserver: mvcc: required revision is a future revision',
    });
    await b.compact(b.revision, true);
    t.equal(rowCount(file), 4, 'the tombstone and superseded rows are gone');
    t.equal(b.revision, 52, 'the revision survives compaction of its own row');
    await b.close();
    const again = open(file);
    t.equal(again.revision, 52, 'and a restart');
    t.equal(again.compactRevision, 52);
    await again.close();
  },
);

t.test('after compaction the file and the WAL shrink back to the kept history', async (t) => {
  const file = tempFile(t);
  const b = open(file, { compaction: { retentionRevisions: 0 } });
  t.teardown(() => b.close());
  b.start();
  const value = 'x'.repeat(1024);
  for (let i = 0; i < 3000; i += 100) {
    await Promise.all(Array.from({ length: 100 }, (_, j) => put(b, `k${(i + j) % 10}`, `${i + j}${value}`)));
  }
  const grown = b.size().total;
  await b.compact(b.revision, true);
  const { statSync } = await import('node:fs');
  t.equal(statSync(`${file}-wal`).size, 0, 'the WAL is emptied');
  t.ok(b.size().total < grown / 10, `the file shrank (${grown} -> ${b.size().total} bytes)`);
  t.equal(b.size().total, b.size().inUse, 'no free pages left in it');
  t.equal(rowCount(file), 10, 'one row per key');
  t.same(
    b.range(req.range('k3')).kvs.map((kv) => String(kv.value).slice(0, 4)),
    ['2993'],
  );
});

t.test('a compaction cut short by a restart resumes from its cursor and loses nothing', async (t) => {
  const file = tempFile(t);
  const b = open(file, { compaction: { retentionRevisions: 0, batchRows: 10 } });
  b.start();
  for (let i = 0; i < 300; i++) await put(b, `k${i % 5}`, `v${i}`);
  const all = (x: Backend, rev = 0) =>
    x
      .range(req.range('\0', { end: '\0', revision: rev }))
      .kvs.map((kv) => `${kv.key}=${kv.value}@${kv.mod_revision}`);
  const at = 250;
  const wantAt = all(b, at);
  const wantNow = all(b);
  await b.compact(at, false);
  await b.close(); // stops at the first batch boundary
  const raw = new Database(file, { readonly: true });
  const cursor = () =>
    Number(
      (raw.prepare("SELECT value FROM meta WHERE key = 'compact_cursor'").get() as { value: string }).value,
    );
  const target = (raw.prepare('SELECT MAX(id) AS id FROM kine WHERE revision <= ?').get(at) as { id: number })
    .id;
  t.teardown(() => raw.close());
  t.ok(cursor() < target, `the pass was cut short (cursor ${cursor()} of ${target})`);

  const again = open(file, { compaction: { retentionRevisions: 0, batchRows: 10 } });
  t.teardown(() => again.close());
  t.same(all(again, at), wantAt, 'the compact revision reads the same after the restart');
  t.same(all(again), wantNow, 'and so does the newest');
  again.start();
  while (cursor() < target) await writesSettled(again);
  t.equal(
    rowCount(file),
    5 + 51,
    'the resumed pass left one row per key at the compact revision and the 51 later rows',
  );
  t.same(all(again, at), wantAt, 'reads are unchanged by it');
  t.same(all(again), wantNow);
});

t.test('under steady writes the WAL is emptied at the first quiet tick, not after every pass', async (t) => {
  const { statSync } = await import('node:fs');
  const file = tempFile(t);
  const clock = new FakeClock();
  const b = open(file, { clock, compaction: { retentionRevisions: 10, intervalMs: 1000, batchRows: 2 } });
  t.teardown(() => b.close());
  b.start();
  for (let i = 0; i < 60; i++) await put(b, `k${i % 3}`, `v${i}`);
  clock.advance(1000); // compaction starts; writes keep coming during its pass
  for (let i = 0; i < 60; i++) await put(b, `k${i % 3}`, `w${i}`);
  await writesSettled(b);
  t.ok(b.compactRevision > 0, 'compacted');
  t.ok(statSync(`${file}-wal`).size > 0, 'the pass saw writes: the WAL is left in place');
  clock.advance(1000); // writes since the last tick: a compaction, still no truncation
  await writesSettled(b);
  clock.advance(1000); // quiet since the last tick
  while (statSync(`${file}-wal`).size > 0) await new Promise((r) => setImmediate(r));
  t.pass('the quiet tick emptied the WAL');
  t.same(
    b.range(req.range('k0')).kvs.map((kv) => String(kv.value)),
    ['w57'],
    'and the data is unchanged',
  );
});

t.test('automatic compaction by revisions and by time', async (t) => {
  const clock = new FakeClock();
  const b = open(tempFile(t), {
    clock,
    compaction: { mode: 'revision', retentionRevisions: 10, intervalMs: 1000 },
  });
  t.teardown(() => b.close());
  b.start();
  for (let i = 0; i < 30; i++) await put(b, 'k', `v${i}`);
  clock.advance(1000);
  await writesSettled(b);
  t.equal(b.compactRevision, 31 - 10, 'keeps the last 10 revisions');

  const c = open(tempFile(t), {
    clock,
    compaction: { mode: 'periodic', retentionMs: 60_000, intervalMs: 10_000 },
  });
  t.teardown(() => c.close());
  c.start();
  for (let i = 0; i < 5; i++) await put(c, 'k', `v${i}`); // revisions 2..6 at t0
  clock.advance(10_000);
  for (let i = 0; i < 5; i++) await put(c, 'k', `w${i}`); // 7..11
  clock.advance(60_000);
  await writesSettled(c);
  t.equal(c.compactRevision, 6, 'compacts to the revision current one retention ago');
});
