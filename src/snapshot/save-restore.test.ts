import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import t, { type Test } from 'tap';
import { startDatastore } from '../kine/index.js';
import { silentLogger } from '../log.js';
import { createRegistry } from '../metrics.js';
import { startEtcd } from '../testing/datastores.js';
import { FakeClock } from '../testing/fake-clock.js';
import { tempDir } from '../testing/tmp.js';
import { until } from '../testing/until.js';
import { CronSchedule } from './cron.js';
import { listSnapshots } from './names.js';
import { restoreSnapshot } from './restore.js';
import { saveSnapshot } from './save.js';
import { SnapshotScheduler } from './scheduler.js';

const log = silentLogger();

/** An embedded datastore on a unix socket in `dir` with `n` keys, and a client of it. */
async function datastore(t: Test, dir: string, n: number) {
  const ds = await startDatastore({
    dataDir: dir,
    listenAddress: `unix://${join(dir, 'kine.sock')}`,
    logger: log,
  });
  const etcd = new Etcd3({ hosts: ds.url });
  t.teardown(async () => {
    etcd.close();
    await ds.close();
  });
  for (let i = 0; i < n; i++) await etcd.put(`/registry/k${i}`).value(`v${i}`);
  return { ds, etcd };
}

/** The keys and values of a data dir's datastore, read through a fresh datastore on it. */
async function keysOf(dir: string): Promise<Record<string, string>> {
  const ds = await startDatastore({
    dataDir: dir,
    listenAddress: `unix://${join(dir, 'kine.sock')}`,
    logger: log,
  });
  const etcd = new Etcd3({ hosts: ds.url });
  try {
    return await etcd.getAll().prefix('/').strings();
  } finally {
    etcd.close();
    await ds.close();
  }
}

t.test('save from the embedded datastore, restore into a fresh db dir', async (t) => {
  const src = tempDir('vipmesh-snap-src-');
  const { ds, etcd } = await datastore(t, src, 50);
  const out = join(tempDir('vipmesh-snap-out-'), 'snaps', 'on-demand-a-1700000000');
  const saved = await saveSnapshot(etcd, out, ds.url);
  t.ok(saved.revision >= 50, 'the revision of the snapshot');
  t.same(readdirSync(join(out, '..')), ['on-demand-a-1700000000'], 'no part file is left');

  const target = tempDir('vipmesh-snap-dst-');
  writeFileSync(join(target, 'state.db'), 'old data');
  const res = await restoreSnapshot({ file: out, dbDir: target, logger: log });
  t.equal(res.kind, 'sqlite');
  t.equal(readFileSync(res.previous!, 'utf8'), 'old data', 'the replaced data file is kept');
  const keys = await keysOf(target);
  t.equal(Object.keys(keys).length, 50);
  t.equal(keys['/registry/k49'], 'v49');
});

t.test('restore refuses while a server serves the dir, and a bad file changes nothing', async (t) => {
  const dir = tempDir('vipmesh-snap-live-');
  const { ds, etcd } = await datastore(t, dir, 3);
  const file = join(tempDir('vipmesh-snap-out-'), 'x-a-1700000000');
  await saveSnapshot(etcd, file, ds.url);
  await t.rejects(restoreSnapshot({ file, dbDir: dir, logger: log }), {
    code: 'VIPMESH_SNAPSHOT_SERVER_RUNNING',
  });

  const target = tempDir('vipmesh-snap-dst-');
  writeFileSync(join(target, 'state.db'), 'old data');
  const cut = join(target, '..', `${target.split('/').pop()}-cut`);
  writeFileSync(cut, readFileSync(file).subarray(0, 5000));
  await t.rejects(restoreSnapshot({ file: cut, dbDir: target, logger: log }), {
    code: 'VIPMESH_SNAPSHOT_INVALID',
  });
  // A SQLite file that is not a datastore: refused after the copy is checked, and the copy removed.
  const other = join(tempDir('vipmesh-snap-other-'), 'other.db');
  const { default: Database } = await import('better-sqlite3');
  new Database(other).exec('CREATE TABLE x (v)');
  await t.rejects(restoreSnapshot({ file: other, dbDir: target, logger: log }), {
    code: 'VIPMESH_SNAPSHOT_INVALID',
    message: /not a vipmesh datastore/,
  });
  t.same(readdirSync(target), ['state.db'], 'nothing else in the target');
  t.equal(readFileSync(join(target, 'state.db'), 'utf8'), 'old data', 'the data file is untouched');
});

t.test('save fails cleanly: no part file, the error names the file and the endpoint', async (t) => {
  const dir = tempDir('vipmesh-snap-fail-');
  const gone = new Etcd3({ hosts: `unix://${join(dir, 'nobody.sock')}` });
  t.teardown(() => gone.close());
  const file = join(dir, 'snaps', 'x-a-1700000000');
  await t.rejects(saveSnapshot(gone, file, 'unix:///nobody.sock'), {
    code: 'VIPMESH_SNAPSHOT_SAVE',
    message: /nobody\.sock/,
  });
  t.same(readdirSync(join(dir, 'snaps')), [], 'nothing left behind');
  // A stream that breaks halfway: what was written is removed.
  const broken = {
    maintenance: {
      snapshot: async () => {
        const handlers: Record<string, (x?: unknown) => void> = {};
        const s = {
          on(ev: string, fn: (x?: unknown) => void) {
            handlers[ev] = fn;
            return s;
          },
        };
        setImmediate(() => {
          handlers.data?.({ blob: Buffer.alloc(4096, 1), remaining_bytes: 4096 });
          handlers.error?.(new Error('connection reset'));
        });
        return s;
      },
    },
  } as unknown as Etcd3;
  await t.rejects(saveSnapshot(broken, file, 'test'), {
    code: 'VIPMESH_SNAPSHOT_SAVE',
    message: /connection reset/,
  });
  t.same(readdirSync(join(dir, 'snaps')), []);
  // A target that cannot be created.
  writeFileSync(join(dir, 'file'), '');
  await t.rejects(saveSnapshot(broken, join(dir, 'file', 'x'), 'test'), { code: 'VIPMESH_SNAPSHOT_SAVE' });
});

t.test('scheduled snapshots on the fake clock: master only, retention, failures counted', async (t) => {
  const dir = tempDir('vipmesh-snap-sched-');
  const { ds, etcd } = await datastore(t, join(dir, 'db'), 5);
  const clock = new FakeClock(new Date(2026, 11, 5, 16, 30).getTime());
  const registry = createRegistry();
  let master = false;
  const snaps = join(dir, 'snapshots');
  const s = new SnapshotScheduler({
    schedule: new CronSchedule('0 * * * *'),
    dir: snaps,
    retention: 2,
    nodeName: 'pi-1',
    source: etcd,
    endpoint: ds.url,
    shouldTake: () => master,
    clock,
    logger: log,
    registry,
  });
  s.start();
  t.teardown(() => s.stop());
  t.equal(s.next(), new Date(2026, 11, 5, 17, 0).getTime());
  clock.advance(30 * 60_000);
  t.same(listSnapshots(snaps), [], 'not the master: nothing taken');
  master = true;
  for (let i = 1; i <= 3; i++) {
    clock.advance(60 * 60_000);
    await until(`snapshot ${i}`, () =>
      listSnapshots(snaps).some((x) => x.createdAt.getTime() === clock.now()),
    );
  }
  await until('the third snapshot is pruned to 2', () => listSnapshots(snaps).length === 2);
  t.same(
    listSnapshots(snaps).map((x) => x.name),
    [`etcd-snapshot-pi-1-${clock.now() / 1000}`, `etcd-snapshot-pi-1-${clock.now() / 1000 - 3600}`],
  );
  const text = await registry.metrics();
  t.match(text, new RegExp(`vipmesh_snapshot_last_success_timestamp_seconds ${clock.now() / 1000}`));

  // The snapshot directory becomes unwritable (a file in its place): the run fails, is counted, the
  // schedule goes on.
  const blocked = new SnapshotScheduler({
    schedule: new CronSchedule('@hourly'),
    dir: join(dir, 'db', 'state.db', 'snapshots'),
    retention: 2,
    nodeName: 'pi-1',
    source: etcd,
    endpoint: ds.url,
    shouldTake: () => true,
    clock,
    logger: log,
    registry: createRegistry(),
  });
  await t.rejects(blocked.takeNow(), { code: 'VIPMESH_SNAPSHOT_SAVE' });
  blocked.start();
  clock.advance(60 * 60_000);
  await blocked.stop();
  t.ok(existsSync(join(dir, 'db', 'state.db')), 'the datastore is still there');
});

t.test('a real etcd snapshot is restored key by key (leased keys left out)', async (t) => {
  const e = await startEtcd();
  t.teardown(() => e.stop());
  const etcd = new Etcd3({ hosts: e.endpoint });
  t.teardown(() => etcd.close());
  for (let i = 0; i < 250; i++) await etcd.put(`/registry/k${i}`).value(`v${i}`);
  const lease = etcd.lease(60);
  await lease.put('/registry/election').value('me');
  const file = join(tempDir('vipmesh-snap-etcd-'), 'etcd-a-1700000000');
  const saved = await saveSnapshot(etcd, file, e.endpoint);
  t.ok(saved.size > 0);
  await lease.revoke();
  const target = tempDir('vipmesh-snap-dst-');
  const res = await restoreSnapshot({ file, dbDir: target, logger: log });
  t.equal(res.kind, 'bbolt');
  t.equal(res.keys, 250);
  const keys = await keysOf(target);
  t.equal(Object.keys(keys).length, 250);
  t.equal(keys['/registry/k249'], 'v249');
  t.notOk('/registry/election' in keys);

  await t.rejects(
    restoreSnapshot({
      file,
      dbDir: tempDir('vipmesh-snap-dst-'),
      logger: log,
      etcdctlBinary: '/nonexistent/etcdctl',
    }),
    {
      code: 'VIPMESH_SNAPSHOT_NEEDS_ETCD',
      message: /etcdctl snapshot restore/,
    },
  );
});
