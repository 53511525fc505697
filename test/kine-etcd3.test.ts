/**
 * The `etcd3` npm client (the one the control plane uses) against the embedded datastore: KV, txns, watches,
 * leases with keep-alive, and the lock, election and STM helpers built on them.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3, type IKeyValue } from 'etcd3';
import t, { type Test } from 'tap';
import type { Clock } from '../src/clock.js';
import { type Datastore, startDatastore } from '../src/kine/index.js';
import { silentLogger } from '../src/log.js';
import { createRegistry } from '../src/metrics.js';
import { FakeClock } from '../src/testing/fake-clock.js';

/** A datastore on a temp dir and a client of it; `clock` drives lease expiry (default: the real one). */
async function setup(t: Test, clock?: Clock): Promise<{ ds: Datastore; client: Etcd3 }> {
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-kine-etcd3-'));
  const ds = await startDatastore({
    dataDir: dir,
    listenAddress: '127.0.0.1:0',
    logger: silentLogger(),
    registry: createRegistry(),
    ...(clock === undefined ? {} : { clock }),
  });
  const client = new Etcd3({ hosts: ds.url });
  t.teardown(async () => {
    client.close();
    await ds.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { ds, client };
}

/** A list that resolves `full` once it holds `n` items. */
function collector<T>(n: number): { items: T[]; add(item: T): void; full: Promise<T[]> } {
  const items: T[] = [];
  let resolve: (items: T[]) => void = () => undefined;
  const full = new Promise<T[]>((r) => {
    resolve = r;
  });
  return {
    items,
    add(item) {
      items.push(item);
      if (items.length === n) resolve(items);
    },
    full,
  };
}

t.test('KV and txn operations', async (t) => {
  const { client } = await setup(t);
  await client.put('foo').value('bar');
  t.equal(await client.get('foo').string(), 'bar');
  await client.put('dir/a').value('1');
  await client.put('dir/b').value('2');
  await client.put('dir/c').value('3');
  t.same(await client.getAll().prefix('dir/').strings(), { 'dir/a': '1', 'dir/b': '2', 'dir/c': '3' });
  t.equal(await client.getAll().prefix('dir/').count(), 3);
  t.same(await client.getAll().prefix('dir/').sort('Key', 'Descend').limit(2).keys(), ['dir/c', 'dir/b']);
  const del = await client.delete().prefix('dir/').getPrevious();
  t.same(
    del.map((kv: IKeyValue) => kv.key.toString()),
    ['dir/a', 'dir/b', 'dir/c'],
  );
  t.equal(await client.getAll().prefix('dir/').count(), 0);

  const ok = await client.if('foo', 'Value', '==', 'bar').then(client.put('foo').value('baz')).commit();
  t.equal(ok.succeeded, true);
  const no = await client
    .if('foo', 'Value', '==', 'bar')
    .then(client.put('foo').value('nope'))
    .else(client.get('foo'))
    .commit();
  t.equal(no.succeeded, false);
  t.equal(no.responses[0]?.response_range?.kvs[0]?.value.toString(), 'baz');
  t.equal(await client.get('foo').string(), 'baz');
  const created = await client.if('fresh', 'Create', '==', 0).then(client.put('fresh').value('x')).commit();
  t.equal(created.succeeded, true);
  const kv = (await client.get('fresh').exec()).kvs[0]!;
  t.equal(kv.version, '1');
  t.equal(kv.create_revision, kv.mod_revision);
});

t.test('watch delivers puts and deletes in order, with prev values', async (t) => {
  const { client } = await setup(t);
  await client.put('w/before').value('0');
  const watcher = await client.watch().prefix('w/').withPreviousKV().create();
  const seen = collector<string>(3);
  watcher.on('put', (kv, prev) => seen.add(`put ${kv.key} ${kv.value} prev=${prev?.value ?? ''}`));
  watcher.on('delete', (kv, prev) => seen.add(`delete ${kv.key} prev=${prev?.value ?? ''}`));
  await client.put('w/a').value('1');
  await client.put('w/a').value('2');
  await client.put('other').value('x');
  await client.delete().key('w/a');
  t.same(await seen.full, ['put w/a 1 prev=', 'put w/a 2 prev=1', 'delete w/a prev=2']);
  await watcher.cancel();

  // History replay from a start revision.
  const first = (await client.get('w/before').exec()).kvs[0]!.mod_revision;
  const replay = await client.watch().prefix('w/').startRevision(first).create();
  const replayed = collector<string>(4);
  replay.on('data', (res) => {
    for (const ev of res.events) replayed.add(`${ev.type} ${ev.kv.key.toString()}`);
  });
  t.same(await replayed.full, ['Put w/before', 'Put w/a', 'Put w/a', 'Delete w/a']);
  await replay.cancel();
});

t.test('leases: keep-alive holds keys past the TTL, revoke deletes them', async (t) => {
  const clock = new FakeClock();
  const { client } = await setup(t, clock);
  const lease = client.lease(2);
  await lease.put('leased').value('v'); // granted at 0 s on the datastore's clock, 2 s TTL
  t.equal(await client.get('leased').string(), 'v');
  const id = await lease.grant();
  const remaining = async () => Number((await client.leaseClient.leaseTimeToLive({ ID: id })).TTL);
  clock.advance(1500);
  // The client sends keep-alives on its own (real) timer; wait for one the datastore handled at 1.5 s,
  // which renews the lease to a full 2 s from then (one handled before the advance leaves 0 s).
  for (let i = 0; i < 5 && (await remaining()) < 2; i++) await once(lease, 'keepaliveSucceeded');
  t.equal(await remaining(), 2, 'a keep-alive renewed the lease');
  clock.advance(1000); // 2.5 s: beyond the 2 s TTL it was granted with
  t.equal(await client.get('leased').string(), 'v', 'kept alive');
  const ttl = await client.leaseClient.leaseTimeToLive({ ID: id, keys: true });
  t.ok(Number(ttl.TTL) > 0 && Number(ttl.TTL) <= 2, `remaining ttl ${ttl.TTL}`);
  t.same(
    ttl.keys.map((k: Buffer) => k.toString()),
    ['leased'],
  );
  await lease.revoke();
  t.equal(await client.get('leased').string(), null, 'revoked with its key');
});

t.test('leases expire on their own and delete their keys', async (t) => {
  const clock = new FakeClock();
  const { client } = await setup(t, clock);
  const watcher = await client.watch().key('gone').create();
  const deleted = new Promise<string>((resolve) => watcher.on('delete', (kv) => resolve(kv.key.toString())));
  const lease = client.lease(2, { autoKeepAlive: false });
  await lease.put('gone').value('v');
  clock.advance(1500);
  t.equal(await client.get('gone').string(), 'v', 'alive before its TTL');
  clock.advance(1000);
  t.equal(await deleted, 'gone', 'a delete event on expiry');
  t.equal(await client.get('gone').string(), null);
  await watcher.cancel();
});

t.test('locks are mutually exclusive', async (t) => {
  const { client } = await setup(t);
  const a = client.lock('job');
  await a.acquire();
  await t.rejects(client.lock('job').acquire(), 'a second holder is refused');
  await a.release();
  const b = client.lock('job');
  await b.acquire();
  await b.release();
  let inside = 0;
  let maxInside = 0;
  let unfinished = 4;
  // Holders wait for these: each refused attempt releases them.
  const onRefused: Array<() => void> = [];
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (;;) {
        try {
          await client.lock('shared').do(async () => {
            inside++;
            maxInside = Math.max(maxInside, inside);
            // Hold the lock until another client has been refused it (while any other still wants it).
            if (unfinished > 1) await new Promise<void>((resolve) => onRefused.push(resolve));
            inside--;
          });
          unfinished--;
          return;
        } catch {
          for (const release of onRefused.splice(0)) release();
        }
      }
    }),
  );
  t.equal(maxInside, 1, 'never two holders at once');
});

t.test('elections choose one leader and hand over on resign', async (t) => {
  const { client } = await setup(t);
  const election = client.election('master', 2);
  const one = election.campaign('one');
  await new Promise((resolve) => one.once('elected', resolve));
  t.equal(await election.leader(), 'one');
  const two = election.campaign('two');
  let twoElected = false;
  const twoWins = new Promise((resolve) =>
    two.once('elected', () => {
      twoElected = true;
      resolve(undefined);
    }),
  );
  // etcd3 emits `_isWaiting` once a candidate has found an earlier one and starts watching it.
  await Promise.race([once(two, '_isWaiting'), twoWins]);
  t.equal(twoElected, false, 'the second candidate waits');
  await one.resign();
  await twoWins;
  t.equal(await election.leader(), 'two');
  await two.resign();
});

t.test('software transactional memory retries conflicting updates', async (t) => {
  const { client } = await setup(t);
  await client.put('counter').value('0');
  await Promise.all(
    Array.from({ length: 5 }, () =>
      client.stm({ retries: 50 }).transact(async (tx) => {
        const v = Number(await tx.get('counter').string());
        await tx.put('counter').value(String(v + 1));
      }),
    ),
  );
  t.equal(await client.get('counter').string(), '5');
});
