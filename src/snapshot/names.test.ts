import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { tempDir } from '../testing/tmp.js';
import { defaultSnapshotDir, deleteSnapshots, listSnapshots, pruneSnapshots, snapshotName } from './names.js';

t.test('names are <name>-<node>-<unix seconds>', async (t) => {
  t.equal(snapshotName('on-demand', 'pi-1', 1_700_000_000_999), 'on-demand-pi-1-1700000000');
  t.equal(defaultSnapshotDir('/var/lib/vipmesh'), '/var/lib/vipmesh/server/db/snapshots');
  t.throws(() => snapshotName('../x', 'pi-1', 0), { code: 'VIPMESH_SNAPSHOT_BAD_NAME', message: /--name/ });
  t.throws(() => snapshotName('ok', 'a/b', 0), { code: 'VIPMESH_SNAPSHOT_BAD_NAME', message: /node name/ });
});

t.test('ls lists snapshots newest first, leaving out partial and other files', async (t) => {
  const dir = tempDir('vipmesh-snapnames-');
  writeFileSync(join(dir, 'on-demand-a-1700000100'), 'xx');
  writeFileSync(join(dir, 'on-demand-a-1700000200'), 'xxx');
  writeFileSync(join(dir, 'on-demand-a-1700000300.part'), 'half');
  writeFileSync(join(dir, 'notes.txt'), '');
  mkdirSync(join(dir, 'sub-dir-1700000400'));
  const all = listSnapshots(dir);
  t.same(
    all.map((s) => [s.name, s.size, s.createdAt.toISOString()]),
    [
      ['on-demand-a-1700000200', 3, '2023-11-14T22:16:40.000Z'],
      ['on-demand-a-1700000100', 2, '2023-11-14T22:15:00.000Z'],
    ],
  );
  t.equal(all[0]!.location, `file://${join(dir, 'on-demand-a-1700000200')}`);
  t.same(listSnapshots(join(dir, 'missing')), []);
  t.throws(() => listSnapshots(join(dir, 'notes.txt')), { code: 'VIPMESH_SNAPSHOT_DIR' });
});

t.test('prune keeps the newest N of one name and node; delete checks every name first', async (t) => {
  const dir = tempDir('vipmesh-snapnames-');
  for (let i = 1; i <= 7; i++) writeFileSync(join(dir, `etcd-snapshot-a-170000000${i}`), '');
  writeFileSync(join(dir, 'etcd-snapshot-b-1700000001'), '');
  writeFileSync(join(dir, 'on-demand-a-1700000001'), '');
  t.same(pruneSnapshots(dir, 'etcd-snapshot', 'a', 5), [
    'etcd-snapshot-a-1700000002',
    'etcd-snapshot-a-1700000001',
  ]);
  t.same(
    listSnapshots(dir)
      .map((s) => s.name)
      .sort(),
    [
      'etcd-snapshot-a-1700000003',
      'etcd-snapshot-a-1700000004',
      'etcd-snapshot-a-1700000005',
      'etcd-snapshot-a-1700000006',
      'etcd-snapshot-a-1700000007',
      'etcd-snapshot-b-1700000001',
      'on-demand-a-1700000001',
    ],
  );
  t.throws(() => pruneSnapshots(dir, 'etcd-snapshot', 'a', 0), { code: 'VIPMESH_SNAPSHOT_BAD_FLAG' });
  t.throws(() => deleteSnapshots(dir, ['on-demand-a-1700000001', 'nope-a-1']), {
    code: 'VIPMESH_SNAPSHOT_NOT_FOUND',
    message: /"nope-a-1"/,
  });
  t.equal(listSnapshots(dir).length, 7, 'nothing deleted when one name is unknown');
  deleteSnapshots(dir, ['on-demand-a-1700000001']);
  t.equal(listSnapshots(dir).length, 6);
});
