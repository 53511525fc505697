/**
 * The embedded datastore: the etcd v3 API (KV, Watch, Lease, Maintenance, Cluster) over SQLite.
 * Embed it with {@link startDatastore}; reach it with any etcd v3 client (the control plane uses `etcd3`).
 */
export type { CompactionOptions } from './compactor.js';
export { type Datastore, type DatastoreOptions, startDatastore } from './datastore.js';
export { SCHEMA_VERSION } from './dialect.js';
export { EtcdError } from './errors.js';
export type { EtcdBackend, Written } from './etcd-backend.js';
export { type ModeChange, restrictDir } from './file-modes.js';
export type { LeaseTtl } from './lessor.js';
export type { WatchOptions } from './server/watch.js';
