/**
 * The server daemon: `startServer()` (datastore, credentials, HTTPS API + tunnel, election, controllers,
 * relay to the agents, metrics). The node agent it can run beside it is in src/agent.
 */
export type { ConnectionLimitOptions } from './connection-limits.js';
export { datastoreDir, defaultDatastoreListen } from './datastore-step.js';
export { ELECTION_NAME } from './election.js';
export { JOIN_PATH } from './etcd-join.js';
export { type RunningServer, startServer } from './server.js';
export type { ServerOptions, SnapshotOptions } from './server-options.js';
