/**
 * The embedded datastore: the etcd v3 API (KV, Watch, Lease, Maintenance, Cluster) over SQLite.
 * Embed it with {@link startDatastore}; reach it with any etcd v3 client (the control plane uses `etcd3`).
 */
export type { CompactionOptions } from './compactor.js';
export { type Datastore, startDatastore } from './datastore.js';
