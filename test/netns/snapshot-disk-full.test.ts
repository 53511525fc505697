/**
 * A snapshot onto a full disk (root: a 256 KiB tmpfs mounted for the test): the save fails with ENOSPC
 * named, no partial file is left for `ls` to show, the failure is counted, and the datastore it was taken
 * from keeps serving.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import t from 'tap';
import { startDatastore } from '../../src/kine/index.js';
import { silentLogger } from '../../src/log.js';
import { createRegistry } from '../../src/metrics.js';
import { CronSchedule, listSnapshots, SnapshotScheduler } from '../../src/snapshot/index.js';
import { FakeClock } from '../../src/testing/fake-clock.js';
import { tempDir } from '../../src/testing/tmp.js';

const root = process.getuid?.() === 0;

t.test(
  'a full disk: clear error, no half file, the datastore serves on',
  { skip: !root && 'needs root (mount)' },
  async (t) => {
    const dir = tempDir('vipmesh-snap-full-');
    const db = join(dir, 'db');
    const small = join(dir, 'small');
    mkdirSync(small);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', small]);
    t.teardown(() => execFileSync('umount', [small]));
    const ds = await startDatastore({
      dataDir: db,
      listenAddress: `unix://${join(db, 'kine.sock')}`,
      logger: silentLogger(),
    });
    const etcd = new Etcd3({ hosts: ds.url });
    t.teardown(async () => {
      etcd.close();
      await ds.close();
    });
    // About 1 MB of values: more than the tmpfs holds.
    for (let i = 0; i < 100; i++) await etcd.put(`/registry/big/${i}`).value('x'.repeat(10_000));
    const registry = createRegistry();
    const s = new SnapshotScheduler({
      schedule: new CronSchedule('@hourly'),
      dir: small,
      retention: 5,
      nodeName: 'srv',
      source: etcd,
      endpoint: ds.url,
      shouldTake: () => true,
      clock: new FakeClock(),
      logger: silentLogger(),
      registry,
    });
    await t.rejects(s.takeNow(), {
      code: 'VIPMESH_SNAPSHOT_SAVE',
      message: /ENOSPC/,
      details: { errno: 'ENOSPC' },
    });
    t.same(readdirSync(small), [], 'no partial file left');
    t.same(listSnapshots(small), []);
    t.match(await registry.metrics(), /vipmesh_snapshot_failures_total 1/);
    t.equal(await etcd.get('/registry/big/99').string(), 'x'.repeat(10_000), 'the datastore still serves');
    await etcd.put('/registry/after').value('ok');
    t.equal(await etcd.get('/registry/after').string(), 'ok', 'and takes writes');
  },
);
