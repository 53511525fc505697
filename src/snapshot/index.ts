/**
 * Snapshots of the control plane's datastore (k3s `etcd-snapshot` parity): save one online through
 * Maintenance.Snapshot (the embedded SQLite datastore or a real etcd), list, delete and prune them, check a
 * file, restore one into the embedded datastore's directory, and the scheduler the server runs.
 */
export { CronSchedule, DEFAULT_SCHEDULE } from './cron.js';
export { checkSnapshotFile, type SnapshotFile, type SnapshotKind } from './format.js';
export {
  DEFAULT_RETENTION,
  defaultSnapshotDir,
  deleteSnapshots,
  listSnapshots,
  ON_DEMAND_NAME,
  pruneSnapshots,
  SCHEDULED_NAME,
  type SnapshotEntry,
  snapshotName,
} from './names.js';
export { type RestoreOptions, type RestoreResult, restoreSnapshot } from './restore.js';
export { type SavedSnapshot, type SnapshotSource, saveSnapshot } from './save.js';
export { SnapshotScheduler, type SnapshotSchedulerOptions } from './scheduler.js';
