import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import t from 'tap';
import { ShutdownStack } from '../daemon/shutdown-stack.js';
import { startDatastore } from '../kine/index.js';
import { silentLogger } from '../log.js';
import { createRegistry } from '../metrics.js';
import { listSnapshots } from '../snapshot/index.js';
import { FakeClock } from '../testing/fake-clock.js';
import { tempDir } from '../testing/tmp.js';
import { until } from '../testing/until.js';
import type { ServerOptions } from './server-options.js';
import { startSnapshots } from './snapshot-step.js';

t.test('the server takes scheduled snapshots into <data-dir>/server/db/snapshots while master', async (t) => {
  const dataDir = tempDir('vipmesh-snapstep-');
  const db = join(dataDir, 'server', 'db');
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
  const clock = new FakeClock(new Date(2026, 11, 5, 11, 59).getTime());
  const o = {
    dataDir,
    nodeName: 'srv',
    snapshots: { schedule: '0 */12 * * *', retention: 5 },
    clock,
    logger: silentLogger(),
  } as unknown as ServerOptions;
  const stack = new ShutdownStack({ logger: silentLogger() });
  const registry = createRegistry();
  let master = true;
  const s = startSnapshots(
    { o, log: silentLogger(), registry, stack },
    { etcd, endpoint: ds.url, isMaster: () => master },
  );
  t.ok(s);
  clock.advance(60_000);
  const dir = join(db, 'snapshots');
  await until('the noon snapshot', () => listSnapshots(dir).length === 1);
  t.equal(listSnapshots(dir)[0]!.name, `etcd-snapshot-srv-${clock.now() / 1000}`);
  master = false;
  clock.advance(12 * 3600_000);
  t.equal(listSnapshots(dir).length, 1, 'no longer master: none at midnight');
  await stack.close();
  t.equal(clock.pending, 0, 'the timer is cleared on close');
  t.equal(
    startSnapshots(
      { o: { ...o, snapshots: undefined } as unknown as ServerOptions, log: silentLogger(), registry, stack },
      { etcd, endpoint: ds.url, isMaster: () => true },
    ),
    undefined,
  );
});
