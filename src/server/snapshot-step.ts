import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { systemClock } from '../clock.js';
import { VipmeshError } from '../errors.js';
import { etcdPaths, memberExists } from '../etcd-member/index.js';
import {
  CronSchedule,
  checkSnapshotFile,
  defaultSnapshotDir,
  restoreSnapshot,
  SnapshotScheduler,
} from '../snapshot/index.js';
import { datastoreDir } from './datastore-step.js';
import { MIGRATED_MARKER } from './migrate-step.js';
import type { ServerStep } from './server-options.js';

/** Where the last `--restore-path` restore is recorded, so a restart with the same flags does not redo it. */
const RESTORED_MARK = 'restored-from';

/**
 * Step, before the datastore opens: with `clusterReset` and `restorePath`, put the snapshot in place as the
 * embedded datastore's data file ("restore, then start"). The restore is recorded in the db dir; a restart
 * that still carries the same flags and file starts on the data as it is (logged) instead of restoring again.
 * A real etcd (`datastoreEndpoint`) is restored with its own tools, so `restorePath` is refused with one.
 */
export async function restoreIfAsked({ o, log }: ServerStep): Promise<void> {
  if (o.restorePath === undefined || o.restorePath === '') {
    if (o.clusterReset === true && !memberExists(o.dataDir))
      log.info(
        '--cluster-reset without --restore-path: the embedded datastore has one member, nothing to reset',
      );
    return;
  }
  if (o.clusterReset !== true) {
    throw new VipmeshError('VIPMESH_SNAPSHOT_BAD_FLAG', '--restore-path is taken only with --cluster-reset');
  }
  if (o.datastoreEndpoint !== undefined && o.datastoreEndpoint !== '') {
    throw new VipmeshError(
      'VIPMESH_SNAPSHOT_BAD_FLAG',
      '--restore-path restores the embedded datastore; restore an external etcd with `etcdctl snapshot restore` on each member',
    );
  }
  if (memberExists(o.dataDir)) {
    throw new VipmeshError(
      'VIPMESH_SNAPSHOT_BAD_FLAG',
      `--restore-path: this server has an embedded etcd member (${etcdPaths(o.dataDir).dataDir}); stop every server, move that directory away here and on the others, then start this one with --cluster-init --cluster-reset --restore-path and join the others again`,
    );
  }
  const dbDir = datastoreDir(o.dataDir);
  const mark = join(dbDir, RESTORED_MARK);
  const snap = checkSnapshotFile(o.restorePath);
  const identity = `${o.restorePath} ${statSync(o.restorePath).size} ${snap.checksummed ? trailerHex(o.restorePath) : statSync(o.restorePath).mtimeMs}`;
  let last = '';
  try {
    last = readFileSync(mark, 'utf8').trim();
  } catch {
    last = '';
  }
  if (last === identity) {
    log.warn(
      { file: o.restorePath },
      'this snapshot was already restored: starting on the data as it is (remove --cluster-reset and --restore-path)',
    );
    return;
  }
  await restoreSnapshot({ file: o.restorePath, dbDir, logger: log.child({ op: 'restore' }) });
  // Restored data is new data: with --cluster-init it is migrated into the new member again.
  rmSync(join(dbDir, MIGRATED_MARKER), { force: true });
  writeFileSync(mark, `${identity}\n`, { mode: 0o600 });
}

function trailerHex(file: string): string {
  const b = readFileSync(file);
  return b.subarray(b.length - 32).toString('hex');
}

/**
 * Step: scheduled snapshots (`o.snapshots`), taken by this server while it is the elected master, through
 * the server's own datastore client. Each server of an etcd cluster could keep its own (as k3s does); here
 * only the master takes them, so servers sharing one datastore do not each save the same state, and the
 * snapshots of a cluster are on the node that was master at the time (`ls` on that node lists them).
 */
export function startSnapshots(
  { o, log, registry, stack }: ServerStep,
  deps: { etcd: Etcd3; endpoint: string; isMaster: () => boolean },
): SnapshotScheduler | undefined {
  if (o.snapshots === undefined) return undefined;
  const scheduler = new SnapshotScheduler({
    schedule: new CronSchedule(o.snapshots.schedule),
    dir: o.snapshots.dir ?? defaultSnapshotDir(o.dataDir),
    retention: o.snapshots.retention,
    nodeName: o.nodeName,
    source: deps.etcd,
    endpoint: deps.endpoint,
    shouldTake: deps.isMaster,
    clock: o.clock ?? systemClock,
    logger: log,
    registry,
  });
  scheduler.start();
  stack.push('snapshots', () => scheduler.stop());
  return scheduler;
}
