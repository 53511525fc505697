/**
 * The embedded datastore's in-process Kv against the same datastore over gRPC (EtcdKv, what every other
 * server uses): each operation gives the same answer either way, errors included.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { createEtcdKv } from '../api/etcd-kv.js';
import type { Kv, KvEvent } from '../api/kv.js';
import { startDatastore } from '../kine/index.js';
import { silentLogger } from '../log.js';
import { until } from '../testing/until.js';
import { EmbeddedKv } from './embedded-kv.js';

async function both(t: Test): Promise<{ grpc: Kv; local: Kv; compact(rev: number): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-embedded-kv-'));
  const ds = await startDatastore({ dataDir: dir, listenAddress: '127.0.0.1:0', logger: silentLogger() });
  const grpc = createEtcdKv({ endpoints: ds.url });
  const local = new EmbeddedKv(ds.backend, createEtcdKv({ endpoints: ds.url }));
  t.teardown(async () => {
    await grpc.close();
    await local.close();
    await ds.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { grpc, local, compact: async (rev) => void (await ds.backend.compact(rev, true)) };
}

const errorOf = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: { code?: string; message?: string }) => ({ code: e.code, message: e.message }),
  );

t.test('reads and conditional writes answer as over gRPC', async (t) => {
  const { grpc, local } = await both(t);
  for (const [name, kv] of [
    ['grpc', grpc],
    ['local', local],
  ] as const) {
    const p = `/${name}/`;
    const a = await kv.put(`${p}a`, Buffer.from('1'), 0);
    t.ok(a.ok, `${name}: a new key`);
    const again = await kv.put(`${p}a`, Buffer.from('2'), 0);
    t.same(
      again.ok ? 'written' : [again.current?.key, again.current?.value.toString()],
      [`${p}a`, '1'],
      `${name}: creating it again is refused with the key as it is`,
    );
    const rev = a.ok ? a.revision : 0;
    const upd = await kv.put(`${p}a`, Buffer.from('3'), rev);
    t.ok(upd.ok && upd.revision === rev + 1, `${name}: an update at its revision gets the next one`);
    const guard = `${p}guard`;
    t.ok((await kv.put(guard, Buffer.from('g'), 0)).ok, `${name}: guard`);
    const g = (await kv.get(guard))!.modRevision;
    t.ok((await kv.put(`${p}b`, Buffer.from('b'), 0, { key: guard, expect: g })).ok, `${name}: guarded`);
    const stale = await kv.put(`${p}c`, Buffer.from('c'), 0, { key: guard, expect: g });
    t.same(stale, { ok: false, current: undefined }, `${name}: a moved guard refuses the write`);
    const gone = await kv.delete(`${p}b`, 1);
    t.notOk(gone.ok, `${name}: a delete at the wrong revision is refused`);
    const b = (await kv.get(`${p}b`))!;
    t.ok((await kv.delete(`${p}b`, b.modRevision)).ok, `${name}: and at the right one done`);
    const batchRev = await kv.batch([{ key: `${p}d`, value: Buffer.from('d') }, { key: `${p}a` }]);
    t.equal(await kv.revision(), batchRev, `${name}: a batch is one revision, the current one`);
  }
  const shape = async (kv: Kv, p: string) => {
    const all = await kv.list(p);
    const page = await kv.listPage(p, { limit: 1 });
    const rest = await kv.listPage(p, {
      limit: 5,
      start: `${page.pairs[0]!.key}\0`,
      revision: page.revision,
    });
    // The guard's value is the key it guarded: strip the prefix from both.
    const strip = (x: { key: string; value: Buffer }) => [
      x.key.slice(p.length),
      x.value.toString().replace(p, ''),
    ];
    return {
      all: all.pairs.map(strip),
      allAtCurrent: all.revision === (await kv.revision()),
      page: [page.pairs.map(strip), page.more],
      rest: [rest.pairs.map(strip), rest.more],
      missing: await kv.get(`${p}nothing`),
    };
  };
  t.same(await shape(local, '/local/'), await shape(grpc, '/grpc/'), 'lists and pages alike');
});

t.test('a list longer than a page is read whole, in key order, as over gRPC', async (t) => {
  const { grpc, local } = await both(t);
  const keys = Array.from({ length: 1200 }, (_, i) => `/many/${String(i).padStart(4, '0')}`);
  for (let i = 0; i < keys.length; i += 100) {
    await local.batch(keys.slice(i, i + 100).map((key) => ({ key, value: Buffer.from(key) })));
  }
  const mine = await local.list('/many/');
  const theirs = await grpc.list('/many/');
  t.equal(mine.pairs.length, 1200, 'every key');
  t.same(
    mine.pairs.map((p) => [p.key, p.value.toString(), p.modRevision]),
    theirs.pairs.map((p) => [p.key, p.value.toString(), p.modRevision]),
    'the same keys, values and revisions, in the same order',
  );
  t.equal(mine.revision, theirs.revision, 'read at the same revision');
});

t.test('errors answer as over gRPC: a compacted revision is 410 Gone, a request too large 503', async (t) => {
  const { grpc, local, compact } = await both(t);
  await grpc.put('/x', Buffer.from('1'), 0);
  const old = await grpc.revision();
  await grpc.put('/y', Buffer.from('1'), 0);
  await compact(old + 1);
  const listAt = (kv: Kv) => errorOf(kv.listPage('/', { limit: 10, revision: old }));
  const gone = await listAt(local);
  t.equal(gone?.code, 'VIPMESH_API_GONE', 'a page at a compacted revision');
  t.same(gone, await listAt(grpc), 'the same error as over gRPC');

  const big = Buffer.alloc(1.6 * 1024 * 1024, 0x61);
  const tooLarge = await errorOf(local.put('/big', big, 0));
  const overGrpc = await errorOf(grpc.put('/big', big, 0));
  t.same(
    [tooLarge?.code, tooLarge?.message?.endsWith('etcdserver: request is too large')],
    [overGrpc?.code, overGrpc?.message?.endsWith('etcdserver: request is too large')],
    'a value over 1.5 MiB is refused the same way',
  );
  t.equal(tooLarge?.code, 'VIPMESH_STORE_UNAVAILABLE');
  t.equal(await local.get('/big'), undefined, 'and nothing was written');
});

t.test('a watch through the embedded Kv sees its own writes', async (t) => {
  const { local } = await both(t);
  const events: KvEvent[] = [];
  const w = await local.watch('/w/', (await local.revision()) + 1, {
    event: (e) => events.push(e),
    error: (e) => t.fail(e.message),
  });
  t.teardown(() => w.close());
  await local.put('/w/a', Buffer.from('1'), 0);
  const a = (await local.get('/w/a'))!;
  await local.delete('/w/a', a.modRevision);
  await until('two events', () => events.length >= 2);
  t.same(
    events.map((e) => [e.type, e.key, e.value.toString(), e.created]),
    [
      ['put', '/w/a', '1', true],
      ['delete', '/w/a', '1', false],
    ],
  );
});
