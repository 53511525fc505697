/**
 * The `etcd3` npm client (the one the control plane uses) against the embedded datastore: KV, txns, watches,
 * leases with keep-alive, and the lock, election and STM helpers built on them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3, type IKeyValue } from 'etcd3';
import t, { type Test } from 'tap';
import { type Datastore, startDatastore } from '../src/kine/index.js';
import { silentLogger } from '../src/log.js';
import { createRegistry } from '../src/metrics.js';

async function setup(t: Test): Promise<{ ds: Datastore; client: Etcd3 }> {
  const dir = mkdtempSync(join(tmpdir(), 'vipmesh-kine-etcd3-'));
  const ds = await startDatastore({
    dataDir: dir,
    listenAddress: '127.0.0.1:0',
    logger: silentLogger(),
    registry: createRegistry(),
  });
  const client = new Etcd3({ hosts: ds.url });
  t.teardown(async () => {
    client.close();
    await ds.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { ds, client };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
  const seen: string[] = [];
  watcher.on('put', (kv, prev) => seen.push(`put ${kv.key} ${kv.value} prev=${prev?.value ?? ''}`));
  watcher.on('delete', (kv, prev) => seen.push(`delete ${kv.key} prev=${prev?.value ?? ''}`));
  await client.put('w/a').value('1');
  await client.put('w/a').value('2');
  await client.put('other').value('x');
  await client.delete().key('w/a');
  for (let i = 0; i < 50 && seen.length < 3; i++) await sleep(20);
  t.same(seen, ['put w/a 1 prev=', 'put w/a 2 prev=1', 'delete w/a prev=2']);
  await watcher.cancel();

  // History replay from a start revision.
  const first = (await client.get('w/before').exec()).kvs[0]!.mod_revision;
  const replay = await client.watch().prefix('w/').startRevision(first).create();
  const replayed: string[] = [];
  replay.on('data', (res) => {
    for (const ev of res.events) replayed.push(`${ev.type} ${ev.kv.key.toString()}`);
  });
  for (let i = 0; i < 50 && replayed.length < 4; i++) await sleep(20);
  t.same(replayed, ['Put w/before', 'Put w/a', 'Put w/a', 'Delete w/a']);
  await replay.cancel();
});

t.test('leases: keep-alive holds keys past the TTL, revoke deletes them', async (t) => {
  const { client } = await setup(t);
  const lease = client.lease(2);
  await lease.put('leased').value('v');
  t.equal(await client.get('leased').string(), 'v');
  await sleep(3000); // beyond the 2 s TTL; the client keeps the lease alive
  t.equal(await client.get('leased').string(), 'v', 'kept alive');
  const id = await lease.grant();
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
  const { client } = await setup(t);
  const watcher = await client.watch().key('gone').create();
  const deleted = new Promise<string>((resolve) => watcher.on('delete', (kv) => resolve(kv.key.toString())));
  const lease = client.lease(2, { autoKeepAlive: false });
  await lease.put('gone').value('v');
  const lost = new Promise((resolve) => lease.on('lost', resolve));
  t.equal(await deleted, 'gone', 'a delete event on expiry');
  t.equal(await client.get('gone').string(), null);
  await Promise.race([lost, sleep(1000)]);
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
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (;;) {
        try {
          await client.lock('shared').do(async () => {
            inside++;
            maxInside = Math.max(maxInside, inside);
            await sleep(20);
            inside--;
          });
          return;
        } catch {
          await sleep(10);
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
  await sleep(200);
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
